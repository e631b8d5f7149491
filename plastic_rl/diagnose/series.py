"""Which checkpoints form a series (one per folder, one for the zip arguments), the cheap checks of
the observation source before anything loads, and the layer widths a checkpoint's weights record."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from plastic_rl import checkpoints as ckpts
from plastic_rl.checkpoints import Checkpoint, fail


def _note(log, message: str) -> None:
    if log is not None:
        log(message)


def _series(paths: Iterable[str | os.PathLike], log=None) -> list[tuple[str, list[Checkpoint]]]:
    """[(label, checkpoints ordered by step)]: one per folder, one for all zip arguments together.

    A checkpoint with the same step and the same parameters as one before it (a run's
    ``final_model.zip`` next to its last ``checkpoints/step_N.zip``) is left out, with a note.
    """
    groups: list[tuple[str, list[Path]]] = []
    zips: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise fail(path, "no such file or folder", FileNotFoundError)
        if path.is_dir():
            groups.append((str(path), ckpts.find_checkpoints(path)))
        else:
            if not zips:
                groups.append(("", zips))  # placeholder: the zips' series sits where the first zip was given
            zips.append(path)
    if not groups:
        raise ValueError("no checkpoint given: pass checkpoint zips or run folders")
    out = []
    for label, members in groups:
        if members is zips:
            label = str(zips[0]) if len(zips) == 1 else (os.path.commonpath([str(z.parent) for z in zips]) or ".")
        found = []
        for member in members:
            key = member.resolve()
            if key not in seen:
                seen.add(key)
                found.append(ckpts.read_checkpoint(member))
        kept: dict[tuple[int, int], Checkpoint] = {}
        for ckpt in sorted(found, key=lambda c: (c.step, str(c.path))):
            twin = kept.setdefault((ckpt.step, ckpt.params_crc), ckpt)
            if twin is not ckpt:
                _note(log, f"{ckpt.path}: left out, same step and parameters as {twin.path}")
        if kept:
            out.append((label, list(kept.values())))
    return out


def _reference(series: list[Checkpoint], obs_from: str) -> Checkpoint:
    return series[0] if obs_from == "first" else series[-1]


def _plan_obs(series: list[Checkpoint], env: str | None, obs: Any, n_obs: int, obs_from: str, backend: str | None = None):
    """Cheap checks before anything loads: the env exists, an observation file fits. -> (env_id, backend, batch).

    The env is made on ``backend`` if given, else on the backend the checkpoint records for its own env id."""
    ref = _reference(series, obs_from)
    if obs is None:
        env_id = env or ref.env_id
        if env_id is None:
            raise fail(
                ref.path,
                f"this {ref.algo.name} checkpoint records no env id (vanilla SB3 checkpoints never do): pass --env ID or --obs FILE.npy",
            )
        if backend is None and env_id == ref.env_id:
            backend = ref.env_backend
        return env_id, ckpts.env_backend(env_id, ref.path, backend), None
    space = ref.observation_space()
    if space is None:  # checked once the model is loaded
        return None, None, None
    if isinstance(obs, (str, os.PathLike)):
        return None, None, ckpts.load_obs(obs, space, n_obs)
    return None, None, ckpts.fit_obs(obs, space, "obs", n_obs)


@functools.lru_cache(maxsize=256)
def _weight_shapes(checkpoint: str, _mtime: int) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of every ``*.weight`` in a checkpoint's ``policy.pth`` ({} if it cannot be read);
    ``_mtime`` keys the cache (a file written again is read again)."""
    import io
    import zipfile

    import torch

    try:
        with zipfile.ZipFile(checkpoint) as zf:
            state = torch.load(io.BytesIO(zf.read("policy.pth")), map_location="cpu", weights_only=True)
    except (OSError, KeyError, RuntimeError, ValueError, zipfile.BadZipFile, EOFError):
        return {}
    return {k: tuple(v.shape) for k, v in state.items() if k.endswith(".weight") and getattr(v, "ndim", 0) >= 2}


def layer_widths(checkpoint: str | os.PathLike, network: str, layers: Iterable[str]) -> dict[str, int]:
    """layer -> its width (output units or channels: the first dim of its weight), read from the checkpoint zip.

    ``layers`` are diagnose's layer keys (``srank/<layer>``), relative to the network: in ``policy.pth`` the
    weight is ``<network>.<layer>.weight`` (``q_net.q_net.0``) or ``<layer>.weight`` (PPO's ``policy``).
    A layer with no such weight, or a checkpoint that cannot be read, is left out.

    :param checkpoint: the checkpoint zip (a row's ``checkpoint``)
    :param network: the network (a row's ``network``)
    :param layers: the layer keys
    """
    try:
        mtime = os.stat(checkpoint).st_mtime_ns
    except OSError:
        return {}
    shapes = _weight_shapes(str(checkpoint), mtime)
    out = {}
    for layer in layers:
        for key in (f"{network}.{layer}.weight", f"{layer}.weight"):
            if key in shapes:
                out[layer] = shapes[key][0]
                break
    return out
