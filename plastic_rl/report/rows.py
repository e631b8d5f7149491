"""Per-run rows: one CSV row per (run, task) with its scores, so a report's tables can be recomputed from a
small committed file (``docs/data/continual_<suite>.csv``) once the run folders are gone.

Columns: ``suite,arm,seed,task,game,auc,final`` (``arm``: the report's group; ``task``: the task index in a
sequence, or the game of a single-game run; ``game``: what the agent played on that task).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plastic_rl.report.runs import METRICS

FIELDS = ["suite", "arm", "seed", "task", "game", "auc", "final"]


def rows_of(tables: dict[str, dict[str, dict[tuple[int, Any], float]]], suite: str, game_of: Callable[[Any], str]) -> list[dict]:
    """The rows of ``summarize``'s score tables (metric -> group -> {(seed, task): score}), sorted.

    :param tables: ``result["tables"]`` of ``report`` or ``summarize``
    :param suite: the suite's name, written in every row
    :param game_of: task -> the game played on it
    """
    cells = sorted({(g, s, t) for table in tables.values() for g, cells in table.items() for s, t in cells},
                   key=lambda c: (c[0], c[1], type(c[2]).__name__, c[2]))  # fmt: skip
    return [{"suite": suite, "arm": g, "seed": s, "task": t, "game": game_of(t),
             **{m: tables[m][g].get((s, t), "") for m in METRICS if m in tables}} for g, s, t in cells]  # fmt: skip


def write_rows(path: str | Path, rows: list[dict], fields: list[str] = FIELDS) -> None:
    """Write the rows (columns ``fields``) to ``path`` atomically (a temporary file renamed over it: a kill
    leaves the old file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _task(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a per-run CSV, seeds and integer tasks as ints, scores as floats (an empty score: absent).

    ValueError naming the file when its header is not ``FIELDS``.
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != FIELDS:
            raise ValueError(f"{path}: columns {reader.fieldnames} are not the per-run columns {FIELDS}")
        return [{**r, "seed": int(r["seed"]), "task": _task(r["task"]), **{m: float(r[m]) for m in METRICS if r[m] != ""}}
                for r in reader]  # fmt: skip


def tables_of(rows: list[dict]) -> dict[str, dict[str, dict[tuple[int, Any], float]]]:
    """metric -> group -> {(seed, task): score}: ``score_table``'s form, for ``summarize``."""
    tables: dict[str, dict[str, dict[tuple[int, Any], float]]] = {m: {} for m in METRICS}
    for r in rows:
        for m in METRICS:
            if m in r:
                tables[m].setdefault(r["arm"], {})[(r["seed"], r["task"])] = r[m]
    return tables
