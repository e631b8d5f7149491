"""One process per run folder: an exclusive lock held while a run trains.

Two processes training into one folder (a second launch of a sweep while the first one's workers still
run: killing a joblib sweep's parent leaves its workers alive) interleave their evaluation rows and
checkpoints, and the folder then reads as one run that is two. The lock is an ``flock`` on
``<run>/.lock``: the kernel drops it when its process dies, however it dies, so a killed run never
blocks its own resume. Where ``fcntl`` does not exist (Windows) nothing is locked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from plastic_rl.tools.config import fail

LOCK = ".lock"


@contextmanager
def exclusive(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block; exit 2 with one line naming the holder's pid if another process has it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            fail(f"{run_dir} is being trained by another process (pid {holder}); two processes in one run folder "
                 "would interleave its evaluations and checkpoints: wait for it, or stop it first")  # fmt: skip
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
