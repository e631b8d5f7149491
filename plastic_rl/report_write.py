"""The outputs of ``plastic_rl.report``: ``report.md``, ``scores.csv``, ``iqm.csv`` and the PNG plots.

Its own module: formatting only, from the numbers ``report.report`` computed (``report_stats``).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plastic_rl.report_runs import METRICS, TRACKED, Run


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


def plot(out: Path, runs: Sequence[Run], iqm: dict[str, dict[str, tuple[float, float, float]]], normalized: bool) -> list[Path]:
    """Write ``iqm.png``, ``curves.png`` and, if a run has ``TRACKED`` scalars, ``plasticity.png``; returns their paths.

    :param out: an existing folder
    :param runs: the runs, their ``group`` set
    :param iqm: metric -> group -> (IQM, CI low, CI high) (``interval_estimates`` per metric)
    :param normalized: whether the IQMs are of normalized scores (the axis label says so)
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written = []
    groups = sorted({r.group for r in runs})
    colors = {g: plt.cm.tab20(i % 20) for i, g in enumerate(groups)}  # up to 20 groups tell apart
    fig, axes = plt.subplots(1, len(iqm), figsize=(5 * len(iqm), 0.45 * len(groups) + 1.5), squeeze=False)
    for ax, (metric, values) in zip(axes[0], iqm.items()):
        order = sorted(values, key=lambda g: values[g][0])
        y = np.arange(len(order))
        points = np.array([values[g][0] for g in order])
        low = points - np.array([values[g][1] for g in order])
        high = np.array([values[g][2] for g in order]) - points
        ax.errorbar(points, y, xerr=[low, high], fmt="o", capsize=3)
        ax.set_yticks(y, order)
        ax.set_xlabel(f"IQM {'normalized ' if normalized else ''}{metric} (95% CI)")
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    written.append(out / "iqm.png")
    fig.savefig(written[-1], dpi=80)
    plt.close(fig)

    curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))  # group -> step -> returns over seeds
    for run in runs:
        for segment in run.segments:
            for step, value in zip(segment.steps, segment.returns):
                curves[run.group][step].append(value)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for group in groups:
        steps = sorted(curves[group])
        ax.plot(steps, [np.mean(curves[group][s]) for s in steps], label=group, lw=1.2, color=colors[group])
    ax.set_xlabel("env steps")
    ax.set_ylabel("evaluation return on the current task (mean over seeds)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    written.append(out / "curves.png")
    fig.savefig(written[-1], dpi=80)
    plt.close(fig)

    tracked = [t for t in TRACKED if any(t in r.scalars for r in runs)]
    if tracked:
        fig, axes = plt.subplots(1, len(tracked), figsize=(5 * len(tracked), 3.8), squeeze=False)
        for ax, tag in zip(axes[0], tracked):
            for group in groups:
                by_step: dict[int, list[float]] = defaultdict(list)
                for run in (r for r in runs if r.group == group):
                    for step, value in run.scalars.get(tag, []):
                        by_step[step].append(value)
                if by_step:
                    steps = sorted(by_step)
                    ax.plot(steps, [np.mean(by_step[s]) for s in steps], label=group, lw=1, color=colors[group])
            ax.set_title(tag)
            ax.set_xlabel("env steps")
            ax.set_yscale("log" if tag.endswith("/elr") else "linear")
        axes[0][0].legend(fontsize=6)
        fig.tight_layout()
        written.append(out / "plasticity.png")
        fig.savefig(written[-1], dpi=80)
        plt.close(fig)
    return written


def write(out: Path, runs, result, by, reference, baseline, title, hit_window) -> None:
    """Write ``scores.csv``, ``iqm.csv`` and ``report.md``.

    :param out: an existing folder
    :param runs: the runs, their ``group`` set
    :param result: ``report.report``'s numbers (``tasks``, ``iqm``, ``improvement``, ``gap``, ``per_task``, ``scores``, ``alarms``)
    :param by: the config keys that named the groups
    :param reference: the group the scores were normalized by (None: raw scores)
    :param baseline: the group of the probability of improvement (None: no such column)
    :param title: the heading of ``report.md``
    :param hit_window: the CUSUM hit window, a fraction of a task (for the alarms section's heading)
    """
    tasks = result["tasks"]
    normalized = reference is not None
    with (out / "scores.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "seed", "task", "final", "auc", "path"])
        for run in runs:
            for seg in run.segments:
                writer.writerow([run.group, run.seed, seg.task, seg.final, seg.auc, run.path])
    with (out / "iqm.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "metric", "normalized", "iqm", "ci_low", "ci_high", "p_improvement", "p_low", "p_high", "gap", "gap_std"])
        for metric, values in result["iqm"].items():
            for group, (point, low, high) in values.items():
                p = result["improvement"].get(metric, {}).get(group, (math.nan,) * 3)
                gap = result["gap"].get(metric, {}).get(group, (math.nan, math.nan))
                writer.writerow([group, metric, normalized, point, low, high, *p, *gap])
    lines = [f"# {title}", "", f"{len(runs)} runs, grouped by {', '.join(by)}; tasks {tasks}.", ""]
    for metric, dropped in result.get("dropped", {}).items():
        if dropped == tasks:
            lines += [f"The reference scores <= 0 on every task: {metric} is not normalized (raw returns).", ""]
        elif dropped:
            lines += [f"Left out of the normalized {metric} (the reference's mean is not positive there): tasks {dropped}.", ""]
    norm = f" (normalized by `{reference}` on the same task)" if normalized else ""
    for metric in METRICS:
        lines += [f"## {'Area under the curve' if metric == 'auc' else 'Return at the end of each task'}{norm}", ""]
        header = ["group", "seeds", "IQM", "95% CI"]
        if baseline:
            header += [f"P(> {baseline})", "95% CI"]
        if normalized:
            header += [f"gap to {reference} ({'late tasks, ' if len(tasks) > 1 else ''}returns)"]  # late half of the tasks
        rows = []
        values = result["iqm"][metric]
        for group in sorted(values, key=lambda g: -values[g][0]):
            point, low, high = values[group]
            seeds = len(result["scores"][metric][group])
            row = [f"`{group}`", seeds, _fmt(point), f"[{_fmt(low)}, {_fmt(high)}]"]
            if baseline:
                p = result["improvement"].get(metric, {}).get(group)
                row += [_fmt(p[0], 2), f"[{_fmt(p[1], 2)}, {_fmt(p[2], 2)}]"] if p else ["", ""]
            if normalized:
                gap = result["gap"].get(metric, {}).get(group)
                row += [f"{gap[0]:.1f} +- {gap[1]:.1f}" if gap else ""]
            rows.append(row)
        lines += [markdown_table(header, rows), ""]
        per_task = result["per_task"][metric]
        lines += [f"Per task, raw {metric} (mean +- std over seeds):", ""]
        lines += [markdown_table(["group", *[f"task {t}" for t in tasks]],
                                 [[f"`{g}`", *[f"{per_task[g][t][0]:.1f} +- {per_task[g][t][1]:.1f}" for t in tasks]]
                                  for g in sorted(per_task)]), ""]  # fmt: skip
    if result["alarms"]:
        lines += [f"## CUSUM alarms against the task switches (hit: within {hit_window:.0%} of a task after a switch)", ""]
        rows = []
        for group, stats in sorted(result["alarms"].items()):
            total = {k: sum(s[k] for s in stats) for k in ("switches", "alarms", "hits", "false_alarms")}
            delays = [s["mean_delay"] for s in stats if not math.isnan(s["mean_delay"])]
            rows.append([f"`{group}`", len(stats), total["switches"], total["hits"], total["false_alarms"], total["alarms"],
                         _fmt(float(np.mean(delays)), 4) if delays else ""])  # fmt: skip
        lines += [markdown_table(["group", "runs", "switches", "hits", "false alarms", "alarms", "mean delay (env steps)"], rows), ""]
    lines += ["![IQM](iqm.png)", "", "![curves](curves.png)", ""]
    if any(r.scalars.get(t) for r in runs for t in TRACKED):
        lines += ["![plasticity](plasticity.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
