"""Ready-made task sequences: spec lists for ``TaskSequence`` and factories that build one.

Spec helpers return lists of mappings (YAML/Hydra-friendly); the factories follow the convention of
the other factories, ``factory(env_id, n_envs=..., seed=..., **kwargs) -> VecEnv``, so a config can
name them. The task *content* (permutations, physics, games) never depends on the env ``seed``: an
evaluation env made with another seed sees the same tasks as the training env.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from plastic_rl.envs.task_sequence import TaskSequence, _physics_name

DEFAULT_PHYSICS: tuple[dict[str, float], ...] = ({}, {"length": 1.0}, {"masspole": 0.5, "force_mag": 15.0})


def permuted_tasks(env_id: str = "CartPole-v1", n_tasks: int = 3, perm_seed: int = 0, **env_kwargs: Any) -> list[dict[str, Any]]:
    """``n_tasks`` task specs of ``env_id``: task 0 as it is, task k >= 1 seen through a fixed random permutation
    of its (flattened) observation entries (``PermuteObservation``).

    :param env_id: any env with a Box observation space.
    :param n_tasks: how many tasks (>= 1), the unpermuted one included.
    :param perm_seed: the seed the permutations are drawn from (not the env seed: every env seed sees the same tasks).
    :param env_kwargs: ``make_vec_env`` keywords of every task.
    """
    if int(n_tasks) < 1:
        raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
    seeds = np.random.default_rng(perm_seed).integers(0, 2**31, int(n_tasks))
    specs = []
    for k in range(int(n_tasks)):
        perm = "identity" if k == 0 else int(seeds[k])
        specs.append({"id": env_id, "permute_obs": perm, "name": f"{env_id}/perm{k}", **env_kwargs})
    return specs


def physics_tasks(variants: Sequence[Mapping[str, float]] = DEFAULT_PHYSICS, env_id: str = "CartPole-v1") -> list[dict[str, Any]]:
    """gymnasium CartPole tasks with other physics.

    :param variants: one mapping of ``CartPolePhysics`` keywords per task; ``{}``: the default physics.
    :param env_id: gymnasium's CartPole id.
    """
    return [{"id": env_id, "physics": dict(v), "name": f"{env_id}/{_physics_name(v)}"} for v in variants]


def atari_tasks(games: str | Sequence[str], train: bool = True, full_action_space: bool = True, **envpool_kwargs: Any) -> list[dict]:
    """Task specs of envpool Atari games.

    :param games: the games in order (names as ``atari_id`` takes them), a list or one string ``"Pong,Breakout"``.
    :param train: training (episodic life, clipped rewards) or evaluation settings, as in ``atari``.
    :param full_action_space: every game gets the same ``Discrete(18)`` actions, as ``TaskSequence`` requires;
        False: each game's minimal set (only games that share it can form a sequence).
    :param envpool_kwargs: ``make_vec_env``'s envpool keywords for every game; they override the ``train`` settings.
    """
    from plastic_rl.envs.factory import ATARI_EVAL, ATARI_TRAIN
    from plastic_rl.envs.presets import atari_id

    if isinstance(games, str):
        games = [g.strip() for g in games.split(",") if g.strip()]
    settings = {**(ATARI_TRAIN if train else ATARI_EVAL), "full_action_space": full_action_space, **envpool_kwargs}
    return [{"id": atari_id(g), "backend": "envpool", **settings} for g in games]


def permuted_cartpole(
    env_id: str = "CartPole-v1",
    n_envs: int = 8,
    seed: int = 0,
    n_tasks: int = 3,
    switch_every: int = 50_000,
    perm_seed: int = 0,
    rewarm_on_switch: bool = True,
    first_task: int = 0,
    **env_kwargs: Any,
) -> TaskSequence:
    """A ``TaskSequence`` of ``permuted_tasks(env_id, n_tasks, perm_seed, **env_kwargs)``.

    :param env_id: any env with a Box observation space (CartPole by default).
    :param n_envs: envs per task.
    :param seed: task ``k``'s env ``i`` is seeded ``seed + k * 10_000 + i``.
    :param n_tasks: how many tasks, the unpermuted one included.
    :param switch_every: env steps per task (>= ``n_envs``; 0: only ``set_task`` switches).
    :param perm_seed: the seed the permutations are drawn from.
    :param rewarm_on_switch: whether ``RewarmOnSwitch`` (left at ``rewarm=None``) re-warms the agent's lr at each switch.
    :param first_task: the index of the task it starts on.
    """
    specs = permuted_tasks(env_id, n_tasks, perm_seed, **env_kwargs)
    return TaskSequence(specs, switch_every, n_envs=n_envs, seed=seed, rewarm_on_switch=rewarm_on_switch, first_task=first_task)


def cartpole_physics(
    env_id: str = "CartPole-v1",
    n_envs: int = 8,
    seed: int = 0,
    variants: Sequence[Mapping[str, float]] = DEFAULT_PHYSICS,
    switch_every: int = 50_000,
    rewarm_on_switch: bool = True,
    first_task: int = 0,
) -> TaskSequence:
    """A ``TaskSequence`` of CartPole physics variants (``physics_tasks``).

    :param env_id: gymnasium's CartPole id.
    :param n_envs: envs per task.
    :param seed: task ``k``'s env ``i`` is seeded ``seed + k * 10_000 + i``.
    :param variants: one mapping of ``CartPolePhysics`` keywords per task; ``{}``: the default physics.
    :param switch_every: env steps per task (>= ``n_envs``; 0: only ``set_task`` switches).
    :param rewarm_on_switch: whether ``RewarmOnSwitch`` (left at ``rewarm=None``) re-warms the agent's lr at each switch.
    :param first_task: the index of the task it starts on.
    """
    return TaskSequence(physics_tasks(variants, env_id), switch_every, n_envs=n_envs, seed=seed,
                        rewarm_on_switch=rewarm_on_switch, first_task=first_task)  # fmt: skip


def atari_sequence(
    games: str | Sequence[str] = "Pong,Breakout,SpaceInvaders",
    n_envs: int = 8,
    seed: int = 0,
    switch_every: int = 1_000_000,
    train: bool = True,
    full_action_space: bool = True,
    rewarm_on_switch: bool = True,
    first_task: int = 0,
    **envpool_kwargs: Any,
) -> TaskSequence:
    """A ``TaskSequence`` of envpool Atari games (``atari_tasks``), e.g. ``atari_sequence("Pong,Breakout")``.

    :param games: the games in order, a list or one comma-separated string.
    :param n_envs: envs per task.
    :param seed: task ``k``'s env ``i`` is seeded ``seed + k * 10_000 + i``.
    :param switch_every: env steps per task (>= ``n_envs``; 0: only ``set_task`` switches).
    :param train: training (episodic life, clipped rewards) or evaluation settings, as in ``atari``.
    :param full_action_space: ``Discrete(18)`` in every game (False works only for games that share their action set).
    :param rewarm_on_switch: whether ``RewarmOnSwitch`` (left at ``rewarm=None``) re-warms the agent's lr at each switch.
    :param first_task: the index of the task it starts on.
    """
    specs = atari_tasks(games, train=train, full_action_space=full_action_space, **envpool_kwargs)
    return TaskSequence(specs, switch_every, n_envs=n_envs, seed=seed, rewarm_on_switch=rewarm_on_switch, first_task=first_task)
