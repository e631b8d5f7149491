"""Collecting observations: the checkpoint's env, re-created as training made it, stepped by its policy."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from plastic_rl.checkpoints.observations import _describe_space, fit_obs
from plastic_rl.checkpoints.zips import fail

N_ENVS = 8  # parallel envs used to collect observations (rows are time-major: t0 env0..7, t1 env0..7, ...)


class UnknownEnv(ValueError):
    """gymnasium does not know the env id."""


def make_env(env_id: str, where: Path):
    import gymnasium as gym

    if env_id.startswith("plastic_rl/"):  # ids plastic_rl.envs registers (MinAtar as the agents trained on it)
        import plastic_rl.envs  # noqa: F401

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return gym.make(env_id)
    except (gym.error.Error, ModuleNotFoundError) as exc:
        raise fail(where, f"env {env_id!r} does not exist ({type(exc).__name__}: {exc})", UnknownEnv) from None
    except Exception as exc:
        raise fail(where, f"cannot create env {env_id!r} ({type(exc).__name__}: {exc})") from None


def env_backend(env_id: str, where: Path, recorded: str | None = None) -> str:
    """``"envpool"`` or ``"gymnasium"``: the backend the checkpoint was trained on, by the one rule
    (``plastic_rl.env_ids.checkpoint_backend``: the backend it records; SB3's zips, which record none,
    were made the SB3 way, on gymnasium where it has the id). ``recorded`` may also be a user's choice
    (``"auto"`` is training's rule). A gymnasium id is also made once here (its dependencies are
    installed). Fails naming ``where``."""
    from plastic_rl.env_ids import checkpoint_backend, envpool_ids

    if env_id.startswith("plastic_rl/"):  # ids plastic_rl.envs registers (MinAtar as the agents trained on it)
        import plastic_rl.envs  # noqa: F401
    if recorded == "envpool" and not envpool_ids():
        problem = f"env {env_id!r} is to be made by envpool, which is not installed here (it is Linux-only)"
        raise fail(where, f"{problem}: pass --backend gymnasium (backend='gymnasium' in Python)")
    try:
        backend = checkpoint_backend(env_id, recorded)
    except ValueError as exc:
        raise fail(where, f"env {env_id!r} does not exist ({exc})", UnknownEnv) from None
    if backend == "gymnasium":
        make_env(env_id, where).close()
    return backend


def collect_obs(model: Any, env_id: str, n_obs: int, seed: int, where: Path, n_envs: int = N_ENVS, backend: str | None = None) -> Any:
    """``n_obs`` observations visited by the model's deterministic policy in ``env_id``.

    ``n_envs`` copies of the env, seeded ``seed, seed + 1, ...`` (SB3's VecEnv seeding), step in lock
    step; the batch is time-major (every env's observation at t, then at t + 1), cut to ``n_obs`` rows.
    Image envs get SB3's own channel transpose, as in training. ``backend``: the one the checkpoint
    records, or a user's choice; None: as for a checkpoint that records none (``env_backend``).
    """
    import torch

    n_envs = max(1, min(n_envs, n_obs))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a forward on a handful of observations: extra threads only contend (10x slower)
    try:
        return _collect(model, env_id, n_obs, seed, where, n_envs, backend)
    finally:
        torch.set_num_threads(threads)


def _make_vec_env(env_id: str, n_envs: int, seed: int, where: Path, backend: str | None):
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

    # diagnose resolved (and checked) the backend before loading anything: don't make the env twice to check it again
    kind = backend if backend in ("envpool", "gymnasium") else env_backend(env_id, where, backend)
    if kind == "gymnasium":
        venv: VecEnv = DummyVecEnv([lambda: make_env(env_id, where)] * n_envs)
    else:
        try:
            from plastic_rl.envs import make_vec_env
        except ImportError as exc:
            raise fail(where, f"env {env_id!r} is an envpool id and plastic_rl.envs is unavailable ({exc})") from None
        try:
            venv = make_vec_env(env_id, n_envs=n_envs, seed=seed, backend="envpool")
        except Exception as exc:
            raise fail(where, f"cannot create env {env_id!r} ({type(exc).__name__}: {exc})") from None
    venv = BaseAlgorithm._wrap_env(venv, verbose=0, monitor_wrapper=False)
    venv.seed(seed)  # env i gets seed + i at the next reset
    return venv


def _collect(model: Any, env_id: str, n_obs: int, seed: int, where: Path, n_envs: int, backend: str | None) -> Any:
    import numpy as np

    venv = _make_vec_env(env_id, n_envs, seed, where, backend)
    try:
        space = model.observation_space
        if not _same_space(venv.observation_space, space):
            raise fail(
                where,
                f"env {env_id!r} gives observations {_describe_space(venv.observation_space)}, the "
                f"checkpoint expects {_describe_space(space)} (trained with wrappers such as frame "
                "stacking or Atari preprocessing?); collect them yourself and pass --obs FILE.npy",
            )
        obs = venv.reset()
        batches: list[Any] = []  # arrays, or dicts of arrays for a Dict space
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(math.ceil(n_obs / n_envs)):
                batches.append({k: np.array(v) for k, v in obs.items()} if isinstance(obs, dict) else np.array(obs))
                action, _ = model.predict(obs, deterministic=True)
                obs, _, _, _ = venv.step(action)
    finally:
        venv.close()
    stacked: dict[str, np.ndarray] | np.ndarray
    if isinstance(batches[0], dict):
        stacked = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    else:
        stacked = np.concatenate(batches)
    return fit_obs(stacked, model.observation_space, where, n_obs)


def _same_space(a, b) -> bool:
    import gymnasium as gym

    if isinstance(a, gym.spaces.Dict) or isinstance(b, gym.spaces.Dict):
        return (
            isinstance(a, gym.spaces.Dict)
            and isinstance(b, gym.spaces.Dict)
            and a.spaces.keys() == b.spaces.keys()
            and all(_same_space(a[k], b[k]) for k in a.spaces)
        )
    return type(a) is type(b) and a.shape == b.shape and getattr(a, "n", None) == getattr(b, "n", None)
