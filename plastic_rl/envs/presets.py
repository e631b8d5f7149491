"""Presets: Atari, classic control and MuJoCo through envpool, set up the way SB3's policies expect."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.vec_env import VecEnv

from plastic_rl.envs.factory import ATARI_EVAL, ATARI_TRAIN, make_vec_env
from plastic_rl.envs.registry import close_matches, envpool_family, envpool_ids_of

CLASSIC_CONTROL = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1")


def atari_id(game: str) -> str:
    """envpool's id of an Atari game; ValueError naming close matches for an unknown one.

    :param game: a game name in any case, with or without its version: ``"Pong"``, ``"pong"``, ``"Pong-v5"`` -> ``"Pong-v5"``.
    """
    games = envpool_ids_of("envpool.atari")
    by_lower = {g.lower(): g for g in games}
    candidate = game if "-v" in game else f"{game}-v5"
    if candidate in games:
        return candidate
    if candidate.lower() in by_lower:
        return by_lower[candidate.lower()]
    matches = close_matches(candidate, ids=games)
    hint = f" Close matches: {', '.join(matches)}." if matches else ""
    raise ValueError(f"{game!r} is not an envpool Atari game ({len(games)} games, e.g. Pong-v5, Breakout-v5).{hint}")


def atari(game: str, n_envs: int = 8, seed: int = 0, train: bool = True, **envpool_kwargs: Any) -> VecEnv:
    """An envpool Atari game (``*-v5``): 84x84 grey frames, a 4-frame stack, observations ``(4, 84, 84)``
    uint8 channels-first (SB3's ``CnnPolicy`` takes them as they are: no ``VecFrameStack``, no transpose).
    With either ``train``, ``info["episode"]`` reports the raw score and length of each whole game.

    :param game: the game, as ``atari_id`` takes it (``"Pong"``, ``"Pong-v5"``).
    :param n_envs: how many games run in parallel.
    :param seed: env ``i`` is seeded with ``seed + i``.
    :param train: True: episodic life (a life loss ends the learner's episode, the game goes on) and rewards
        clipped to their sign (``ATARI_TRAIN``); False (evaluation): full games, unclipped rewards (``ATARI_EVAL``).
    :param envpool_kwargs: ``make_vec_env``'s envpool keywords; they override the ``train`` settings.
    """
    settings = {**(ATARI_TRAIN if train else ATARI_EVAL), **envpool_kwargs}
    return make_vec_env(atari_id(game), n_envs=n_envs, seed=seed, backend="envpool", **settings)


def classic_control(env_id: str = "CartPole-v1", n_envs: int = 8, seed: int = 0, **envpool_kwargs: Any) -> VecEnv:
    """A classic-control task through envpool (envpool keeps gymnasium's time limits).

    :param env_id: one of ``CLASSIC_CONTROL``.
    :param n_envs: how many copies.
    :param seed: env ``i`` is seeded with ``seed + i``.
    """
    if envpool_family(env_id) != "envpool.classic_control":
        matches = close_matches(env_id, ids=CLASSIC_CONTROL)
        hint = f" Close matches: {', '.join(matches)}." if matches else ""
        raise ValueError(f"{env_id!r} is not an envpool classic-control task; accepted: {', '.join(CLASSIC_CONTROL)}.{hint}")
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, backend="envpool", **envpool_kwargs)


def mujoco_ids() -> list[str]:
    """envpool's gymnasium-style MuJoCo tasks (``HalfCheetah-v4``, ``Hopper-v4``, ...)."""
    return envpool_ids_of("envpool.mujoco.gym")


def mujoco(env_id: str = "HalfCheetah-v4", n_envs: int = 8, seed: int = 0, **envpool_kwargs: Any) -> VecEnv:
    """A MuJoCo locomotion/control task through envpool (float64 vector observations, Box actions in [-1, 1]
    or [-0.4, 0.4] for the humanoids; 1000-step time limit, truncations bootstrapped).

    :param env_id: one of ``mujoco_ids()``.
    :param n_envs: how many copies.
    :param seed: env ``i`` is seeded with ``seed + i``.
    """
    ids = mujoco_ids()
    if env_id not in ids:
        matches = close_matches(env_id, ids=ids)
        hint = f" Close matches: {', '.join(matches)}." if matches else ""
        raise ValueError(f"{env_id!r} is not an envpool MuJoCo task; accepted: {', '.join(ids)}.{hint}")
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, backend="envpool", **envpool_kwargs)
