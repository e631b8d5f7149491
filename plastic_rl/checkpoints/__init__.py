"""SB3 checkpoint zips for ``plastic_rl.diagnose``: read, identify, load, and give observations.

One module per job: ``zips`` reads a zip's ``data`` and identifies its algorithm through the registry
(standard library only, so bad input is reported before torch or SB3 is imported); ``loading`` loads it
with the algorithm's own ``load`` on the CPU, env-less, with a replay buffer of one transition, and
lists its networks; ``observations`` reads and checks observation batches; ``collect`` steps the
checkpoint's env with its policy. Nothing here writes to a checkpoint.

Errors are ``FileNotFoundError`` / ``ValueError`` whose message is ``"<file>: <problem>"`` on one line; a
folder's unreadable zips are skipped with an ``UnreadableCheckpoint`` warning in the same format.
"""

from plastic_rl.checkpoints.collect import N_ENVS, UnknownEnv, collect_obs, env_backend, make_env
from plastic_rl.checkpoints.loading import Forward, load, networks, reference_actions
from plastic_rl.checkpoints.observations import as_tensor, fit_obs, load_obs, n_rows
from plastic_rl.checkpoints.zips import (
    ALGOS,
    SUPPORTED,
    TEMPORARY_PREFIX,
    ZIP_MAGIC,
    Algo,
    Checkpoint,
    UnreadableCheckpoint,
    check_members,
    fail,
    find_checkpoints,
    read_checkpoint,
)

__all__ = [
    "ALGOS", "SUPPORTED", "TEMPORARY_PREFIX", "ZIP_MAGIC", "N_ENVS", "Algo", "Checkpoint", "Forward", "UnknownEnv",
    "UnreadableCheckpoint", "fail", "find_checkpoints", "read_checkpoint", "check_members", "load", "networks",
    "reference_actions", "as_tensor", "fit_obs", "load_obs", "n_rows", "collect_obs", "env_backend", "make_env",
]  # fmt: skip
