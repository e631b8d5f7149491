"""Observation batches for diagnostics: read from ``.npy``/``.npz`` files or arrays, checked against a space."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from plastic_rl.checkpoints.zips import ZIP_MAGIC, fail


def _describe_space(space) -> str:
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        return "{" + ", ".join(f"{k!r}: {_describe_space(s)}" for k, s in space.spaces.items()) + "}"
    return f"{type(space).__name__}{tuple(space.shape) if space.shape is not None else ''} {space.dtype}"


def _fit_array(array, space, where: Path, key: str = "") -> Any:
    """``array`` as a batch of the policy's observations: shape (N, *space.shape), the space's dtype."""
    import numpy as np

    label = f"[{key!r}] " if key else ""
    shape = tuple(space.shape)
    got = tuple(array.shape)
    if got[1:] != shape or len(got) != len(shape) + 1:
        # A channel-last image batch for a channel-first policy (SB3 transposes image envs) is accepted.
        if len(got) == 4 and _channels_first_image(space) and got[1:] == (shape[1], shape[2], shape[0]):
            array = np.transpose(array, (0, 3, 1, 2))
        else:
            raise fail(
                where,
                f"observations {label}of shape {got} do not fit the checkpoint's observation space "
                f"{_describe_space(space)}: expected (N, {', '.join(map(str, shape))})",
            )
    if array.shape[0] == 0:
        raise fail(where, f"observations {label}are empty (0 rows)")
    return array


def _channels_first_image(space) -> bool:
    """SB3's image space (Box, uint8, 3 dims, bounds 0..255) laid out channel first (SB3: smallest dim first)."""
    import gymnasium as gym
    import numpy as np

    return (
        isinstance(space, gym.spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and bool(np.all(space.low == 0))
        and bool(np.all(space.high == 255))
        and int(np.argmin(space.shape)) == 0
    )


def load_obs(path: str | os.PathLike, space, n_obs: int) -> Any:
    """The first ``n_obs`` rows of a ``.npy`` (or ``.npz`` with one array per key of a Dict space)."""
    import gymnasium as gym
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise fail(path, "no such observation file", FileNotFoundError)
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY" and magic[:4] != ZIP_MAGIC:
        raise fail(path, "not a .npy/.npz observation file (no NumPy header)")
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise fail(path, f"not a .npy/.npz observation file ({type(exc).__name__}: {exc})") from None
    if isinstance(space, gym.spaces.Dict):
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise fail(path, f"a Dict observation space {_describe_space(space)} needs a .npz with one array per key")
        missing = sorted(set(space.spaces) - set(loaded.files))
        if missing:
            raise fail(path, f"missing observation keys {missing} (file has {sorted(loaded.files)})")
        return fit_obs({k: loaded[k] for k in space.spaces}, space, path, n_obs)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        if len(loaded.files) != 1:
            raise fail(path, f"a .npz for a {type(space).__name__} space must hold one array, it holds {loaded.files}")
        loaded = loaded[loaded.files[0]]
    return fit_obs(loaded, space, path, n_obs)


def fit_obs(obs: Any, space, where: Any, n_obs: int) -> Any:
    """Check an observation batch (array or dict of arrays) against ``space``; first ``n_obs`` rows, copied."""
    import gymnasium as gym
    import numpy as np

    if isinstance(space, gym.spaces.Dict):
        if not isinstance(obs, dict):
            raise fail(where, f"a Dict observation space needs a dict of arrays, got {type(obs).__name__}")
        out = {k: _fit_array(np.asarray(obs[k]), s, where, k) for k, s in space.spaces.items()}
        rows = {v.shape[0] for v in out.values()}
        if len(rows) != 1:
            raise fail(where, f"observation keys have different numbers of rows {sorted(rows)}")
        return {k: np.ascontiguousarray(v[:n_obs], dtype=space.spaces[k].dtype) for k, v in out.items()}
    array = _fit_array(np.asarray(obs), space, where)
    return np.ascontiguousarray(array[:n_obs], dtype=space.dtype)


def n_rows(obs: Any) -> int:
    return next(iter(obs.values())).shape[0] if isinstance(obs, dict) else obs.shape[0]


def as_tensor(obs: Any) -> Any:
    import torch

    if isinstance(obs, dict):
        return {k: torch.as_tensor(v) for k, v in obs.items()}
    return torch.as_tensor(obs)
