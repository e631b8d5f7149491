"""Train an agent: ``python -m plastic_rl.train [env=Atari env.id=Breakout-v5 agent=ppo plasticity=elr ...]``.

Hydra composes ``configs/config.yaml`` with the chosen ``env``, ``agent`` and ``plasticity`` options and
rl-zoo3's hyperparameters for the pair (``configs/hparams/<agent>_<env>.yaml``). Each run writes to
``runs/<run_name>/``: the resolved config (``.hydra/``), TensorBoard logs (``tb/``), checkpoints
(``checkpoints/step_<N>.zip``, written atomically, with their resume state), the final model
(``final_model.zip``) and the evaluation returns (``evaluations.csv``). ``resume=true`` continues that
folder from its last checkpoint; ``-m seed=0,1,2 plasticity=none,elr`` sweeps (``hydra/launcher=joblib``
runs them in parallel). Bad input is one line on stderr and exit code 2.

A run is accepted or refused (``plan``) before anything is written: for a single run, ``main`` decides
before Hydra creates the folder; every run (sweep jobs too) decides again in the task, and writes its
``.hydra/`` files itself once its envs and agent exist (Hydra's own ``output_subdir`` is off).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from plastic_rl.tools.config import load_config

# What a run does is decided in plan and built in build.
from plastic_rl.train.build import (
    end_step,
    loaded_model,
    make_callbacks,
    make_envs,
    make_logger,
    new_model,
    resume_state,
)
from plastic_rl.train.lock import LOCK, exclusive
from plastic_rl.train.plan import (
    EVALUATIONS,
    FINAL,
    Plan,
    checkpoints,
    plan,
)


# -- the run ---------------------------------------------------------------------------------------
def prepare_folder(p: Plan, hydra_files: dict[str, str] | None) -> None:
    """The accepted run's first writes: temporary files of a killed write go, evaluations after the start
    step go (the resumed run makes them again), and a new run writes its ``.hydra/`` files."""
    from plastic_rl.agents.callbacks import atomic_write, read_evaluations, remove_temporary, write_evaluations

    for folder in (p.run_dir, p.run_dir / "checkpoints", p.run_dir / ".hydra"):
        for stale in remove_temporary(folder):
            print(f"removed {stale}, left by a write that was killed")
    path = p.run_dir / EVALUATIONS
    rows = read_evaluations(path)
    kept = [row for row in rows if row.get("step", "").isdigit() and int(row["step"]) <= p.step]
    if len(kept) != len(rows):
        write_evaluations(path, kept)
    if not p.own_run and hydra_files:
        (p.run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        atomic_write(*((p.run_dir / ".hydra" / name, lambda tmp, text=text: tmp.write_text(text))
                       for name, text in hydra_files.items()))  # fmt: skip


def announce(p: Plan, model, restored: bool, state: dict | None) -> None:
    """Say where the run starts, what a resume restored, and where SB3 will stop."""
    total = p.cfg.total_timesteps
    end = end_step(model, p.step, total) if p.step < total else p.step
    for problem in p.skipped:  # later checkpoints that cannot be read (cut short, corrupt): passed over
        print(f"skipped {problem} (a checkpoint that cannot be read is passed over, as if never written)")
    if p.start_from is not None:
        how = ("random and env states restored: it continues exactly" if restored else
               "random states restored; the envs could not be saved and start new episodes" if state else
               "no resume state: random streams restart from the seed and the envs start new episodes")  # fmt: skip
        print(f"resuming {p.start_from} at step {p.step:,}; {(end or total) - p.step:,} steps to go ({how})")
    elif p.own_run:
        print(f"no {'readable ' if p.skipped else ''}checkpoint in {p.run_dir} yet: starting it again from step 0")
    if end is not None and end > total:
        print(f"note: {type(model).__name__} collects whole batches of env steps (SB3), so total_timesteps={total:,} "
              f"ends at step {end:,}")  # fmt: skip


def run(p: Plan, hydra_files: dict[str, str] | None = None) -> Any:
    """Train as planned; returns the model, saved to ``final_model.zip``."""
    cfg, run_dir = p.cfg, p.run_dir
    if cfg.torch_threads:
        import torch

        # SB3's networks are small: a second intra-op thread buys little and, when the cores are
        # shared, OpenMP spin-waits made PPO on CartPole 5-30x slower here.
        torch.set_num_threads(cfg.torch_threads)
    from plastic_rl.agents import registry
    from plastic_rl.agents import state as training_state
    from plastic_rl.agents.callbacks import atomic_save

    algorithm = registry.get(cfg.agent.algorithm).load_class()
    state, saved_envs = resume_state(p)
    env, eval_env = make_envs(cfg, saved_envs)
    if p.start_from is None:
        model = new_model(cfg, algorithm, env, run_dir)
    else:
        model = loaded_model(cfg, algorithm, p.start_from, env, saved_envs.get("env"))
    replay_buffer = len(env.observation_space.shape or ()) < 3  # not for image buffers (GBs)
    # Accepted: from here on the run writes into run_dir.
    prepare_folder(p, hydra_files)
    tb = run_dir / "tb" / f"{type(model).__name__}_1"
    model.set_logger(make_logger(model, tb, purge_step=p.step + 1 if tb.exists() else None))
    if state is not None:
        training_state.restore(model, state)
    announce(p, model, "env" in saved_envs, state)
    remaining = cfg.total_timesteps - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=make_callbacks(cfg, run_dir, model, env, eval_env, replay_buffer),
                    progress_bar=cfg.progress_bar, reset_num_timesteps=p.start_from is None,
                    tb_log_name=type(model).__name__)  # fmt: skip
    atomic_save(model, run_dir / FINAL)
    model.logger.close()
    env.close()
    if eval_env is not None:
        eval_env.close()
    return model


def duration(seconds: float) -> str:
    """``42 s``, ``1 min 40 s``, ``2 h 5 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def outputs(run_dir: Path) -> list[str]:
    """What the run folder holds besides the final model, as the closing message names it: only what was
    written (a run shorter than checkpoint_freq or eval_freq has no checkpoints or evaluations)."""
    found = {"config .hydra/config.yaml": (run_dir / ".hydra" / "config.yaml").is_file(),
             "TensorBoard tb/": (run_dir / "tb").is_dir() and any((run_dir / "tb").iterdir()),
             "checkpoints checkpoints/": bool(checkpoints(run_dir)),
             f"evaluations {EVALUATIONS}": (run_dir / EVALUATIONS).is_file()}  # fmt: skip
    return [name for name, written in found.items() if written]


def report(run_dir: Path, step: int, wall: float) -> None:
    """Where everything is, and how the agent did: its last evaluation, and the wall time."""
    from plastic_rl.agents.callbacks import current_rows, read_evaluations

    print(f"outputs in {run_dir}: {', '.join([*outputs(run_dir), f'final model {FINAL} (step {step:,})'])}")
    rows = current_rows(read_evaluations(run_dir / EVALUATIONS))
    if rows:
        last = rows[-1]
        print(f"final evaluation: {float(last['mean_return']):.1f} +- {float(last['std_return']):.1f} at step "
              f"{int(last['step']):,} ({last['episodes']} episodes); wall time {duration(wall)}")  # fmt: skip
    else:
        print(f"no evaluation (eval_freq=0, or the run ended before the first); wall time {duration(wall)}")


def report_complete(p: Plan) -> None:
    print(f"{p.run_dir} is complete: {FINAL} at step {p.complete:,}; nothing to do "
          "(to train it further, start another run_name= from it with resume=PATH)")  # fmt: skip


def hydra_files(cfg: DictConfig) -> dict[str, str]:
    """What Hydra would write to ``.hydra/``: the config (resolved here), Hydra's config and the overrides."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = cast(DictConfig, HydraConfig.instance().cfg)  # set while Hydra runs the task: the whole config
    return {"config.yaml": OmegaConf.to_yaml(cfg, resolve=True), "hydra.yaml": OmegaConf.to_yaml(hydra_cfg),
            "overrides.yaml": OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task)}  # fmt: skip


def task(cfg: DictConfig) -> None:
    """The Hydra task: one training run in Hydra's output folder. A refused run leaves no folder behind."""
    from hydra.core.hydra_config import HydraConfig

    started = time.monotonic()
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    made_by_hydra = not any(run_dir.iterdir())
    try:
        with exclusive(run_dir):  # planned and trained by this process alone
            accepted = plan(cfg, run_dir, list(hydra_cfg.overrides.task))
            if accepted.complete is not None:
                report_complete(accepted)
                return
            model = run(accepted, hydra_files(cfg))
    except SystemExit:
        if made_by_hydra and [p.name for p in run_dir.iterdir()] == [LOCK]:  # a refused new run leaves no folder behind
            (run_dir / LOCK).unlink()
            run_dir.rmdir()
        raise
    report(run_dir, model.num_timesteps, time.monotonic() - started)


def precheck(argv: list[str]) -> bool:
    """A single run: compose the config once up front, so that bad input is one line and exit 2 rather
    than Hydra's report, and a refused run exits before Hydra creates its folder. False: nothing to run."""
    cfg = load_config("config", argv, hydra=True)
    run_dir = Path(str(OmegaConf.select(cfg, "hydra.run.dir")))
    task_cfg = OmegaConf.masked_copy(cfg, [str(key) for key in cfg if key != "hydra"])
    accepted = plan(task_cfg, run_dir, [a for a in argv if not a.startswith("hydra")])
    if accepted.complete is not None:
        report_complete(accepted)
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    """Run ``python -m plastic_rl.train`` with these arguments: bad input is refused in one line before
    Hydra starts; then Hydra composes the config and runs (or sweeps) ``task``.

    :param argv: Hydra overrides and flags (default: ``sys.argv[1:]``)
    """
    import hydra

    argv = sys.argv[1:] if argv is None else argv
    if not any(a in ("-m", "--multirun", "--help", "-h", "--hydra-help", "--info") or a.startswith("-") for a in argv):
        if not precheck(argv):
            return
    sys.argv = [sys.argv[0], *argv]
    hydra.main(config_path="pkg://plastic_rl.configs", config_name="config", version_base="1.3")(task)()
