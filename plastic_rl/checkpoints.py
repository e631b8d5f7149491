"""SB3 checkpoint zips for ``plastic_rl.diagnose``: read, identify, load, and give observations.

Reading a checkpoint's ``data`` (training step, algorithm, env id, spaces) needs only the standard
library (and gymnasium for the spaces), so bad input is reported before torch or SB3 is imported.
Loading goes through the algorithm's own ``load`` on the CPU, with no env attached and a replay
buffer of one transition. Nothing here writes to a checkpoint: zips are only ever opened for reading.

Errors are ``FileNotFoundError`` / ``ValueError`` whose message is ``"<file>: <problem>"`` on one line.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import pickle
import pickletools
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from plastic_rl.agents import registry

ZIP_MAGIC = b"PK\x03\x04"
TEMPORARY_PREFIX = ".tmp_"  # a file being written (renamed once complete): never a checkpoint
N_ENVS = 8  # parallel envs used to collect observations (rows are time-major: t0 env0..7, t1 env0..7, ...)


def fail(path: Any, problem: str, kind: type[Exception] = ValueError) -> Exception:
    """The one error format: ``<file>: <problem>`` on a single line."""
    return kind(f"{path}: {' '.join(str(problem).split())}")


Algo = registry.Algo
ALGOS = registry.ALGOS
SUPPORTED = registry.SUPPORTED


# --------------------------------------------------------------------------------------------
# Reading a checkpoint without loading it
# --------------------------------------------------------------------------------------------


def _pickled_global(entry: Any) -> tuple[str, str] | None:
    """(module, name) of the class in an SB3-serialized entry, read from the pickle opcodes (nothing runs)."""
    if not isinstance(entry, dict) or ":serialized:" not in entry:
        return None
    try:
        raw = base64.b64decode(entry[":serialized:"])
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(raw):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(arg)
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
    """What a checkpoint's ``data`` says: training step, algorithm, env id, policy class."""

    path: Path
    data: dict
    step: int
    algo: Algo
    policy_class: str
    env_id: str | None
    params_crc: int = 0  # CRC-32 of policy.pth (from the zip's directory): equal parameters, equal CRC

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
            raise fail(path, "truncated or corrupt zip archive (its end is missing: the only directory found "
                             "belongs to an archive stored inside it)")
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
            raise fail(path, f"RecurrentPPO checkpoints are not supported (policy class {module}.{name}: the LSTM "
                             "state makes layer activations depend on the episode history)")
        algo = registry.identify(data, module, name, lambda: _policy_keys(zf, path))
        recorded = data.get(registry.CLASS_KEY)
    if algo is None and isinstance(recorded, str):
        raise fail(path, f"unknown algorithm: the zip records {recorded!r}, none of the supported ones ({SUPPORTED})")
    if algo is None:
        raise fail(path, f"unknown algorithm: policy class {module}.{name} is none of the supported ones ({SUPPORTED})")
    env_id = data.get("env_id")
    return Checkpoint(path, data, step, algo, f"{module}.{name}", env_id if isinstance(env_id, str) else None,
                      params_crc)


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


def find_checkpoints(folder: Path) -> list[Path]:
    """Every ``*.zip`` under ``folder`` (recursively) but temporary ones; their order comes from their training step."""
    zips = sorted(p for p in folder.rglob("*.zip") if p.is_file() and not p.name.startswith(TEMPORARY_PREFIX))
    if not zips:
        raise fail(folder, "no checkpoint (*.zip) in this folder or below it")
    return zips


# --------------------------------------------------------------------------------------------
# Loading and networks
# --------------------------------------------------------------------------------------------


def load(ckpt: Checkpoint) -> Any:
    """The algorithm's own ``load`` on the CPU, env-less, with a one-transition replay buffer."""
    algo = ckpt.algo
    try:
        cls = algo.load_class()
    except ImportError as exc:
        raise fail(ckpt.path, f"a {algo.name} checkpoint needs the {algo.module.split('.')[0].replace('_', '-')} package ({exc})") from None
    const = lambda _: 0.0  # noqa: E731 -- schedules play no part in a forward pass
    custom = {k: v for k, v in (("learning_rate", 0.0), ("lr_schedule", const), ("clip_range", const)) if k in ckpt.data}
    if registry.ACTOR_CRITIC_TOPS <= algo.structure and "policy_kwargs" in ckpt.data:
        # Orthogonal init of a NatureCNN is a QR per layer (~2 s); the loaded parameters overwrite it anyway.
        from stable_baselines3.common.save_util import json_to_data

        kwargs = json_to_data(json.dumps({"policy_kwargs": ckpt.data["policy_kwargs"]})).get("policy_kwargs")
        if isinstance(kwargs, dict):
            custom["policy_kwargs"] = {**kwargs, "ortho_init": False}
    overrides = {"buffer_size": 1} if algo.off_policy else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls.load(ckpt.path, device="cpu", custom_objects=custom, print_system_info=False, **overrides)
    except Exception as exc:
        raise fail(ckpt.path, f"cannot load as {algo.name}: {type(exc).__name__}: {exc}") from None


Forward = Callable[[Any, Any], Any]


def networks(model: Any, algo: Algo) -> list[tuple[str, Any, Forward]]:
    """(name, module, forward) for every network of the agent (the registry's); forwards sample nothing."""
    return [(spec.name, spec.module(model.policy), spec.forward) for spec in algo.networks]


def reference_actions(model: Any, algo: Algo, obs: Any) -> Any:
    """The actor's deterministic action in the critic's (scaled) action space, for critic inputs."""
    import torch

    with torch.no_grad():
        return algo.actions(model.policy, obs)


# --------------------------------------------------------------------------------------------
# Observations
# --------------------------------------------------------------------------------------------


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
            raise fail(where, f"observations {label}of shape {got} do not fit the checkpoint's observation space "
                              f"{_describe_space(space)}: expected (N, {', '.join(map(str, shape))})")
    if array.shape[0] == 0:
        raise fail(where, f"observations {label}are empty (0 rows)")
    return array


def _channels_first_image(space) -> bool:
    """SB3's image space (Box, uint8, 3 dims, bounds 0..255) laid out channel first (SB3: smallest dim first)."""
    import gymnasium as gym
    import numpy as np

    return (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3
            and bool(np.all(space.low == 0)) and bool(np.all(space.high == 255)) and int(np.argmin(space.shape)) == 0)


def load_obs(path: str | Path, space, n_obs: int) -> Any:
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


class UnknownEnv(ValueError):
    """gymnasium does not know the env id."""


def make_env(env_id: str, where: Path):
    import gymnasium as gym

    if env_id.startswith("plastic_rl/"):  # ids plastic_rl.envs registers (MinAtar as the agents trained on it)
        import plastic_rl.envs  # noqa: F401

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return gym.make(env_id)
    except (gym.error.Error, ModuleNotFoundError) as exc:
        raise fail(where, f"env {env_id!r} does not exist ({type(exc).__name__}: {exc})", UnknownEnv) from None
    except Exception as exc:
        raise fail(where, f"cannot create env {env_id!r} ({type(exc).__name__}: {exc})") from None


def _envpool_has(env_id: str) -> bool:
    try:
        import envpool
    except ImportError:
        return False
    return env_id in envpool.list_all_envs()


def env_backend(env_id: str, where: Path) -> str:
    """``"gymnasium"`` when ``gym.make`` knows ``env_id``, else ``"envpool"`` when envpool does (an id
    like ``Pong-v5``, made with ``plastic_rl.envs.make_vec_env`` as in training); fails naming ``where``."""
    try:
        make_env(env_id, where).close()
        return "gymnasium"
    except UnknownEnv:
        if _envpool_has(env_id):
            return "envpool"
        raise


check_env = env_backend


def collect_obs(model: Any, env_id: str, n_obs: int, seed: int, where: Path, n_envs: int = N_ENVS) -> Any:
    """``n_obs`` observations visited by the model's deterministic policy in ``env_id``.

    ``n_envs`` copies of the env, seeded ``seed, seed + 1, ...`` (SB3's VecEnv seeding), step in lock
    step; the batch is time-major (every env's observation at t, then at t + 1), cut to ``n_obs`` rows.
    Image envs get SB3's own channel transpose, as in training. gymnasium makes the env when it knows
    the id, else ``plastic_rl.envs.make_vec_env`` (envpool).
    """
    import torch

    n_envs = max(1, min(n_envs, n_obs))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a forward on a handful of observations: extra threads only contend (10x slower)
    try:
        return _collect(model, env_id, n_obs, seed, where, n_envs)
    finally:
        torch.set_num_threads(threads)


def _make_vec_env(env_id: str, n_envs: int, seed: int, where: Path):
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import DummyVecEnv

    if env_backend(env_id, where) == "gymnasium":
        venv = DummyVecEnv([lambda: make_env(env_id, where)] * n_envs)
    else:
        try:
            from plastic_rl.envs import make_vec_env
        except ImportError as exc:
            raise fail(where, f"env {env_id!r} is an envpool id and plastic_rl.envs is unavailable ({exc})") from None
        try:
            venv = make_vec_env(env_id, n_envs=n_envs, seed=seed)
        except Exception as exc:
            raise fail(where, f"cannot create env {env_id!r} ({type(exc).__name__}: {exc})") from None
    venv = BaseAlgorithm._wrap_env(venv, verbose=0, monitor_wrapper=False)
    venv.seed(seed)  # env i gets seed + i at the next reset
    return venv


def _collect(model: Any, env_id: str, n_obs: int, seed: int, where: Path, n_envs: int) -> Any:
    import numpy as np

    venv = _make_vec_env(env_id, n_envs, seed, where)
    try:
        space = model.observation_space
        if not _same_space(venv.observation_space, space):
            raise fail(where, f"env {env_id!r} gives observations {_describe_space(venv.observation_space)}, the "
                              f"checkpoint expects {_describe_space(space)} (trained with wrappers such as frame "
                              "stacking or Atari preprocessing?); collect them yourself and pass --obs FILE.npy")
        obs = venv.reset()
        batches = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(math.ceil(n_obs / n_envs)):
                batches.append({k: np.array(v) for k, v in obs.items()} if isinstance(obs, dict) else np.array(obs))
                action, _ = model.predict(obs, deterministic=True)
                obs, _, _, _ = venv.step(action)
    finally:
        venv.close()
    if isinstance(batches[0], dict):
        stacked = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    else:
        stacked = np.concatenate(batches)
    return fit_obs(stacked, model.observation_space, where, n_obs)


def _same_space(a, b) -> bool:
    import gymnasium as gym

    if isinstance(a, gym.spaces.Dict) or isinstance(b, gym.spaces.Dict):
        return (isinstance(a, gym.spaces.Dict) and isinstance(b, gym.spaces.Dict) and a.spaces.keys() == b.spaces.keys()
                and all(_same_space(a[k], b[k]) for k in a.spaces))
    return type(a) is type(b) and a.shape == b.shape and getattr(a, "n", None) == getattr(b, "n", None)
