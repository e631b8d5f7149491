"""Environment factories: envpool -> SB3 VecEnv adapter, gymnasium fallback, presets, non-stationary tasks.

    from plastic_rl.envs import make_vec_env, atari, permuted_cartpole, TaskSequence, atari_tasks, RewarmOnSwitch

    venv = make_vec_env("CartPole-v1", n_envs=8, seed=0)          # envpool where it has the id
    venv = atari("Pong", n_envs=8, seed=0)                         # (4, 84, 84) uint8, episodic life, clipped
    venv = permuted_cartpole(n_envs=8, n_tasks=3, switch_every=50_000)   # a TaskSequence
    venv = TaskSequence(atari_tasks("Pong,Breakout"), switch_every=10**6)  # announces infos[i]["task_switch"]

Details and measured envpool facts: docs/envs.md.

``OnTaskSwitch`` and ``RewarmOnSwitch`` are agent callbacks (``plastic_rl.agents.callbacks``); they are
re-exported here, on first use, so importing the envs does not import the agents.
"""

from plastic_rl.envs.envpool_vec_env import EnvPoolVecEnv
from plastic_rl.envs.factory import ATARI_EVAL, ATARI_TRAIN, make_vec_env
from plastic_rl.envs.minatar import MinAtarObservation, minatar, minatar_sequence
from plastic_rl.envs.presets import CLASSIC_CONTROL, atari, atari_id, classic_control, mujoco, mujoco_ids
from plastic_rl.envs.registry import BACKENDS, close_matches, resolve_backend
from plastic_rl.envs.sequences import atari_sequence, atari_tasks, cartpole_physics, permuted_cartpole, permuted_tasks, physics_tasks
from plastic_rl.envs.task_sequence import TaskSequence, build_task
from plastic_rl.envs.wrappers import CartPolePhysics, PermuteObservation

__all__ = [
    "make_vec_env",
    "EnvPoolVecEnv",
    "atari",
    "atari_id",
    "classic_control",
    "mujoco",
    "mujoco_ids",
    "TaskSequence",
    "build_task",
    "permuted_tasks",
    "physics_tasks",
    "atari_tasks",
    "permuted_cartpole",
    "cartpole_physics",
    "atari_sequence",
    "minatar",
    "minatar_sequence",
    "MinAtarObservation",
    "OnTaskSwitch",
    "RewarmOnSwitch",
    "PermuteObservation",
    "CartPolePhysics",
    "resolve_backend",
    "close_matches",
    "BACKENDS",
    "CLASSIC_CONTROL",
    "ATARI_TRAIN",
    "ATARI_EVAL",
]

_AGENT_CALLBACKS = ("OnTaskSwitch", "RewarmOnSwitch")


def __getattr__(name: str):
    if name in _AGENT_CALLBACKS:
        from plastic_rl.agents import callbacks

        return getattr(callbacks, name)
    raise AttributeError(f"module 'plastic_rl.envs' has no attribute {name!r}")
