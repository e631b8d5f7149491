"""What a resumed run needs beyond SB3's zip to continue exactly where a checkpoint left off.

SB3's zip holds the parameters, optimizer states, step and update counters, the last observation and
the episode-info buffer, and ``load`` then re-seeds python, numpy, torch and the action space with the
run's seed: the random streams restart. ``capture`` takes, at a checkpoint, what that loses:

- the random states of python's ``random``, numpy's global generator, torch (CPU, and CUDA when in
  use) and the agent's action space (DQN/SAC sample it while warming up);
- the envs (training and evaluation), pickled with cloudpickle where they can be: SB3's
  ``DummyVecEnv`` of gymnasium envs, ``TaskSequence`` and ``PermuteObservation`` over them. An envpool
  env cannot be pickled: it is stored as ``None`` and a resumed run resets it instead;
- the values recorded in SB3's logger and not yet written (the last ``train()``'s losses), so the
  resumed curve gets them at the step the uninterrupted one would.

``restore`` puts back the random states and the logger values; ``envs`` unpickles the envs.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

VERSION = 1


def state_path(checkpoint: Path) -> Path:
    """Where the state of ``checkpoints/step_N.zip`` lives: ``checkpoints/step_N_state.pkl``."""
    return checkpoint.with_name(checkpoint.stem + "_state.pkl")


def _pickled(env: Any) -> bytes | None:
    """The env as cloudpickle bytes, or None when it cannot be pickled (envpool's C++ pool)."""
    import cloudpickle

    try:
        return cloudpickle.dumps(env)
    except Exception:  # TypeError, PicklingError, ...: whatever the env is made of, it stays behind
        return None


def capture(model: Any, envs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Random states, pickled ``envs`` (name -> VecEnv) and pending logger values, taken now."""
    logger = model.logger
    return {
        "version": VERSION,
        "step": int(model.num_timesteps),
        "random": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            "action_space": model.action_space.np_random.bit_generator.state,
        },
        "envs": {name: _pickled(env) for name, env in (envs or {}).items() if env is not None},
        "logger": {
            "values": dict(logger.name_to_value),
            "counts": dict(logger.name_to_count),
            "excluded": dict(logger.name_to_excluded),
        },
    }


def save(state: dict[str, Any], path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)


def load(path: Path) -> dict[str, Any] | None:
    """The state saved with a checkpoint, or None if it has none (an older or foreign checkpoint)."""
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        state = pickle.load(f)
    return state if isinstance(state, dict) and state.get("version") == VERSION else None


def envs(state: Mapping[str, Any]) -> dict[str, Any]:
    """The envs that were pickled with the state, unpickled (name -> VecEnv)."""
    import cloudpickle

    return {name: cloudpickle.loads(raw) for name, raw in state.get("envs", {}).items() if raw is not None}


def restore(model: Any, state: Mapping[str, Any]) -> None:
    """Put back the random states and the pending logger values (after ``load``, which re-seeds)."""
    rng = state["random"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    model.action_space.np_random.bit_generator.state = rng["action_space"]
    logger, pending = model.logger, state["logger"]
    logger.name_to_value.update(pending["values"])
    logger.name_to_count.update(pending["counts"])
    logger.name_to_excluded.update(pending["excluded"])
