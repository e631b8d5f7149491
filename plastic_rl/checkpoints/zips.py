"""Reading an SB3 checkpoint zip without loading it: its ``data``, the step, the algorithm (registry).

Needs only the standard library (and gymnasium for the spaces), so bad input is reported before torch
or SB3 is imported. Nothing here writes to a checkpoint: zips are only ever opened for reading.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, cast

from plastic_rl.agents import registry

ZIP_MAGIC = b"PK\x03\x04"
TEMPORARY_PREFIX = ".tmp_"  # a file being written (renamed once complete): never a checkpoint
Algo: TypeAlias = registry.Algo  # an alias (not a variable), so annotations can use it
ALGOS = registry.ALGOS
SUPPORTED = registry.SUPPORTED


def fail(path: Any, problem: str, kind: type[Exception] = ValueError) -> Exception:
    """The one error format: ``<file>: <problem>`` on a single line."""
    return kind(f"{path}: {' '.join(str(problem).split())}")


def _pickled_global(entry: Any) -> tuple[str, str] | None:
    """(module, name) of the class in an SB3-serialized entry, read from the pickle opcodes (nothing runs)."""
    if not isinstance(entry, dict) or ":serialized:" not in entry:
        return None
    try:
        raw = base64.b64decode(entry[":serialized:"])
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(raw):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(cast(str, arg))  # these opcodes' argument is the string
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                return strings[-2], strings[-1]
            elif op.name == "GLOBAL":
                module, _, name = str(arg).partition(" ")
                return module, name
    except (binascii.Error, ValueError, TypeError):
        return None
    return None


@dataclass
class Checkpoint:
    """What a checkpoint's ``data`` says: training step, algorithm, env id and backend, policy class."""

    path: Path
    data: dict
    step: int
    algo: Algo
    policy_class: str
    env_id: str | None
    params_crc: int = 0  # CRC-32 of policy.pth (from the zip's directory): equal parameters, equal CRC
    env_backend: str | None = None  # the backend the env was made by in training (plastic_rl's zips record it)

    def observation_space(self):
        """The saved observation space (gymnasium), or None if it cannot be unpickled here."""
        entry = self.data.get("observation_space")
        try:
            space = pickle.loads(base64.b64decode(entry[":serialized:"]))
        except Exception:  # an old gym space, a missing module: the loaded model will tell
            return None
        import gymnasium as gym

        return space if isinstance(space, gym.spaces.Space) else None


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.exists():
        raise fail(path, "no such file or folder", FileNotFoundError)
    if not path.is_file():
        raise fail(path, "not a file")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        with open(path, "rb") as f:
            head = f.read(4)
        if head == ZIP_MAGIC:
            raise fail(path, "truncated or corrupt zip archive (no central directory)") from None
        raise fail(path, "not a zip file (an SB3 checkpoint is a .zip saved by model.save)") from None
    except OSError as exc:
        raise fail(path, f"cannot read: {exc.strerror or exc}") from None


def _inner_archive(zf: zipfile.ZipFile) -> bool:
    """Whether the directory zipfile found starts past the file's first byte: in a file cut short, the
    last directory left is that of a member which is a zip itself (SB3 stores ``policy.pth`` uncompressed)."""
    return min((info.header_offset for info in zf.infolist()), default=0) > 0


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint's ``data`` and identify its algorithm; loads nothing heavy."""
    path = Path(path)
    with _open_zip(path) as zf:
        names = set(zf.namelist())
        if "data" not in names and _inner_archive(zf):
            raise fail(
                path,
                "truncated or corrupt zip archive (its end is missing: the only directory found belongs to an archive stored inside it)",
            )
        if "data" not in names:
            raise fail(path, "not an SB3 checkpoint: the zip has no 'data' entry")
        try:
            data = json.loads(zf.read("data"))
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise fail(path, f"corrupt SB3 checkpoint: cannot read its 'data' entry ({exc})") from None
        if not isinstance(data, dict):
            raise fail(path, "corrupt SB3 checkpoint: 'data' is not a JSON object")
        if "policy.pth" not in names:
            raise fail(path, "not a loadable SB3 checkpoint: the zip has no 'policy.pth' (saved without parameters)")
        params_crc = zf.getinfo("policy.pth").CRC
        step = data.get("num_timesteps")
        if not isinstance(step, int) or isinstance(step, bool):
            raise fail(path, "not an SB3 checkpoint: its data has no integer 'num_timesteps'")
        found = _pickled_global(data.get("policy_class"))
        module, name = found if found else (str((data.get("policy_class") or {}).get("__module__", "?")), "?")
        if module == "sb3_contrib.common.recurrent.policies":
            raise fail(
                path,
                f"RecurrentPPO checkpoints are not supported (policy class {module}.{name}: the LSTM "
                "state makes layer activations depend on the episode history)",
            )
        algo = registry.identify(data, module, name, lambda: _policy_keys(zf, path))
        recorded = data.get(registry.CLASS_KEY)
    if algo is None and isinstance(recorded, str):
        raise fail(path, f"unknown algorithm: the zip records {recorded!r}, none of the supported ones ({SUPPORTED})")
    if algo is None:
        raise fail(path, f"unknown algorithm: policy class {module}.{name} is none of the supported ones ({SUPPORTED})")
    env_id, backend = data.get("env_id"), data.get("env_backend")
    env_id = env_id if isinstance(env_id, str) else None
    backend = backend if env_id is not None and backend in ("envpool", "gymnasium") else None
    return Checkpoint(path, data, step, algo, f"{module}.{name}", env_id, params_crc, backend)


def _pickle_strings(raw: bytes) -> list[str]:
    """Every string constant of a pickle stream, read from its opcodes (nothing is unpickled)."""
    out: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(raw):
            if isinstance(arg, str) and op.name.endswith("UNICODE"):
                out.append(arg)
    except Exception:  # a truncated or odd stream: what was read so far
        pass
    return out


def _policy_keys(zf: zipfile.ZipFile, path: Path) -> set[str]:
    """Parameter names in ``policy.pth`` (torch's zip format: the strings of its ``data.pkl``), no torch import."""
    try:
        raw = zf.read("policy.pth")
        with zipfile.ZipFile(io.BytesIO(raw)) as inner:
            pkl = next((n for n in inner.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            raw = inner.read(pkl) if pkl else b""
    except zipfile.BadZipFile:
        pass  # torch's legacy (non-zip) format: a pickle stream as well
    except (OSError, EOFError) as exc:
        raise fail(path, f"corrupt SB3 checkpoint: cannot read policy.pth ({exc})") from None
    return {s for s in _pickle_strings(raw) if "." in s and s.rsplit(".", 1)[-1] in PARAM_SUFFIXES}


PARAM_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked", "log_std")


class UnreadableCheckpoint(UserWarning):
    """A zip in a folder of checkpoints that cannot be read (truncated, corrupt, not SB3's): it is skipped."""


def find_checkpoints(folder: Path) -> list[Path]:
    """Every readable checkpoint ``*.zip`` under ``folder`` (recursively), temporary ones never; their order
    comes from their training step. A zip that cannot be read (``read_checkpoint`` or ``check_members`` fails: cut
    short, corrupt, not a checkpoint) is skipped with an ``UnreadableCheckpoint`` warning naming it; ValueError if
    none is left."""
    import warnings

    zips = sorted(p for p in folder.rglob("*.zip") if p.is_file() and not p.name.startswith(TEMPORARY_PREFIX))
    if not zips:
        raise fail(folder, "no checkpoint (*.zip) in this folder or below it")
    readable, problems = [], []
    for path in zips:
        try:
            read_checkpoint(path)
            check_members(path)
        except (OSError, ValueError) as exc:
            problems.append(" ".join(str(exc).split()))
        else:
            readable.append(path)
    if not readable:
        more = f" (and {len(problems) - 1} more unreadable)" if len(problems) > 1 else ""
        raise fail(folder, f"no readable checkpoint in this folder or below it: {problems[0]}{more}")
    for problem in problems:
        warnings.warn(f"{problem}; skipped, the other checkpoints are read", UnreadableCheckpoint, stacklevel=2)
    return readable


def check_members(path: Path) -> None:
    """Read every member of a checkpoint zip through its CRC check; ValueError naming the file if one fails
    (a checkpoint whose directory is intact but whose contents are not: ``read_checkpoint`` reads only ``data``)."""
    import zlib

    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
        raise fail(path, f"corrupt zip archive ({exc})") from None
    if bad is not None:
        raise fail(path, f"corrupt zip archive: its member {bad!r} fails its CRC check")
