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

import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from plastic_rl.checkpoints import TEMPORARY_PREFIX
from plastic_rl.tools.config import fail, load_config

CHECKPOINT = re.compile(r"step_(\d+)\.zip$")
FINAL = "final_model.zip"
EVALUATIONS = "evaluations.csv"
RUNTIME_KEYS = ("progress_bar", "verbose", "device", "torch_threads")  # how a run runs: free to change on resume


# -- configuration ---------------------------------------------------------------------------------
def linear(value: Any) -> Any:
    """rl-zoo3's ``lin_X`` strings become SB3 schedules (X at the start, 0 at the end)."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])
        return lambda progress_remaining: progress_remaining * start
    return value


CLASS_KEYS = ("features_extractor_class", "activation_fn", "optimizer_class", "replay_buffer_class")


def resolve_classes(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Dotted class paths in YAML (``features_extractor_class: plastic_rl.agents.extractors.MinAtarCNN``)
    become the classes SB3 wants, as rl-zoo3 does for ``activation_fn: nn.ReLU``."""
    from hydra.utils import get_class

    out = {}
    for key, value in kwargs.items():
        if isinstance(value, dict):
            value = resolve_classes(value)
        elif key in CLASS_KEYS and isinstance(value, str):
            try:
                value = get_class(value)
            except Exception as exc:  # an unknown path: one line naming the key and the value
                fail(f"agent.kwargs: {key}={value!r} is not an importable class ({type(exc).__name__})")
        out[key] = value
    return out


NOISE = {"normal": "NormalActionNoise", "ornstein-uhlenbeck": "OrnsteinUhlenbeckActionNoise"}


def with_action_noise(kwargs: dict[str, Any], action_space) -> dict[str, Any]:
    """rl-zoo3's ``noise_type``/``noise_std`` become SB3's ``action_noise`` (one sigma per action dimension)."""
    kind, std = kwargs.pop("noise_type", None), kwargs.pop("noise_std", None)
    if kind is None and std is None:
        return kwargs
    if kind not in NOISE:
        fail(f"agent.kwargs: noise_type={kind!r} is not accepted; accepted: {', '.join(NOISE)}")
    if not isinstance(std, (int, float)) or isinstance(std, bool) or std <= 0:
        fail(f"agent.kwargs: noise_std={std!r} must be a positive number")
    import numpy as np
    from stable_baselines3.common import noise

    n = int(np.prod(action_space.shape))
    return {**kwargs, "action_noise": getattr(noise, NOISE[kind])(mean=np.zeros(n), sigma=float(std) * np.ones(n))}


def agent_kwargs(cfg: DictConfig) -> dict[str, Any]:
    kwargs = OmegaConf.to_container(cfg.agent.kwargs, resolve=True) or {}
    return resolve_classes({key: linear(value) for key, value in kwargs.items()})


def check(cfg: DictConfig) -> None:
    """Reject bad values with one line each, before anything is built."""
    for key in ("total_timesteps", "n_envs", "eval_episodes"):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            fail(f"{key}={value!r} must be a positive integer")
    for key in ("checkpoint_freq", "eval_freq", "diagnostics_freq", "torch_threads"):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            fail(f"{key}={value!r} must be an integer >= 0 (0 turns it off)")
    from plastic_rl.agents import registry
    from plastic_rl.agents.callbacks import EVAL_TASKS

    if cfg.agent.algorithm not in registry.PLASTIC:
        fail(f"agent.algorithm={cfg.agent.algorithm!r} is not accepted; accepted: {', '.join(registry.PLASTIC)}")
    if cfg.eval_tasks not in EVAL_TASKS:
        fail(f"eval_tasks={cfg.eval_tasks!r} is not accepted; accepted: {', '.join(EVAL_TASKS)}")


def plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


# -- checkpoints -----------------------------------------------------------------------------------
def checkpoints(folder: Path) -> list[Path]:
    """The run's checkpoints, oldest first (by the step in their name); temporary files are never one."""
    found = [(int(m.group(1)), p) for p in (folder / "checkpoints").glob("step_*.zip")
             if not p.name.startswith(TEMPORARY_PREFIX) and (m := CHECKPOINT.search(p.name))]  # fmt: skip
    return [p for _, p in sorted(found)]


def read_checkpoint(path: Path, cfg: DictConfig):
    """The checkpoint's data (step, algorithm), checked without loading it; a bad file is one line."""
    from plastic_rl.checkpoints import read_checkpoint as read

    try:
        ckpt = read(path)
    except (OSError, ValueError) as exc:
        fail(f"resume: cannot load {exc}")
    if ckpt.algo.name != cfg.agent.algorithm:
        fail(f"resume: {path} is a {ckpt.algo.name} checkpoint, agent={cfg.agent.name} trains {cfg.agent.algorithm}")
    return ckpt


# -- accepting a run -------------------------------------------------------------------------------
@dataclass
class Plan:
    """What an accepted run does, decided before anything is written."""

    cfg: DictConfig  # the config it trains with (a resumed run's own saved config)
    run_dir: Path
    start_from: Path | None = None  # the checkpoint it continues from
    step: int = 0  # the step it starts at
    own_run: bool = False  # continues run_dir's own run: keeps its config, restores its resume state
    complete: int | None = None  # the run already finished at this step: nothing to do


def has_results(run_dir: Path) -> bool:
    return bool(checkpoints(run_dir)) or (run_dir / FINAL).exists()


def refuse_results(run_dir: Path) -> None:
    if has_results(run_dir):
        fail(f"{run_dir} already has checkpoints or a final model: pass resume=true to continue it, or another run_name=")


def saved_config(run_dir: Path) -> DictConfig | None:
    """The config the run in ``run_dir`` was started with, or None if it has none."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    try:
        return OmegaConf.load(path)
    except Exception as exc:  # a YAML error: name the file, keep the line
        fail(f"{path}: cannot read the run's config ({type(exc).__name__}: {exc})")


def keep_config(cfg: DictConfig, saved: DictConfig, overrides: list[str], run_dir: Path) -> DictConfig:
    """A resumed run keeps the config it started with: an override that would change it is refused
    (only ``RUNTIME_KEYS`` may change). Returns the saved config with this invocation's runtime keys."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key in ("resume", "run_name", *RUNTIME_KEYS) or key.startswith("hydra"):
            continue
        if plain(OmegaConf.select(cfg, key)) != plain(OmegaConf.select(saved, key)):
            fail(f"resume: {override.input_line} differs from the config {run_dir} was started with ({run_dir}/.hydra/"
                 "config.yaml): a resumed run keeps its config; to change it, start another run_name= from one of its "
                 f"checkpoints (resume={run_dir}/checkpoints/step_N.zip)")  # fmt: skip
    return OmegaConf.merge(saved, {key: cfg[key] for key in RUNTIME_KEYS}, {"resume": cfg.resume})


def plan(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> Plan:
    """Accept the run (a Plan) or refuse it (one line, exit 2); writes nothing."""
    check(cfg)
    if cfg.resume == "auto":  # a sweep that may have been interrupted: continue what exists, start the rest
        if not (has_results(run_dir) or saved_config(run_dir) is not None):
            return Plan(cfg, run_dir)
        return continue_run(cfg, run_dir, overrides)
    if cfg.resume is False or cfg.resume is None:
        refuse_results(run_dir)
        return Plan(cfg, run_dir)
    source = run_dir if cfg.resume is True else Path(str(cfg.resume)).expanduser()
    if source.is_file():
        if source.resolve().parent == (run_dir / "checkpoints").resolve():
            return continue_run(cfg, run_dir, overrides, source)
        return continue_elsewhere(cfg, run_dir, source)
    if not source.is_dir():
        fail(f"resume={source}: no such run folder or checkpoint")
    if source.resolve() == run_dir.resolve():
        return continue_run(cfg, run_dir, overrides)
    found = checkpoints(source)
    if not found:
        fail(f"resume={source}: no checkpoints/step_*.zip in it")
    return continue_elsewhere(cfg, run_dir, found[-1])


def continue_run(cfg: DictConfig, run_dir: Path, overrides: list[str], checkpoint: Path | None = None) -> Plan:
    """Continue ``run_dir``'s own run from its last checkpoint (or from step 0 if it was killed before one)."""
    saved = saved_config(run_dir)
    if saved is not None:
        cfg = keep_config(cfg, saved, overrides, run_dir)
    if (run_dir / FINAL).exists():
        return Plan(cfg, run_dir, own_run=True, complete=read_checkpoint(run_dir / FINAL, cfg).step)
    found = checkpoints(run_dir)
    if checkpoint is not None and found and found[-1].name != checkpoint.name:
        fail(f"resume={checkpoint}: {run_dir} has later checkpoints (up to {found[-1].name}) that continuing from it "
             "would overwrite; continue from the last one (resume=true) or start another run_name=")  # fmt: skip
    if found:
        return Plan(cfg, run_dir, found[-1], read_checkpoint(found[-1], cfg).step, own_run=True)
    if saved is None:
        fail(f"resume={run_dir}: no checkpoints/step_*.zip in it")
    return Plan(cfg, run_dir, own_run=True)


def continue_elsewhere(cfg: DictConfig, run_dir: Path, checkpoint: Path) -> Plan:
    """A new run in ``run_dir`` that starts from another run's checkpoint, with this invocation's config."""
    step = read_checkpoint(checkpoint, cfg).step
    refuse_results(run_dir)
    return Plan(cfg, run_dir, checkpoint, step)


# -- building --------------------------------------------------------------------------------------
def make_env(cfg: DictConfig, n_envs: int, seed: int, evaluation: bool):
    from plastic_rl import envs

    factory = getattr(envs, cfg.env.factory, None)
    if factory is None:
        fail(f"env.factory={cfg.env.factory!r} is not in plastic_rl.envs")
    kwargs = OmegaConf.to_container(cfg.env.eval_kwargs if evaluation else cfg.env.kwargs, resolve=True) or {}
    try:
        return factory(cfg.env.id, n_envs=n_envs, seed=seed, **kwargs)
    except ValueError as exc:  # an unknown id names close matches
        fail(f"env.id={cfg.env.id!r}: {exc}")


def make_envs(cfg: DictConfig, saved: dict) -> tuple[Any, Any]:
    """(training env, evaluation env or None): the ones saved with the checkpoint where there are, else new."""
    env = saved["env"] if "env" in saved else make_env(cfg, cfg.n_envs, cfg.seed, evaluation=False)
    if not cfg.eval_freq:
        return env, None
    return env, saved["eval_env"] if "eval_env" in saved else make_env(cfg, 1, cfg.seed + 10_000, evaluation=True)


def new_model(cfg: DictConfig, algorithm: type, env, run_dir: Path):
    plasticity = OmegaConf.to_container(cfg.plasticity, resolve=True)
    try:
        return algorithm(env, plasticity=plasticity, seed=cfg.seed, device=cfg.device, tensorboard_log=str(run_dir / "tb"),
                         diagnostics_freq=cfg.diagnostics_freq, verbose=cfg.verbose,
                         **with_action_noise(agent_kwargs(cfg), env.action_space))  # fmt: skip
    except (ValueError, TypeError, AssertionError) as exc:
        fail(f"agent={cfg.agent.name} on env={cfg.env.name} ({cfg.env.id}): {exc}")


def loaded_model(cfg: DictConfig, algorithm: type, checkpoint: Path, env, saved_env):
    """The checkpoint's agent on ``saved_env`` (the env as it was, episodes mid-way), else on ``env`` reset."""
    try:
        if saved_env is not None:
            model = algorithm.load(checkpoint, device=cfg.device)
            model.set_env(saved_env, force_reset=False)
        else:
            model = algorithm.load(checkpoint, env=env, device=cfg.device, force_reset=True)
    except Exception as exc:  # a corrupt or foreign file: say which, keep the rest
        fail(f"resume: cannot load {checkpoint}: {exc}")
    buffer = checkpoint.with_name(checkpoint.stem + "_replay_buffer.pkl")
    if buffer.exists():
        model.load_replay_buffer(buffer)
    if saved_env is None and hasattr(env, "seek"):  # a task sequence picks up its switch schedule where the run stopped
        env.seek(model.num_timesteps)
    return model


def resume_state(p: Plan) -> tuple[dict | None, dict]:
    """(state, envs) saved with the checkpoint an own run continues from; (None, {}) otherwise."""
    from plastic_rl.agents import state as training_state

    if not (p.own_run and p.start_from):
        return None, {}
    path = training_state.state_path(p.start_from)
    try:
        state = training_state.load(path)
    except Exception as exc:  # unreadable: the run continues as from a checkpoint without one
        print(f"note: {path} cannot be read ({type(exc).__name__}: {exc}); continuing without it")
        return None, {}
    if state is None:
        return None, {}
    try:
        return state, training_state.envs(state)
    except Exception as exc:  # an env class that changed since: its state is lost, not the run
        print(f"note: the envs saved with {p.start_from.name} cannot be restored ({type(exc).__name__}: {exc}); "
              "they start new episodes")  # fmt: skip
        return state, {}


def make_logger(model, folder: Path, purge_step: int | None):
    """SB3's logger as SB3 configures it (stdout at verbose >= 1, TensorBoard in ``folder``), except that
    TensorBoard purges the events a killed process wrote at or after ``purge_step``."""
    from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat, make_output_format
    from torch.utils.tensorboard import SummaryWriter

    class PurgingTensorBoard(TensorBoardOutputFormat):
        def __init__(self, folder: str, purge_step: int | None):  # noqa: D107 -- SB3's, with purge_step
            self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
            self._is_closed = False

    formats = [make_output_format("stdout", str(folder))] if model.verbose >= 1 else []
    logger = Logger(str(folder), [*formats, PurgingTensorBoard(str(folder), purge_step)])
    logger.log(f"Logging to {folder}")
    return logger


def make_callbacks(cfg: DictConfig, run_dir: Path, model, env, eval_env, replay_buffer: bool):
    from stable_baselines3.common.callbacks import CallbackList

    from plastic_rl.agents import state as training_state
    from plastic_rl.agents.callbacks import CheckpointCallback, EvalCallback

    def capture() -> dict:
        return training_state.capture(model, {"env": env, "eval_env": eval_env})

    callbacks = [CheckpointCallback(cfg.checkpoint_freq, run_dir / "checkpoints", save_replay_buffer=replay_buffer,
                                    save_state=capture)]  # fmt: skip
    if cfg.eval_freq and eval_env is not None:
        callbacks.append(EvalCallback(eval_env, cfg.eval_freq, cfg.eval_episodes, csv_path=run_dir / EVALUATIONS,
                                      eval_tasks=cfg.eval_tasks))  # fmt: skip
    rewarm, intervene = bool(cfg.env.get("rewarm_on_switch")), bool(cfg.env.get("intervene_on_switch"))
    if rewarm or intervene:
        from plastic_rl.envs import OnTaskSwitch

        callbacks.append(OnTaskSwitch(rewarm=rewarm, intervene=intervene))
    return CallbackList(callbacks)


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


def end_step(model, start: int, total: int) -> int | None:
    """Where SB3 stops: PPO collects whole rollouts (n_steps x n_envs env steps), off-policy agents whole
    ``train_freq`` chunks (x n_envs); None when that is counted in episodes."""
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
    from stable_baselines3.common.type_aliases import TrainFrequencyUnit

    if isinstance(model, OnPolicyAlgorithm):
        chunk = model.n_steps * model.n_envs
    elif getattr(model, "train_freq", None) is not None and model.train_freq.unit == TrainFrequencyUnit.STEP:
        chunk = model.train_freq.frequency * model.n_envs
    else:
        return None
    return start + math.ceil((total - start) / chunk) * chunk


def announce(p: Plan, model, restored: bool, state: dict | None) -> None:
    """Say where the run starts, what a resume restored, and where SB3 will stop."""
    total = p.cfg.total_timesteps
    end = end_step(model, p.step, total) if p.step < total else p.step
    if p.start_from is not None:
        how = ("random and env states restored: it continues exactly" if restored else
               "random states restored; the envs could not be saved and start new episodes" if state else
               "no resume state: random streams restart from the seed and the envs start new episodes")  # fmt: skip
        print(f"resuming {p.start_from} at step {p.step:,}; {(end or total) - p.step:,} steps to go ({how})")
    elif p.own_run:
        print(f"no checkpoint in {p.run_dir} yet: starting it again from step 0")
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


def report(run_dir: Path, step: int, wall: float) -> None:
    """Where everything is, and how the agent did: its last evaluation, and the wall time."""
    from plastic_rl.agents.callbacks import current_rows, read_evaluations

    print(f"outputs in {run_dir}: config .hydra/config.yaml, TensorBoard tb/, checkpoints checkpoints/, "
          f"evaluations {EVALUATIONS}, final model {FINAL} (step {step:,})")  # fmt: skip
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

    hydra_cfg = HydraConfig.instance().cfg
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
        accepted = plan(cfg, run_dir, list(hydra_cfg.overrides.task))
        if accepted.complete is not None:
            report_complete(accepted)
            return
        model = run(accepted, hydra_files(cfg))
    except SystemExit:
        if made_by_hydra and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise
    report(run_dir, model.num_timesteps, time.monotonic() - started)


def precheck(argv: list[str]) -> bool:
    """A single run: compose the config once up front, so that bad input is one line and exit 2 rather
    than Hydra's report, and a refused run exits before Hydra creates its folder. False: nothing to run."""
    cfg = load_config("config", argv, hydra=True)
    run_dir = Path(str(OmegaConf.select(cfg, "hydra.run.dir")))
    task_cfg = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    accepted = plan(task_cfg, run_dir, [a for a in argv if not a.startswith("hydra")])
    if accepted.complete is not None:
        report_complete(accepted)
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    import hydra

    argv = sys.argv[1:] if argv is None else argv
    if not any(a in ("-m", "--multirun", "--help", "-h", "--hydra-help", "--info") or a.startswith("-") for a in argv):
        if not precheck(argv):
            return
    sys.argv = [sys.argv[0], *argv]
    hydra.main(config_path="pkg://plastic_rl.configs", config_name="config", version_base="1.3")(task)()


if __name__ == "__main__":
    main()
