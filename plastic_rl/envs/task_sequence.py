"""``TaskSequence``: a VecEnv whose task changes every ``switch_every`` env steps (non-stationary RL).

The RL analogue of warm-starting: the agent keeps its network while the task under it changes —
another Atari game with the same action space, CartPole seen through a new observation permutation,
CartPole with other physics. Each switch is announced, so an agent can re-warm its learning rate at
the boundary (``RewarmOnSwitch``), or not, as configured.

Counting: ``switch_every`` is in env steps, the unit of SB3's ``num_timesteps`` (one VecEnv step =
``n_envs`` env steps). Switch ``k`` (k = 1, 2, ...) happens on the VecEnv step after which the env-step
count reaches ``k * switch_every`` — exactly at it when ``switch_every`` is a multiple of ``n_envs``.
Tasks are visited in order and cycle: task index ``k % len(specs)`` after switch ``k``.

On that step, for every env: ``done=True``; ``infos[i]["terminal_observation"]`` is the last
observation in the old task (an env whose episode ended naturally on that very step keeps its own
terminal data); an episode cut short by the switch is a truncation (``TimeLimit.truncated=True``, so
SB3 bootstraps it) and is not reported in ``info["episode"]`` (its return would be partial);
``infos[i]["task_switch"] = new_task_index``; the returned observations are the first ones of fresh
episodes in the new task. ``task_index`` is the current task, ``switches`` the env-step counts at which
switches happened, ``num_timesteps`` the env steps taken.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from plastic_rl.env_ids import backend_of
from plastic_rl.envs.factory import make_vec_env
from plastic_rl.envs.wrappers import CartPolePhysics, PermuteObservation

TaskSpec = str | Mapping[str, Any] | Callable[[int, int], VecEnv]
TASK_SEED_STRIDE = 10_000  # task k's envs are seeded seed + k * TASK_SEED_STRIDE + i


def build_task(spec: TaskSpec, n_envs: int, seed: int, backend: str = "auto") -> tuple[str, VecEnv]:
    """(name, VecEnv) of one task spec; the name is the mapping's ``"name"``, else made from the id and variation.

    :param spec: an env id (``"Pong-v5"``: ``make_vec_env(id, n_envs, seed, backend)``); a mapping ``{"id": ..., "name": ...,
        "permute_obs": seed | [permutation] | "identity", "physics": {...}, "backend": ..., **make_vec_env_kwargs}``, where
        ``permute_obs`` wraps the env in ``PermuteObservation`` and ``physics`` (gymnasium's CartPole only) applies
        ``CartPolePhysics``; or a callable ``(n_envs, seed) -> VecEnv`` (named by its ``__name__``).
    :param n_envs: envs in the task's VecEnv.
    :param seed: env ``i`` is seeded ``seed + i`` (a callable gets ``seed`` itself).
    :param backend: ``make_vec_env``'s backend for an id, or for a mapping without its own ``"backend"``.
    """
    if callable(spec):
        return getattr(spec, "__name__", repr(spec)), spec(n_envs, seed)
    if isinstance(spec, str):
        return spec, make_vec_env(spec, n_envs=n_envs, seed=seed, backend=backend)
    if not isinstance(spec, Mapping):
        raise TypeError(f"a task spec is an env id, a mapping with an 'id', or a callable (n_envs, seed) -> VecEnv; got {spec!r}")
    kwargs = dict(spec)
    if "id" not in kwargs:
        raise ValueError(f"task spec {dict(spec)!r} has no 'id'")
    env_id = kwargs.pop("id")
    name = kwargs.pop("name", None)
    perm = kwargs.pop("permute_obs", None)
    physics = kwargs.pop("physics", None)
    task_backend = kwargs.pop("backend", backend)
    if physics is not None:
        if not str(env_id).startswith("CartPole"):
            raise ValueError(f"'physics' is supported for gymnasium's CartPole only, not {env_id!r}")
        from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

        venv = sb3_make_vec_env(
            env_id, n_envs=n_envs, seed=seed, wrapper_class=CartPolePhysics, wrapper_kwargs=dict(physics), env_kwargs=kwargs or None
        )
    else:
        venv = make_vec_env(env_id, n_envs=n_envs, seed=seed, backend=task_backend, **kwargs)
    if perm is not None:
        venv = PermuteObservation(venv, int(perm) if isinstance(perm, np.integer) else perm if isinstance(perm, (int, str)) else list(perm))
    if name is None:
        name = (
            env_id
            + (f"/{_physics_name(physics)}" if physics is not None else "")
            + (f"/perm{venv.perm.tolist()}" if perm is not None else "")  # type: ignore[attr-defined]
        )
    return str(name), venv


def spec_id(spec: TaskSpec) -> str | None:
    """The env id a task spec makes (a callable's ``env_id`` attribute, if it has one)."""
    if callable(spec):
        return getattr(spec, "env_id", None)
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping) and isinstance(spec.get("id"), str):
        return spec["id"]
    return None


def _physics_name(physics: Mapping[str, float]) -> str:
    return ",".join(f"{k}={v}" for k, v in dict(physics).items()) or "default"


class TaskSequence(VecEnv):
    """A VecEnv that switches task every ``switch_every`` env steps (see the module docstring).

    :param specs: task specs (``build_task``): env ids, mappings, or callables ``(n_envs, seed) -> VecEnv``.
        All tasks are built up front; their observation and action spaces must be identical.
    :param switch_every: env steps per task (>= ``n_envs``); 0: never switches by itself, only through
        ``set_task`` (an evaluation env that follows the training env's task).
    :param n_envs: envs per task.
    :param seed: task ``k`` is seeded ``seed + k * 10_000``.
    :param rewarm_on_switch: read by ``RewarmOnSwitch`` (when not told otherwise): re-warm the agent at switches.
    :param backend: default backend of the tasks given as ids.
    :param first_task: the task it starts on (the schedule then goes on from there, cycling); e.g. an
        agent trained on task k alone, from scratch, as the reference of a continual benchmark.
    """

    def __init__(
        self,
        specs: Sequence[TaskSpec],
        switch_every: int,
        n_envs: int = 8,
        seed: int = 0,
        rewarm_on_switch: bool = True,
        backend: str = "auto",
        first_task: int = 0,
    ):
        if isinstance(specs, (str, Mapping)) or len(specs) < 1:
            raise ValueError("specs must be a non-empty list of task specs")
        if int(n_envs) < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        if int(switch_every) != 0 and int(switch_every) < int(n_envs):
            raise ValueError(
                f"switch_every counts env steps (n_envs={n_envs} per VecEnv step): it must be >= n_envs (or 0: only "
                f"set_task switches), got {switch_every}"
            )
        if not 0 <= int(first_task) < len(specs):
            raise ValueError(f"first_task must be in [0, {len(specs) - 1}], got {first_task}")
        self.first_task = int(first_task)
        self.switch_every = int(switch_every)
        self.rewarm_on_switch = bool(rewarm_on_switch)
        self._seed = int(seed)
        self.task_names: list[str] = []
        self.task_ids: list[str | None] = [spec_id(spec) for spec in specs]
        self.tasks: list[VecEnv] = []
        try:
            for k, spec in enumerate(specs):
                name, venv = build_task(spec, int(n_envs), self._seed + k * TASK_SEED_STRIDE, backend)
                self.task_names.append(name)
                self.tasks.append(venv)
                if venv.num_envs != int(n_envs):
                    raise ValueError(f"task {k} ({name!r}) has {venv.num_envs} envs, expected n_envs={n_envs}")
                _check_same_spaces(self.tasks[0], self.task_names[0], venv, name, k)
        except BaseException:
            for venv in self.tasks:
                venv.close()
            raise
        self.task_index = self.first_task
        self.switches: list[int] = []
        self.num_timesteps = 0
        super().__init__(int(n_envs), self.tasks[0].observation_space, self.tasks[0].action_space)

    @property
    def task(self) -> VecEnv:
        """The VecEnv of the current task."""
        return self.tasks[self.task_index]

    @property
    def task_name(self) -> str:
        return self.task_names[self.task_index]

    @property
    def env_id(self) -> str | None:
        """The first task's env id, which agents save so that ``diagnose`` can re-create an env without
        flags; it makes that task's base env (no observation permutation, default physics)."""
        return self.task_ids[0]

    @property
    def env_backend(self) -> str | None:
        """The backend that made the first task (``"envpool"`` or ``"gymnasium"``), recorded with ``env_id``."""
        return backend_of(self.tasks[0])

    def reset(self) -> VecEnvObs:
        """Resets the current task's envs; the schedule (``num_timesteps``, ``task_index``) goes on."""
        obs = self.task.reset()
        self.reset_infos = list(getattr(self.task, "reset_infos", [{} for _ in range(self.num_envs)]))
        return obs

    def seek(self, num_timesteps: int) -> VecEnvObs:
        """Jump the schedule to ``num_timesteps`` env steps (e.g. when resuming a run): the task and the
        list of past switches become what they would have been; the new current task is reset."""
        if int(num_timesteps) < 0:
            raise ValueError(f"num_timesteps must be >= 0, got {num_timesteps}")
        self.num_timesteps = int(num_timesteps)
        done_switches = self.num_timesteps // self.switch_every if self.switch_every else 0
        self.switches = [k * self.switch_every for k in range(1, done_switches + 1)]
        self.task_index = (self.first_task + done_switches) % len(self.tasks)
        return self.reset()

    def set_task(self, index: int) -> VecEnvObs:
        """Make task ``index`` the current one and reset it, leaving the schedule's counters alone (e.g. to
        keep an evaluation env on the training env's task: ``eval_env.set_task(train_env.task_index)``)."""
        if not 0 <= int(index) < len(self.tasks):
            raise ValueError(f"task index must be in [0, {len(self.tasks) - 1}], got {index}")
        self.task_index = int(index)
        return self.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self.task.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.task.step_wait()
        self.num_timesteps += self.num_envs
        if self.switch_every and self.num_timesteps >= (len(self.switches) + 1) * self.switch_every:
            new = (self.task_index + 1) % len(self.tasks)
            for i in range(self.num_envs):
                if not dones[i]:
                    infos[i]["terminal_observation"] = obs[i]  # type: ignore[index]
                    infos[i]["TimeLimit.truncated"] = True
                infos[i]["task_switch"] = new
            dones = np.ones(self.num_envs, dtype=bool)
            self.task_index = new
            self.switches.append(self.num_timesteps)
            obs = self.reset()
        return obs, rewards, dones, infos

    def close(self) -> None:
        for venv in self.tasks:
            venv.close()

    def seed(self, seed: int | None = None) -> list[int | None]:
        """Re-seed every task (task ``k`` with ``seed + k * 10_000``) from its next reset on."""
        if seed is None:
            seed = int(np.random.randint(0, 2**30))
        self._seed = int(seed)
        seeds = [venv.seed(self._seed + k * TASK_SEED_STRIDE) for k, venv in enumerate(self.tasks)]
        return list(seeds[self.task_index])

    def set_options(self, options: list[dict] | dict | None = None) -> None:
        for venv in self.tasks:
            venv.set_options(options)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self.task.get_attr(attr_name, indices)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self.task.set_attr(attr_name, value, indices)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        return self.task.env_method(method_name, *method_args, indices=indices, **method_kwargs)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return self.task.env_is_wrapped(wrapper_class, indices)

    def get_images(self):
        return self.task.get_images()

    def __repr__(self) -> str:
        return f"TaskSequence({self.task_names}, switch_every={self.switch_every}, n_envs={self.num_envs}, task_index={self.task_index})"


def _check_same_spaces(first: VecEnv, first_name: str, venv: VecEnv, name: str, k: int) -> None:
    for attr in ("observation_space", "action_space"):
        a, b = getattr(first, attr), getattr(venv, attr)
        if a != b:
            hint = " (Atari games share Discrete(18) with full_action_space=True)" if attr == "action_space" else ""
            raise ValueError(
                f"task {k} ({name!r}) has {attr} {b}, but task 0 ({first_name!r}) has {a}: every task needs the same spaces{hint}"
            )
