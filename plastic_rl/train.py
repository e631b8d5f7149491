"""Train an agent: ``python -m plastic_rl.train [env=Atari env.id=Breakout-v5 agent=ppo plasticity=elr ...]``.

Hydra composes ``configs/config.yaml`` with the chosen ``env``, ``agent`` and ``plasticity`` options and
rl-zoo3's hyperparameters for the pair (``configs/hparams/<agent>_<env>.yaml``). Each run writes to
``runs/<run_name>/``: the resolved config (``.hydra/``), TensorBoard logs (``tb/``), checkpoints
(``checkpoints/step_<N>.zip``, written atomically), the final model (``final_model.zip``) and the
evaluation returns (``evaluations.csv``). ``resume=true`` continues that folder from its last
checkpoint; ``-m seed=0,1,2 plasticity=none,elr`` sweeps (``hydra/launcher=joblib`` runs them in
parallel). Bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from plastic_rl.tools.config import fail, load_config

CHECKPOINT = re.compile(r"step_(\d+)\.zip$")


# -- configuration ---------------------------------------------------------------------------------
def linear(value: Any) -> Any:
    """rl-zoo3's ``lin_X`` strings become SB3 schedules (X at the start, 0 at the end)."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])
        return lambda progress_remaining: progress_remaining * start
    return value


def agent_kwargs(cfg: DictConfig) -> dict[str, Any]:
    kwargs = OmegaConf.to_container(cfg.agent.kwargs, resolve=True) or {}
    return {key: linear(value) for key, value in kwargs.items()}


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


# -- checkpoints -----------------------------------------------------------------------------------
def checkpoints(folder: Path) -> list[Path]:
    """The run's checkpoints, oldest first (by the step in their name, which they are written under)."""
    found = [(int(m.group(1)), p) for p in (folder / "checkpoints").glob("step_*.zip") if (m := CHECKPOINT.search(p.name))]
    return [p for _, p in sorted(found)]


def atomic_save(model, path: Path, replay_buffer: bool = False) -> None:
    """Write to a temporary file next to ``path`` and rename: a crash never leaves a half-written zip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if replay_buffer and getattr(model, "replay_buffer", None) is not None:  # first: the zip marks completion
        buffer = path.with_name(path.stem + "_replay_buffer.pkl")
        tmp_buffer = buffer.with_name(f".tmp_{buffer.name}")
        model.save_replay_buffer(tmp_buffer)
        os.replace(tmp_buffer, buffer)
    tmp = path.with_name(f".tmp_{path.name}")  # keeps the .zip suffix, so SB3 writes exactly this file
    model.save(tmp)
    os.replace(tmp, path)


def resume_point(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The checkpoint to continue from, or None for a fresh run; fails on an unusable request."""
    if cfg.resume is False or cfg.resume is None:
        if checkpoints(run_dir):
            fail(f"{run_dir} already has checkpoints: pass resume=true to continue it, or another run_name=")
        return None
    target = run_dir if cfg.resume is True else Path(str(cfg.resume)).expanduser()
    if target.is_file():
        if target.suffix != ".zip":
            fail(f"resume={target}: not a checkpoint zip")
        return target
    if not target.is_dir():
        fail(f"resume={target}: no such run folder or checkpoint")
    found = checkpoints(target)
    if not found:
        fail(f"resume={target}: no checkpoints/step_*.zip in it")
    return found[-1]


# -- callbacks -------------------------------------------------------------------------------------
def make_callbacks(cfg: DictConfig, run_dir: Path, eval_env, replay_buffer: bool):
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback

    class Checkpoint(BaseCallback):
        """Every ``checkpoint_freq`` env steps, between a train() and the next rollout (a consistent state)."""

        def __init__(self, freq: int):
            super().__init__()
            self.freq = freq
            self.last = None

        def _on_rollout_start(self) -> None:
            if self.last is None:
                self.last = self.num_timesteps
            if self.freq and self.num_timesteps - self.last >= self.freq:
                self.last = self.num_timesteps
                atomic_save(self.model, run_dir / "checkpoints" / f"step_{self.num_timesteps:010d}.zip", replay_buffer)

        def _on_step(self) -> bool:
            return True

    class EvalCsv(BaseCallback):
        """Appends each evaluation to ``evaluations.csv`` (step, mean and std return, episodes)."""

        def _on_step(self) -> bool:
            path = run_dir / "evaluations.csv"
            new = not path.exists()
            with path.open("a", newline="") as f:
                writer = csv.writer(f)
                if new:
                    writer.writerow(["step", "mean_return", "std_return", "episodes"])
                parent = self.parent
                writer.writerow([self.num_timesteps, parent.last_mean_reward, getattr(parent, "_last_std", ""), cfg.eval_episodes])
            return True

    callbacks = [Checkpoint(cfg.checkpoint_freq)]
    if cfg.eval_freq and eval_env is not None:
        callbacks.append(
            EvalCallback(
                eval_env,
                eval_freq=max(1, cfg.eval_freq // cfg.n_envs),
                n_eval_episodes=cfg.eval_episodes,
                deterministic=True,
                callback_after_eval=EvalCsv(),
                verbose=0,
            )
        )
    if cfg.env.get("rewarm_on_switch"):
        from plastic_rl.envs import RewarmOnSwitch

        callbacks.append(RewarmOnSwitch())
    return CallbackList(callbacks)


# -- the run ---------------------------------------------------------------------------------------
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


def run(cfg: DictConfig, run_dir: Path) -> Path:
    check(cfg)
    start_from = resume_point(cfg, run_dir)
    if cfg.torch_threads:
        import torch

        # SB3's networks are small: a second intra-op thread buys little and, when the cores are
        # shared, OpenMP spin-waits made PPO on CartPole 5-30x slower here.
        torch.set_num_threads(cfg.torch_threads)
    from plastic_rl import agents

    algorithm = getattr(agents, cfg.agent.algorithm)
    env = make_env(cfg, cfg.n_envs, cfg.seed, evaluation=False)
    eval_env = make_env(cfg, 1, cfg.seed + 10_000, evaluation=True) if cfg.eval_freq else None
    plasticity = {k: v for k, v in OmegaConf.to_container(cfg.plasticity, resolve=True).items()}
    replay_buffer = len(env.observation_space.shape or ()) < 3  # not for image buffers (GBs)
    if start_from is None:
        try:
            model = algorithm(
                env,
                plasticity=plasticity,
                seed=cfg.seed,
                device=cfg.device,
                tensorboard_log=str(run_dir / "tb"),
                diagnostics_freq=cfg.diagnostics_freq,
                verbose=cfg.verbose,
                **agent_kwargs(cfg),
            )
        except (ValueError, TypeError, AssertionError) as exc:
            fail(f"agent={cfg.agent.name} on env={cfg.env.name} ({cfg.env.id}): {exc}")
        remaining = cfg.total_timesteps
    else:
        try:
            model = algorithm.load(start_from, env=env, device=cfg.device, force_reset=True)
        except Exception as exc:  # a corrupt or foreign file: say which, keep the rest
            fail(f"resume: cannot load {start_from}: {exc}")
        buffer = start_from.with_name(start_from.stem + "_replay_buffer.pkl")
        if buffer.exists():
            model.load_replay_buffer(buffer)
        remaining = cfg.total_timesteps - model.num_timesteps
        if hasattr(env, "seek"):  # a task sequence picks up its switch schedule where the run stopped
            env.seek(model.num_timesteps)
        print(f"resuming {start_from} at step {model.num_timesteps:,}; {max(remaining, 0):,} steps to go")
    if remaining > 0:
        model.learn(
            remaining,
            callback=make_callbacks(cfg, run_dir, eval_env, replay_buffer),
            progress_bar=cfg.progress_bar,
            reset_num_timesteps=start_from is None,
            tb_log_name=type(model).__name__,
        )
    final = run_dir / "final_model.zip"
    atomic_save(model, final)
    env.close()
    if eval_env is not None:
        eval_env.close()
    return final


def task(cfg: DictConfig) -> None:
    """The Hydra task: one training run in Hydra's output folder."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    final = run(cfg, run_dir)
    print(f"outputs in {run_dir}: config .hydra/config.yaml, TensorBoard tb/, checkpoints checkpoints/, "
          f"evaluations evaluations.csv, final model {final.name}")


def main(argv: list[str] | None = None) -> None:
    import hydra

    argv = sys.argv[1:] if argv is None else argv
    if not any(a in ("-m", "--multirun", "--help", "-h", "--hydra-help", "--info") or a.startswith("--cfg") for a in argv):
        # Compose once up front so an unknown group option or key is one line and exit 2, not Hydra's report.
        load_config("config", [a for a in argv if not a.startswith("hydra")])
    sys.argv = [sys.argv[0], *argv]
    hydra.main(config_path="pkg://plastic_rl.configs", config_name="config", version_base="1.3")(task)()


if __name__ == "__main__":
    main()
