"""MinAtar (Young & Tian 2019): 10x10 Atari analogues, the CPU-sized stand-in for the paper's Atari results.

    from plastic_rl.envs import minatar, minatar_sequence
    venv = minatar("Breakout", n_envs=1, seed=0)                       # (4, 10, 10) uint8 in {0, 1}
    venv = minatar_sequence("Breakout,SpaceInvaders,Freeway", switch_every=100_000)   # a TaskSequence

The ``minatar`` package's gymnasium envs (``minatar.gym.register_envs()``) give bool observations of
shape (10, 10, C), C channels per game. ``MinAtarObservation`` makes them what SB3's replay buffers
and convolutions take: channels first, uint8 0/1 (an 8x smaller replay buffer than float32), and, for a
sequence of games, zero channels padded up to a common count (Seaquest has the most: 10). A game
sequence uses the full action set (6 actions in every game) so one Q-network head serves all games.
The observation space is ``Box(0, 1, (C, 10, 10), uint8)``: not an image space for SB3 (that needs
0..255), so pair it with ``agents.extractors.MinAtarCNN`` (``policy_kwargs=dict(features_extractor_class=
MinAtarCNN)``), the MinAtar paper's small convolution, rather than NatureCNN, which needs >= 36x36.
Episodes are capped at ``max_episode_steps`` (10,000 by default; a truncation SB3 bootstraps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
from stable_baselines3.common.vec_env import VecEnv

__all__ = ["minatar", "minatar_sequence", "MinAtarObservation", "make_minatar_env", "plastic_id", "GAMES"]

GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
MAX_CHANNELS = 10  # Seaquest's
FULL_ACTIONS = 6


class MinAtarObservation(gym.ObservationWrapper):
    """bool (10, 10, C) -> uint8 (channels, 10, 10), the extra channels zero.

    :param env: a ``minatar`` package env (bool observations of shape (10, 10, C)).
    :param channels: the channels out (>= C; a game sequence pads all games to ``MAX_CHANNELS``); None: the game's C.
    """

    def __init__(self, env: gym.Env, channels: int | None = None):
        super().__init__(env)
        h, w, c = env.observation_space.shape  # type: ignore[misc]
        self.channels = c if channels is None else int(channels)
        if self.channels < c:
            raise ValueError(f"channels={channels} is fewer than the game's {c}")
        self.observation_space = gym.spaces.Box(0, 1, (self.channels, h, w), dtype=np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        out = np.zeros(self.observation_space.shape, dtype=np.uint8)  # type: ignore[type-var]
        out[: observation.shape[-1]] = np.moveaxis(observation, -1, 0)
        return out  # type: ignore[return-value]


def game_name(game: str) -> str:
    """``"breakout"``, ``"Breakout"``, ``"MinAtar/Breakout-v1"`` -> ``"Breakout"``; an unknown game names the known ones."""
    name = game.split("/", 1)[-1].split("-v", 1)[0].replace("MinAtar-", "").replace("-full", "")
    match = next((g for g in GAMES if g.lower() == name.replace("_", "").lower()), None)
    if match is None:
        raise ValueError(f"MinAtar game {game!r} is unknown; accepted: {', '.join(GAMES)}")
    return match


def minatar_id(game: str) -> str:
    """The ``minatar`` package's own gymnasium id of a game: ``"MinAtar/Breakout-v1"``."""
    return f"MinAtar/{game_name(game)}-v1"


def plastic_id(game: str, full: bool = False) -> str:
    """Our registered id of a game as made here (channels first, uint8): ``"plastic_rl/MinAtar-Breakout-v1"``;
    ``full``: the full action set and ``MAX_CHANNELS`` channels (``"...-Breakout-full-v1"``). Agents record
    it, so ``diagnose`` re-creates the same env with ``gym.make``."""
    return f"plastic_rl/MinAtar-{game_name(game)}{'-full' if full else ''}-v1"


def register() -> None:
    """Register ``plastic_id`` for every game (idempotent; needs no ``minatar`` until an env is made)."""
    for game in GAMES:
        for full in (False, True):
            env_id = plastic_id(game, full)
            if env_id not in gym.registry:
                kwargs = {"game": game, "full_action_space": full, "channels": MAX_CHANNELS if full else None}
                gym.register(env_id, entry_point="plastic_rl.envs.minatar:make_minatar_env", kwargs=kwargs)


def make_minatar_env(game: str, channels: int | None = None, full_action_space: bool = False,
                     max_episode_steps: int = 10_000, **kwargs: Any) -> gym.Env:  # fmt: skip
    # (gym.make of our registered ids lands here; the minatar package's own env has no time limit)
    """One MinAtar env, observation made channels-first uint8 (``MinAtarObservation``)."""
    try:
        from minatar.gym import register_envs
    except ImportError as exc:  # an optional dependency: say how to get it
        raise ImportError("MinAtar needs the minatar package: pip install 'plastic-rl[minatar]'") from exc
    env_id = minatar_id(game)
    if env_id not in gym.registry:
        register_envs()
    env = gym.make(env_id, use_minimal_action_set=not full_action_space, max_episode_steps=max_episode_steps, **kwargs)
    return MinAtarObservation(env, channels)


def minatar(game: str = "Breakout", n_envs: int = 1, seed: int = 0, full_action_space: bool = False,
            max_episode_steps: int = 10_000) -> VecEnv:  # fmt: skip
    """A ``DummyVecEnv`` of one MinAtar game (SB3's ``make_vec_env``: Monitor-wrapped envs).

    :param game: one of ``GAMES``, in any case or as an id (``"breakout"``, ``"MinAtar/Breakout-v1"``).
    :param n_envs: how many copies.
    :param seed: env ``i`` is seeded with ``seed + i``.
    :param full_action_space: all 6 actions and the channels padded to ``MAX_CHANNELS`` (the form a game sequence
        uses); False: the game's minimal action set and its own channels.
    :param max_episode_steps: the episode cap (a truncation, which SB3 bootstraps).
    """
    register()
    return sb3_make_vec_env(plastic_id(game, full_action_space), n_envs=n_envs, seed=seed,
                            env_kwargs={"max_episode_steps": max_episode_steps})  # fmt: skip


def minatar_sequence(games: str | Sequence[str] = "Breakout,SpaceInvaders,Freeway,Asterix,Seaquest", n_envs: int = 1,
                     seed: int = 0, switch_every: int = 100_000, rewarm_on_switch: bool = True, first_task: int = 0,
                     max_episode_steps: int = 10_000) -> VecEnv:  # fmt: skip
    """A ``TaskSequence`` of MinAtar games: the full action set and ``MAX_CHANNELS`` channels in every one.

    :param games: the games in order (names as ``minatar`` takes them), a list or one comma-separated string.
    :param n_envs: envs per game.
    :param seed: game ``k``'s env ``i`` is seeded ``seed + k * 10_000 + i``.
    :param switch_every: env steps per game (>= ``n_envs``; 0: only ``set_task`` switches).
    :param rewarm_on_switch: whether ``RewarmOnSwitch`` (left at ``rewarm=None``) re-warms the agent's lr at each switch.
    :param first_task: the index of the game it starts on.
    :param max_episode_steps: the episode cap of every game.
    """
    from plastic_rl.envs.task_sequence import TaskSequence

    if isinstance(games, str):
        games = [g.strip() for g in games.split(",") if g.strip()]
    specs = []
    for game in games:

        def build(n: int, s: int, game: str = game) -> VecEnv:
            return minatar(game, n, s, full_action_space=True, max_episode_steps=max_episode_steps)

        build.__name__ = game_name(game)
        build.env_id = plastic_id(game, full=True)  # type: ignore[attr-defined]  # TaskSequence.env_id
        specs.append(build)
    return TaskSequence(specs, switch_every, n_envs=n_envs, seed=seed, rewarm_on_switch=rewarm_on_switch, first_task=first_task)


register()  # importing plastic_rl.envs makes the ids known to gym.make (diagnose re-creates envs that way)
