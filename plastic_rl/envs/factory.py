"""``make_vec_env``: one call for any environment id, envpool where it has the id, else gymnasium via SB3."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.vec_env import VecEnv

from plastic_rl.envs.registry import is_envpool_atari, resolve_backend

# How an envpool Atari game is set up for training and for evaluation (envpool's own defaults give the
# rest: 84x84 grey, 4-frame stack channels-first, frame skip 4 with max-pooling, up to 30 no-ops,
# FIRE on reset, 27,000 agent steps = 108,000 frames per game, no sticky actions).
ATARI_TRAIN = {"episodic_life": True, "reward_clip": True}
ATARI_EVAL = {"episodic_life": False, "reward_clip": False}


def make_vec_env(env_id: str, n_envs: int = 8, seed: int | None = 0, backend: str = "auto", **env_kwargs: Any) -> VecEnv:
    """An SB3 ``VecEnv`` of ``n_envs`` copies of ``env_id``.

    :param env_id: an envpool or gymnasium id (``"CartPole-v1"``, ``"Pong-v5"``, ``"module:Env-v0"``).
    :param n_envs: how many copies (>= 1).
    :param seed: env ``i`` is seeded with ``seed + i``; None: unseeded (envpool: a seed drawn at random).
    :param backend: ``"auto"`` (envpool when ``env_id in envpool.list_all_envs()``, else gymnasium),
        ``"envpool"`` (:class:`~plastic_rl.envs.EnvPoolVecEnv`) or ``"gymnasium"`` (SB3's own
        ``make_vec_env``: a ``DummyVecEnv`` of ``Monitor``-wrapped ``gym.make(env_id, **env_kwargs)``).
    :param env_kwargs: envpool: keywords of ``envpool.make`` plus the adapter's ``episodic_life``;
        gymnasium: keywords of ``gym.make``.

    An envpool Atari id gets the training setup unless ``env_kwargs`` say otherwise: episodic life
    (in the adapter) and reward clipping, ``ATARI_TRAIN``; ``info["episode"]`` still reports the raw
    score of whole games. Use :func:`~plastic_rl.envs.atari` with ``train=False`` to evaluate on full,
    unclipped games.

    Raises ValueError for an unknown id (naming close matches), a bad backend (listing the accepted
    ones) or ``n_envs < 1``.
    """
    kind = resolve_backend(env_id, backend)
    if int(n_envs) < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    if kind == "envpool":
        from plastic_rl.envs.envpool_vec_env import EnvPoolVecEnv

        if is_envpool_atari(env_id):
            env_kwargs = {**ATARI_TRAIN, **env_kwargs}
        return EnvPoolVecEnv(env_id, n_envs=int(n_envs), seed=seed, **env_kwargs)
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

    return sb3_make_vec_env(env_id, n_envs=int(n_envs), seed=seed, env_kwargs=env_kwargs or None)
