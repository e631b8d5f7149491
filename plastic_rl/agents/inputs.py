"""The diagnostics batch of an agent: its most recent observations (and actions), by buffer position.

No random sampling: taking rows by position leaves the agent's RNG streams exactly SB3's. On-policy
agents read their rollout buffer, off-policy ones their replay buffer; a network that reads actions
(the registry's ``needs_actions``) gets the stored actions with the observations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def recent_rows(array: np.ndarray, end: int, count: int, full: bool) -> np.ndarray:
    """The ``count`` most recent rows of a (steps, n_envs, ...) buffer that is written at ``end``, flattened."""
    size = array.shape[0]
    stored = size if full else end
    steps = max(1, -(-count // array.shape[1]))  # ceil(count / n_envs)
    steps = min(steps, stored)
    index = (np.arange(end - steps, end)) % size
    rows = array[index].reshape(-1, *array.shape[2:])
    return rows[-count:]


def as_tensor(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, dict):
        return {k: torch.as_tensor(v, device=device) for k, v in batch.items()}
    return torch.as_tensor(batch, device=device)


def replay_batch(buffer, count: int, keys: tuple[str, ...] = ("observations",)) -> dict[str, Any] | None:
    """The most recent ``count`` transitions of a replay buffer, by position (no sampling)."""
    if buffer is None or not (buffer.full or buffer.pos):
        return None
    out: dict[str, Any] = {}
    for key in keys:
        array = getattr(buffer, key)
        if isinstance(array, dict):
            out[key] = {k: recent_rows(v, buffer.pos, count, buffer.full) for k, v in array.items()}
        else:
            out[key] = recent_rows(array, buffer.pos, count, buffer.full)
    return out


def rollout_batch(buffer, count: int) -> Any:
    """The most recent ``count`` observations of a rollout buffer, or None before the first step."""
    if buffer is None or not (buffer.full or buffer.pos):
        return None
    end, full = (buffer.buffer_size, True) if buffer.full else (buffer.pos, False)

    def recent(array):
        if buffer.generator_ready:  # after train(), SB3 has flattened (steps, envs, ...) to (steps * envs, ...)
            return array[-count:]
        return recent_rows(array, end, count, full)

    obs = buffer.observations
    return {k: recent(v) for k, v in obs.items()} if isinstance(obs, dict) else recent(obs)


def diagnostic_inputs(model: Any, on_policy: bool, needs_actions: bool) -> Any:
    """A tensor batch of recent observations (a dict with the actions when a critic reads them), or None."""
    if on_policy:
        batch = rollout_batch(model.rollout_buffer, model.diagnostics_batch)
        return None if batch is None else as_tensor(batch, model.device)
    keys = ("observations", "actions") if needs_actions else ("observations",)
    batch = replay_batch(model.replay_buffer, model.diagnostics_batch, keys=keys)
    if batch is None:
        return None
    if not needs_actions:
        return as_tensor(batch["observations"], model.device)
    return {key: as_tensor(value, model.device) for key, value in batch.items()}
