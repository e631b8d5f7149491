"""Task variations for non-stationary training: a fixed observation permutation, changed CartPole physics."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper


def permutation(size: int, seed: int | str | Sequence[int]) -> np.ndarray:
    """A fixed random permutation of ``range(size)`` drawn from ``seed``; ``seed`` itself when it is a
    sequence (checked to be a permutation); ``range(size)`` for ``"identity"``."""
    if isinstance(seed, str):
        if seed != "identity":
            raise ValueError(f"a permutation is an int seed, a list, or 'identity'; got {seed!r}")
        return np.arange(size)
    if isinstance(seed, (int, np.integer)):
        return np.random.default_rng(int(seed)).permutation(size)
    perm = np.asarray(seed, dtype=np.int64)
    if perm.shape != (size,) or not np.array_equal(np.sort(perm), np.arange(size)):
        raise ValueError(f"a permutation of range({size}) was expected, got {list(seed)}")
    return perm


class PermuteObservation(VecEnvWrapper):
    """Shuffles the (flattened) observation entries of every env with one fixed permutation: the same
    task seen through new inputs (the RL analogue of permuted MNIST). ``terminal_observation`` is
    permuted too. The observation space keeps shape and dtype and gets bounds that hold under any
    permutation (every entry: the smallest low, the largest high), so all permutations of one env
    share one space, as ``TaskSequence`` requires.

    :param venv: a VecEnv with a Box observation space.
    :param perm: an int seed of a random permutation, the permutation itself (of the flattened entries), or ``"identity"``.
    """

    def __init__(self, venv: VecEnv, perm: int | str | Sequence[int]):
        space = venv.observation_space
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(f"PermuteObservation needs a Box observation space, not {space}")
        self.perm = permutation(int(np.prod(space.shape)), perm)
        low = np.full(space.shape, space.low.min(), dtype=space.dtype)
        high = np.full(space.shape, space.high.max(), dtype=space.dtype)
        super().__init__(venv, observation_space=gym.spaces.Box(low, high, space.shape, space.dtype))

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (a run's checkpoint keeps its envs): SB3's wrapper caches its class's members,
        an ABC's registry among them, which pickle cannot take; they are read again on unpickling."""
        state = dict(self.__dict__)
        state.pop("class_attributes", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.class_attributes = dict(inspect.getmembers(self.__class__))

    def _permute(self, obs: np.ndarray) -> np.ndarray:
        flat = obs.reshape(obs.shape[0], -1) if obs.ndim > 1 else obs.reshape(1, -1)
        return flat[:, self.perm].reshape(obs.shape)

    def reset(self) -> np.ndarray:
        return self._permute(self.venv.reset())  # type: ignore[arg-type]

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        for i in np.flatnonzero(dones):
            if "terminal_observation" in infos[i]:
                infos[i]["terminal_observation"] = self._permute(infos[i]["terminal_observation"][None])[0]
        return self._permute(obs), rewards, dones, infos


CARTPOLE_PHYSICS = ("gravity", "masscart", "masspole", "length", "force_mag", "tau")


class CartPolePhysics(gym.Wrapper):
    """gymnasium's CartPole with changed physics, e.g. ``CartPolePhysics(env, length=1.0, force_mag=5.0)``.

    :param env: a gymnasium CartPole env; its unwrapped env's constants are changed and the derived ones recomputed.
    :param physics: new values (> 0) of ``CARTPOLE_PHYSICS``; defaults: gravity 9.8, masscart 1.0, masspole 0.1,
        length 0.5 (half the pole's length), force_mag 10.0, tau 0.02 (seconds per step).
    """

    def __init__(self, env: gym.Env, **physics: Any):
        super().__init__(env)
        unknown = sorted(set(physics) - set(CARTPOLE_PHYSICS))
        if unknown:
            raise ValueError(f"unknown CartPole physics {unknown}; accepted: {', '.join(CARTPOLE_PHYSICS)}")
        base = env.unwrapped
        for key, value in physics.items():
            if not float(value) > 0:
                raise ValueError(f"CartPole {key} must be > 0, got {value}")
            setattr(base, key, float(value))
        base.total_mass = base.masspole + base.masscart  # type: ignore[attr-defined]
        base.polemass_length = base.masspole * base.length  # type: ignore[attr-defined]
        self.physics = dict(physics)
