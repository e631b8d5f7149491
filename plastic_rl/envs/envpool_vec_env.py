"""``EnvPoolVecEnv``: an envpool pool as a real stable-baselines3 ``VecEnv``.

What it does that envpool alone does not (each fact measured on envpool 1.2.5, see docs/envs.md):

- **Immediate resets.** envpool resets a finished env on the *next* ``step`` call, which ignores that
  env's action and returns its reset observation. SB3 expects the reset observation in the same step,
  with the final one in ``infos[i]["terminal_observation"]``. The adapter resets the finished envs at
  once with ``pool.reset(ids)`` (which returns observations for just those ids) and puts the reset
  observations into the returned batch; ``infos[i]["TimeLimit.truncated"] = truncated and not
  terminated``, so SB3 bootstraps from the terminal observation of a truncated episode.
- **Episodic life done right.** With envpool's own ``episodic_life=True``, ``reset(id)`` after a life
  loss restarts the whole game (lives back to full, ``elapsed_step`` 0). So the pool is always made
  with ``episodic_life=False`` and the adapter does it instead, like SB3's ``EpisodicLifeEnv``: a
  decrease of ``info["lives"]`` is reported to the learner as ``done=True`` (with
  ``terminal_observation``, not truncated), and the game is *not* reset: the same observation starts
  the learner's next "episode". Only a real game over (``terminated``) or the time limit resets it.
- **Whole-game episode statistics.** ``infos[i]["episode"] = {"r", "l", "t"}`` (SB3's ``Monitor``
  keys) is reported once per real game: the sum of the *raw* reward (Atari: ``info["reward"]``, which
  is unclipped when ``reward_clip=True``) over every life, so SB3's ``ep_rew_mean`` is the game score.
  ``env_is_wrapped(Monitor)`` is therefore True, and ``evaluate_policy`` counts whole games.
- **Seeding.** envpool fixes its seeds when the pool is made (``reset(seed=...)`` is ignored with a
  warning), env ``i`` getting ``seed + i``. ``seed(s)`` therefore re-makes the pool with seed ``s`` at
  the next ``reset()`` — the VecEnv contract — unless the pool is fresh and already has that seed.

The hot path is vectorized: one ``pool.step``, numpy on whole batches, a Python loop over the
finished envs only (plus building the list of empty info dicts SB3 needs).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from plastic_rl.envs.registry import is_envpool_atari, resolve_backend

_INT32_MAX = 2**31 - 1


class EnvPoolVecEnv(VecEnv):
    """``envpool.make(env_id, env_type="gymnasium", num_envs=n_envs, seed=seed, **envpool_kwargs)`` as an SB3 VecEnv.

    :param env_id: an envpool id (``envpool.list_all_envs()``), e.g. ``"CartPole-v1"``, ``"Pong-v5"``.
    :param n_envs: number of environments; the pool runs in sync mode (``batch_size == num_envs``).
    :param seed: env ``i`` is seeded with ``seed + i`` (None: a random seed).
    :param episodic_life: Atari only: report every life loss as the end of an episode to the learner
        (done in the adapter, never by envpool: see the module docstring).
    :param envpool_kwargs: passed to ``envpool.make`` (e.g. ``reward_clip=True``, ``stack_num=4``,
        ``max_episode_steps=...``, ``render_mode="rgb_array"``).

    Attributes: ``pool`` (the envpool object), ``last_info`` (envpool's batched info dict of the last
    step, as envpool returned it, before the adapter's resets), ``env_id``, ``is_atari``, ``env_backend``
    (``"envpool"``: agents record it, so ``diagnose`` re-creates the env on the backend it was trained on).
    """

    env_backend = "envpool"

    def __init__(self, env_id: str, n_envs: int = 8, seed: int | None = 0, episodic_life: bool = False, **envpool_kwargs: Any):
        resolve_backend(env_id, "envpool")  # ValueError with close matches for an unknown id
        if int(n_envs) < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        for key in ("num_envs", "seed", "env_type"):
            if key in envpool_kwargs:
                raise ValueError(f"pass {key!r} through make_vec_env's own arguments (n_envs, seed), not as an envpool kwarg")
        if envpool_kwargs.get("batch_size", n_envs) != n_envs:
            raise ValueError("EnvPoolVecEnv runs envpool in sync mode: batch_size must equal n_envs (or be left out)")
        self.env_id = env_id
        self.is_atari = is_envpool_atari(env_id)
        if episodic_life and not self.is_atari:
            raise ValueError(f"episodic_life=True needs a game with lives (an envpool Atari id), not {env_id!r}")
        if self.is_atari:
            envpool_kwargs["episodic_life"] = False  # envpool's version restarts the game on reset(id): see above
        self.episodic_life = bool(episodic_life)
        self._make_kwargs = dict(envpool_kwargs)
        self._seed = _check_seed(seed, n_envs)
        with warnings.catch_warnings():
            # envpool builds its Box spaces from float64 bounds with a float32 dtype, and gymnasium warns
            # about that cast on every construction: noise for the user, nothing they can act on.
            warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32.*")
            self.pool = self._make_pool(self._seed, int(n_envs))
            obs_space, act_space = self.pool.single_observation_space, self.pool.single_action_space
        if not isinstance(obs_space, (gym.spaces.Box, gym.spaces.Discrete)):
            self.pool.close()
            raise ValueError(
                f"{env_id!r} has a {type(obs_space).__name__} observation space; the envpool adapter supports Box and "
                "Discrete observations: use backend='gymnasium'"
            )
        self.last_info: dict[str, Any] = {}
        super().__init__(int(n_envs), obs_space, act_space)  # asks get_attr("render_mode")
        n = self.num_envs
        self._arange = np.arange(n, dtype=np.int32)
        self._fresh = True  # no step taken since the pool was made (seed() need not re-make it)
        self._pending_seed: int | None = None
        self._actions: np.ndarray | None = None
        self._ep_return = np.zeros(n, dtype=np.float64)
        self._ep_length = np.zeros(n, dtype=np.int64)
        self._lives = np.zeros(n, dtype=np.int64)
        self._t_start = time.time()
        self.closed = False

    # --- construction ----------------------------------------------------------------------------
    def _make_pool(self, seed: int, n_envs: int):
        import envpool

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32.*")
            return envpool.make(self.env_id, env_type="gymnasium", num_envs=n_envs, seed=seed, **self._make_kwargs)

    # --- VecEnv API ------------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        if self._pending_seed is not None:
            if self._pending_seed != self._seed or not self._fresh:
                self.pool.close()
                self._seed = self._pending_seed
                self.pool = self._make_pool(self._seed, self.num_envs)
            self._pending_seed = None
        obs, info = self.pool.reset()
        obs, info = _in_env_order(obs, info, self._arange)
        self._fresh = False
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0
        if self.is_atari:
            self._lives[:] = info["lives"]
        self.last_info = info
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        obs, reward, terminated, truncated, info = self.pool.step(self._actions)
        self._actions = None
        self._fresh = False
        if not np.array_equal(info["env_id"], self._arange):  # sync mode keeps order; be sure
            obs, info, reward, terminated, truncated = _reorder(info["env_id"], obs, info, reward, terminated, truncated)
        self.last_info = info

        self._ep_return += info["reward"] if self.is_atari else reward  # Atari: the raw, unclipped reward
        self._ep_length += 1
        game_over = terminated | truncated
        dones = game_over
        if self.is_atari:
            lives = info["lives"]
            if self.episodic_life:
                dones = game_over | (lives < self._lives)
            self._lives[:] = lives

        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            finished = np.flatnonzero(dones)
            for i in finished:
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            over = np.flatnonzero(game_over)
            if over.size:
                now = round(time.time() - self._t_start, 6)
                for i in over:
                    infos[i]["episode"] = {"r": float(self._ep_return[i]), "l": int(self._ep_length[i]), "t": now}
                self._ep_return[over] = 0.0
                self._ep_length[over] = 0
                reset_obs, reset_info = self.pool.reset(over.astype(np.int32))
                ids = reset_info["env_id"]
                obs[ids] = reset_obs  # obs is a fresh array per step (envpool does not reuse it)
                if self.is_atari:
                    self._lives[ids] = reset_info["lives"]
                for i in over:
                    self.reset_infos[i] = {}
        return obs, reward.astype(np.float32, copy=False), dones, infos

    def close(self) -> None:
        if not self.closed:
            self.pool.close()
            self.closed = True

    def seed(self, seed: int | None = None) -> list[int | None]:
        """Re-seed: env ``i`` gets ``seed + i`` from the next ``reset()`` on (envpool fixes seeds at creation,
        so the pool is re-made then, unless it is fresh and already has this seed)."""
        self._pending_seed = _check_seed(seed, self.num_envs)
        return [self._pending_seed + i for i in range(self.num_envs)]

    def set_options(self, options: list[dict] | dict | None = None) -> None:
        if options and (not isinstance(options, list) or any(options)):
            raise ValueError("envpool takes no reset options; configure the env through make_vec_env's keyword arguments")

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """``"lives"`` (Atari: now, after any reset), else per-env values of envpool's info of the last step
        (``"elapsed_step"``, ``"reward"``, ...: as envpool returned them, before the adapter's resets), else
        the pool's config (``"max_episode_steps"``, ``"frame_skip"``, ...), else an attribute of the pool."""
        ids = list(self._get_indices(indices))
        if attr_name == "lives" and self.is_atari:
            return [int(self._lives[i]) for i in ids]
        if attr_name in self.last_info and isinstance(self.last_info[attr_name], np.ndarray):
            values = self.last_info[attr_name]
            return [values[i].item() if values[i].ndim == 0 else values[i] for i in ids]
        config = self.pool.config
        if attr_name in config:
            return [config[attr_name] for _ in ids]
        if attr_name == "render_mode":
            return [getattr(self.pool, "render_mode", None) for _ in ids]
        if hasattr(self.pool, attr_name):
            return [getattr(self.pool, attr_name) for _ in ids]
        raise AttributeError(f"{self.env_id!r} (envpool) has no attribute {attr_name!r}")

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise NotImplementedError(
            f"envpool envs are configured once, when the pool is made: pass {attr_name}=... to make_vec_env instead of set_attr"
        )

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        if method_name == "render":
            ids = list(self._get_indices(indices))
            return list(self._render(np.asarray(ids, dtype=np.int32)))
        raise NotImplementedError(f"envpool has no per-env Python objects to call {method_name!r} on; its batched API is on `.pool`")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """True for SB3's ``Monitor`` only: the adapter reports ``info["episode"]`` exactly as it would."""
        wrapped = isinstance(wrapper_class, type) and issubclass(Monitor, wrapper_class) and wrapper_class is not gym.Wrapper
        return [wrapped for _ in self._get_indices(indices)]

    def get_images(self) -> list[np.ndarray]:
        return list(self._render(self._arange))

    def _render(self, ids: np.ndarray) -> np.ndarray:
        if getattr(self.pool, "render_mode", None) is None:
            raise NotImplementedError(
                f"this pool was made without a render mode: make_vec_env({self.env_id!r}, render_mode='rgb_array') to render"
            )
        return self.pool.render(env_ids=ids)

    def __repr__(self) -> str:
        return f"EnvPoolVecEnv({self.env_id!r}, n_envs={self.num_envs}, seed={self._seed}, episodic_life={self.episodic_life})"


def _check_seed(seed: Any, n_envs: int) -> int:
    if seed is None:  # unseeded, as in SB3: draw one
        return int(np.random.randint(0, _INT32_MAX - int(n_envs)))
    seed = int(seed)
    if not 0 <= seed <= _INT32_MAX - int(n_envs):
        raise ValueError(f"envpool seeds are int32: seed must be in [0, {_INT32_MAX - int(n_envs)}], got {seed}")
    return seed


def _in_env_order(obs: np.ndarray, info: dict, arange: np.ndarray) -> tuple[np.ndarray, dict]:
    if np.array_equal(info["env_id"], arange):
        return obs, info
    obs, info = _reorder(info["env_id"], obs, info)[:2]
    return obs, info


def _reorder(env_id: np.ndarray, obs: np.ndarray, info: dict, *arrays: np.ndarray) -> tuple:
    """Put a batch that envpool returned out of order back into env order (never seen in sync mode)."""
    order = np.argsort(env_id)
    warnings.warn("envpool returned a batch out of env order; reordering it", RuntimeWarning, stacklevel=3)
    info = {k: (v[order] if isinstance(v, np.ndarray) and v.shape[:1] == env_id.shape else v) for k, v in info.items()}
    return (obs[order], info, *(a[order] for a in arrays))
