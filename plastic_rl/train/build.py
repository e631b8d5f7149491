"""Building a training run from its config: envs, the agent (new or from a checkpoint), logger, callbacks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from omegaconf import DictConfig, OmegaConf

from plastic_rl.tools.config import fail
from plastic_rl.train.plan import EVALUATIONS, Plan

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm


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
    kwargs = cast(dict[str, Any], OmegaConf.to_container(cfg.agent.kwargs, resolve=True) or {})  # a YAML mapping
    return resolve_classes({key: linear(value) for key, value in kwargs.items()})


def make_env(cfg: DictConfig, n_envs: int, seed: int, evaluation: bool):
    from plastic_rl import envs

    factory: Any = getattr(envs, cfg.env.factory, None)  # None: fail() below exits
    if factory is None:
        fail(f"env.factory={cfg.env.factory!r} is not in plastic_rl.envs")
    kwargs = cast(dict[str, Any], OmegaConf.to_container(cfg.env.eval_kwargs if evaluation else cfg.env.kwargs, resolve=True) or {})
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


def loaded_model(cfg: DictConfig, algorithm: type[BaseAlgorithm], checkpoint: Path, env, saved_env):
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
        cast("OffPolicyAlgorithm", model).load_replay_buffer(buffer)  # only off-policy agents save one
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
    from plastic_rl.train.logger import make_logger as make

    return make(model, folder, purge_step)


def make_callbacks(cfg: DictConfig, run_dir: Path, model, env, eval_env, replay_buffer: bool):
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    from plastic_rl.agents import state as training_state
    from plastic_rl.agents.callbacks import CheckpointCallback, EvalCallback

    def capture() -> dict:
        return training_state.capture(model, {"env": env, "eval_env": eval_env})

    callbacks: list[BaseCallback] = [CheckpointCallback(cfg.checkpoint_freq, run_dir / "checkpoints", save_replay_buffer=replay_buffer,
                                    save_state=capture)]  # fmt: skip
    if cfg.eval_freq and eval_env is not None:
        callbacks.append(EvalCallback(eval_env, cfg.eval_freq, cfg.eval_episodes, csv_path=run_dir / EVALUATIONS,
                                      eval_tasks=cfg.eval_tasks))  # fmt: skip
    rewarm, intervene = rewarm_on_switch(cfg), bool(cfg.env.get("intervene_on_switch"))
    fresh_buffer = bool(cfg.env.get("fresh_buffer_on_switch"))
    if rewarm or intervene or fresh_buffer:
        from plastic_rl.envs import OnTaskSwitch

        callbacks.append(OnTaskSwitch(rewarm=rewarm, intervene=intervene, fresh_buffer=fresh_buffer))
    return CallbackList(callbacks)


def rewarm_on_switch(cfg: DictConfig) -> bool:
    """``env.rewarm_on_switch``: true, false, or ``auto`` (the task sequences' default): re-warm at each
    announced switch when the plasticity waits to be told of a change (schedules ``on-demand``, the default
    preset's, and ``decay``; ``project="on-rewarm"``/``"from-rewarm"`` without a schedule); a cyclic or CUSUM
    schedule re-warms by itself."""
    from plastic_rl.elr import SHRINK_MODES  # torch: not at the CLI's import

    value = cfg.env.get("rewarm_on_switch")  # plan.check accepted it
    if value == "auto":
        schedule = cfg.plasticity.get("schedule")
        return schedule in ("decay", "on-demand") or (schedule is None and cfg.plasticity.get("project") in SHRINK_MODES)
    return bool(value)


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
