"""Per-run benchmark rows: appended to a CSV under a lock, and runs claimed while they run.

Shared by ``bench_compare``, ``panel``, ``speed`` and ``speed_profile``: two benchmark processes may share one CSV and split its runs
between them; a row cut short by a kill is skipped by the readers and a fresh line follows it.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any


def read_typed(path: Path, types: Mapping[str, Callable[[str], Any]]) -> list[dict]:
    """The CSV's complete rows, each column in ``types`` converted (``{"seed": int}``); a row cut short by a
    kill (a value missing or unparsable) is skipped. No file: no rows."""
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if None in row.values():  # fewer fields than the header: cut short
                continue
            try:
                rows.append({**row, **{column: convert(row[column]) for column, convert in types.items()}})
            except (TypeError, ValueError, KeyError):
                continue
    return rows


def append_row(path: Path, row: dict, fields: list[str]) -> None:
    """Append one row under an exclusive lock (two benchmark processes may share a CSV); ``fields``: the
    CSV's columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != "\n":  # a row cut short by an interruption: start a fresh line
                f.write("\n")
        writer = csv.DictWriter(f, fields)
        if not size:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def claim(path: Path, key: tuple) -> Iterator[bool]:
    """Hold one run while it runs, so that processes sharing a CSV split the runs instead of repeating them:
    yields False if another process holds it. An flock on a file in the temp folder, freed when its
    process ends, however it ends."""
    digest = hashlib.sha1(repr((str(path.resolve()), key)).encode()).hexdigest()[:24]
    lock = Path(tempfile.gettempdir()) / "plastic_rl_bench_agents" / digest
    lock.parent.mkdir(exist_ok=True)
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
