"""The tables of ``plastic_rl.report``: ``report.md``, ``scores.csv`` and ``iqm.csv`` (the plots: ``report.plots``).

Its own module: formatting only, from the numbers ``report.cli.report`` computed (``report.stats``). Every
cell says how many seeds it rests on; below ``MIN_SEEDS_INTERVAL`` an interval reads ``n/a (1 seed)``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plastic_rl.report.runs import METRICS, TRACKED
from plastic_rl.report.stats import MIN_SEEDS_INTERVAL, SEED_RULE, not_enough
from plastic_rl.report.switches import switch_section


def _fmt(value: float, digits: int = 3) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown (GitHub pipe) table.

    :param header: the column titles
    :param rows: the rows' cells, written with ``str()``
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def estimate_cell(point: float, low: float, high: float, n: int, digits: int = 3) -> str:
    """``1.21 [1.12, 1.29] (n=5)``; below ``MIN_SEEDS_INTERVAL`` seeds ``310 [n/a (1 seed)]``."""
    if n < MIN_SEEDS_INTERVAL or math.isnan(low) or math.isnan(high):
        return f"{_fmt(point, digits)} [{not_enough(n)}]"
    return f"{_fmt(point, digits)} [{_fmt(low, digits)}, {_fmt(high, digits)}] (n={n})"


def improvement_cell(p: tuple[float, float, float], n: int, n_baseline: int) -> str:
    """``0.83 [0.61, 0.97] (n=5 vs 5)``; below ``MIN_SEEDS_INTERVAL`` seeds in either group ``n/a (1 seed)``."""
    if min(n, n_baseline) < MIN_SEEDS_INTERVAL or math.isnan(p[0]):
        return not_enough(min(n, n_baseline))
    return f"{_fmt(p[0], 2)} [{_fmt(p[1], 2)}, {_fmt(p[2], 2)}] (n={n} vs {n_baseline})"


def spread_cell(mean: float, std: float, n: int) -> str:
    """``14.0 +- 1.4 (n=2)``; below ``MIN_SEEDS_INTERVAL`` seeds ``14.0 +- n/a (1 seed)``."""
    if n < MIN_SEEDS_INTERVAL or math.isnan(std):
        return f"{mean:.1f} +- {not_enough(n)}"
    return f"{mean:.1f} +- {std:.1f} (n={n})"


def incomplete_lines(result: dict[str, Any]) -> list[str]:
    """The report's list of incomplete runs and of the tasks left out of every table."""
    lines = []
    if result.get("incomplete"):
        used = any(e["included"] for e in result["incomplete"])
        lines += [f"## Incomplete runs ({len(result['incomplete'])})", "",
                  "Runs that did not reach their configured total_timesteps (killed, or still running). "
                  + ("Only the tasks they trained to the end are used (--include-incomplete)." if used else
                     "They are left out of every number below (--include-incomplete uses the tasks they completed)."), ""]  # fmt: skip
        rows = [[f"`{e['path']}`", f"`{e['group']}`", e["seed"], f"{e['reached']:,} of {e['total']:,}",
                 e["complete_tasks"] or "none", e["partial_tasks"] or "none", "yes" if e["included"] and e["complete_tasks"] else "no"]
                for e in result["incomplete"]]  # fmt: skip
        lines += [markdown_table(["run", "group", "seed", "env steps reached", "complete tasks", "partial tasks", "used"], rows), ""]
    if result.get("unevaluated"):
        lines += [f"Complete runs without an evaluation, left out: {', '.join(f'`{p}`' for p in result['unevaluated'])}.", ""]
    for task, groups in result.get("left_out_tasks", {}).get("auc", {}).items():
        lines += [f"Task {task} is left out of every table: no complete run of {', '.join(f'`{g}`' for g in groups)} on it.", ""]
    return lines


def write(out: Path, runs, result, by, reference, baseline, title, hit_window) -> None:
    """Write ``scores.csv``, ``iqm.csv`` and ``report.md``.

    :param out: an existing folder
    :param runs: the runs used, their ``group`` set
    :param result: ``report.report``'s numbers (``tasks``, ``iqm``, ``improvement``, ``gap``, ``per_task``, ``scores``,
        ``seeds``, ``normalized``, ``incomplete``, ``alarms``)
    :param by: the config keys that named the groups
    :param reference: the group the scores were normalized by (None: raw scores)
    :param baseline: the group of the probability of improvement (None: no such column)
    :param title: the heading of ``report.md``
    :param hit_window: the CUSUM hit window, a fraction of a task (for the alarms section's heading)
    """
    tasks = result["tasks"]
    with (out / "scores.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "seed", "task", "final", "auc", "path"])
        for run in runs:
            for seg in run.segments:
                writer.writerow([run.group, run.seed, seg.task, seg.final, seg.auc, run.path])
    with (out / "iqm.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "metric", "normalized", "seeds", "iqm", "ci_low", "ci_high", "p_improvement", "p_low", "p_high",
                         "gap", "gap_std"])  # fmt: skip
        for metric, values in result["iqm"].items():
            for group, (point, low, high) in values.items():
                p = result["improvement"].get(metric, {}).get(group, (math.nan,) * 3)
                gap = result["gap"].get(metric, {}).get(group, (math.nan, math.nan))
                writer.writerow([group, metric, result["normalized"][metric], result["seeds"][metric][group], point, low, high, *p, *gap])
    lines = [f"# {title}", "", f"{len(runs)} runs used, grouped by {', '.join(by)}; tasks {tasks}.", "", SEED_RULE, ""]
    lines += incomplete_lines(result)
    for metric, dropped in result.get("dropped", {}).items():
        if dropped and dropped == tasks:
            lines += [f"The reference scores <= 0 on every task: {metric} is not normalized (raw returns).", ""]
        elif dropped:
            lines += [f"Left out of the normalized {metric} (the reference's mean is not positive there): tasks {dropped}.", ""]
    lines += score_sections(result, reference, baseline)
    if result["alarms"]:
        lines += [f"## CUSUM alarms against the task switches (hit: within {hit_window:.0%} of a task after a switch)", ""]
        rows = []
        for group, stats in sorted(result["alarms"].items()):
            total = {k: sum(s[k] for s in stats) for k in ("switches", "alarms", "hits", "false_alarms")}
            delays = [s["mean_delay"] for s in stats if not math.isnan(s["mean_delay"])]
            rows.append([f"`{group}`", len(stats), total["switches"], total["hits"], total["false_alarms"], total["alarms"],
                         _fmt(float(np.mean(delays)), 4) if delays else ""])  # fmt: skip
        lines += [markdown_table(["group", "runs", "switches", "hits", "false alarms", "alarms", "mean delay (env steps)"], rows), ""]
    lines += switch_section(result.get("switches", []))
    lines += ["![IQM](iqm.png)", "", "![curves](curves.png)", ""]
    if any(r.scalars.get(t) for r in runs for t in TRACKED):
        lines += ["![plasticity](plasticity.png)", ""]
    (out / "report.md").write_text("\n".join(lines))


def score_sections(result: dict[str, Any], reference: str | None, baseline: str | None) -> list[str]:
    """The report's score tables (per metric: IQM [CI], P(improvement), gap; and the raw per-task scores),
    from ``summarize``'s numbers alone: ``report.md`` and a summary from per-run rows share them.

    :param result: ``summarize``'s (or ``report``'s) numbers
    :param reference: the group the scores were normalized by (None: raw scores)
    :param baseline: the group of the probability of improvement (None: no such column)
    """
    tasks = result["tasks"]
    lines: list[str] = []
    for metric in METRICS:
        normalized = result["normalized"][metric]
        what = f"normalized by `{reference}` on the same task" if normalized else "raw returns, not normalized"
        lines += [f"## {'Area under the curve' if metric == 'auc' else 'Return at the end of each task'} ({what})", ""]
        header = ["group", "seeds", f"IQM {'normalized' if normalized else 'raw'} {metric} [95% CI]"]
        if baseline:
            header += [f"P(> {baseline}) [95% CI]"]
        if reference is not None:
            header += [f"gap to {reference} ({'late tasks, ' if len(tasks) > 1 else ''}returns)"]  # late half of the tasks
        rows = []
        values, seeds = result["iqm"][metric], result["seeds"][metric]
        for group in sorted(values, key=lambda g: -values[g][0]):
            point, low, high = values[group][:3]
            row = [f"`{group}`", seeds[group], estimate_cell(point, low, high, seeds[group])]
            if baseline:
                p = result["improvement"].get(metric, {}).get(group)
                row += [improvement_cell(p, seeds[group], seeds[baseline]) if p else "(baseline)" if group == baseline else ""]
            if reference is not None:
                gap = result["gap"].get(metric, {}).get(group)
                row += [spread_cell(gap[0], gap[1], seeds[group]) if gap else ""]
            rows.append(row)
        lines += [markdown_table(header, rows), ""] if rows else [f"No group but the reference `{reference}`: nothing to normalize.", ""]
        per_task, counts = result["per_task"][metric], result["per_task_seeds"][metric]
        shown = sorted({t for cells in per_task.values() for t in cells}, key=lambda t: (type(t).__name__, t))
        lines += [f"Per task, raw {metric} (mean +- std over seeds, n seeds):", ""]
        lines += [markdown_table(["group", *[f"task {t}" for t in shown]],
                                 [[f"`{g}`", *[spread_cell(per_task[g][t][0], per_task[g][t][1], counts[g][t]) if t in per_task[g] else "" for t in shown]]
                                  for g in sorted(per_task)]), ""]  # fmt: skip
    return lines
