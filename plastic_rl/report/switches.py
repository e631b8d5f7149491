"""The plasticity diagnostics at each task switch: what the network that meets the next task looks like.

One row per run, tracked tag and mark: the last value the run logged before a switch of its sequence
(strictly before it, so an intervention made at the switch is not in it), and at the run's own end. A
run of one task of a sequence (``fresh``) has one mark, its end, at its task's place in the sequence, so
it sits beside the sequence's agents at the same switch. The rows are small and committed (a
``continual`` report writes them next to its per-run rows), so the table comes back without the runs.

Columns: ``arm,seed,step,tag,value`` (``step``: the env step of the mark in the sequence).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plastic_rl.report.rows import write_rows
from plastic_rl.report.runs import TRACKED, Run
from plastic_rl.report.stats import MIN_SEEDS_INTERVAL, not_enough

FIELDS = ["arm", "seed", "step", "tag", "value"]


def marks(run: Run) -> list[tuple[int, bool]]:
    """The (step in the sequence, is the run's own end) marks of a run: each switch it trains through, and its end."""
    every, total, start = run.switch_every, run.total, run.position
    if not every or total is None:
        return []
    end = start + total
    return [(m, False) for m in range(start + every, end, every)] + [(end, True)]


def switch_rows(runs: Sequence[Run], tags: Sequence[str] = TRACKED) -> list[dict[str, Any]]:
    """The rows of the runs (their ``group`` is the arm): per mark and tag, the last value logged on the
    task that ends there (before the switch; at the run's end, up to it). A tag with no point there: no row."""
    rows = []
    for run in runs:
        every = run.switch_every
        for tag in tags:
            points = sorted((run.position + step, value) for step, value in run.scalars.get(tag, []))
            for mark, own_end in marks(run):
                last = [v for s, v in points if mark - every < s and (s <= mark if own_end else s < mark)]
                if last:
                    rows.append({"arm": run.group, "seed": run.seed, "step": mark, "tag": tag, "value": float(last[-1])})
    return sorted(rows, key=lambda r: (r["arm"], r["tag"], r["step"], r["seed"]))


def write_switch_rows(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write the rows to ``path`` atomically (``rows.write_rows``: a kill leaves the old file)."""
    write_rows(path, rows, FIELDS)


def read_switch_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a switches CSV; ValueError naming the file when its header is not ``FIELDS``."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != FIELDS:
            raise ValueError(f"{path}: columns {reader.fieldnames} are not the switch columns {FIELDS}")
        return [{**r, "seed": int(r["seed"]), "step": int(r["step"]), "value": float(r["value"])} for r in reader]


def cell(values: list[float]) -> str:
    """``0.0123 +- 0.0021 (n=5)``: mean and sample std over seeds; below ``MIN_SEEDS_INTERVAL`` no spread."""
    mean = float(np.mean(values))
    if len(values) < MIN_SEEDS_INTERVAL:
        return f"{mean:.3g} +- {not_enough(len(values))}"
    return f"{mean:.3g} +- {float(np.std(values, ddof=1)):.2g} (n={len(values)})"


def switch_section(rows: list[dict[str, Any]], arms: Sequence[str] | None = None) -> list[str]:
    """Markdown: one table per tag, an arm per row, a mark per column (mean +- std over seeds). Empty without rows."""
    from plastic_rl.report.tables import markdown_table

    rows = [r for r in rows if arms is None or r["arm"] in arms]
    if not rows:
        return []
    lines = ["## Plasticity at each switch", "",
             "The last value each run logged before a switch (an intervention at the switch is not in it), and at its "
             "end; a one-task run (`fresh`) at its task's place. Mean +- sample std over seeds.", ""]  # fmt: skip
    order = list(arms) if arms is not None else sorted({r["arm"] for r in rows})
    for tag in [t for t in TRACKED if any(r["tag"] == t for r in rows)] + sorted({r["tag"] for r in rows} - set(TRACKED)):
        values: dict[tuple[str, int], list[float]] = defaultdict(list)
        for r in rows:
            if r["tag"] == tag and not math.isnan(r["value"]):
                values[r["arm"], r["step"]].append(r["value"])
        steps = sorted({s for _, s in values})
        table = [[f"`{a}`", *(cell(values[a, s]) if values.get((a, s)) else "–" for s in steps)]
                 for a in order if any((a, s) in values for s in steps)]  # fmt: skip
        lines += [f"`{tag}`:", "", markdown_table(["arm", *(f"step {s:,}" for s in steps)], table), ""]
    return lines
