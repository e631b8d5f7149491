"""The PNG plots of ``plastic_rl.report``: ``iqm.png``, ``curves.png`` and ``plasticity.png``.

Curves are faceted by family (``family``: one panel per family of arms, so thirteen arms are not one
tangle of lines), each group drawn as its mean over seeds with a shaded 95% t-interval (none for one
seed), with markers wherever a line has few points (a single point is still seen), and with the task
switches as vertical lines. Ratios are drawn on a fixed axis (``ratio_axis``), never autoscaled.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plastic_rl.report.runs import TRACKED, Run

FAMILIES = ("SB3 (constant lr)", "normalized (NaP)", "ELR", "interventions", "fresh replay buffer at each switch (-fb)", "other")
INTERVENTIONS = ("redo", "shrink-perturb", "reset")
RATIO_FLOOR = 0.05  # ratios all below it are drawn on [0, RATIO_FLOOR], the rest on [0, 1]
MARKER_POINTS = 25  # lines of at most this many points get markers
RATIO_TAGS = ("plasticity/dormant_ratio",)
PLASTICITY_BINS = 60  # the steps of the plasticity plot are cut into this many bins (``binned``)


def family(group: str) -> str:
    """The family of an arm (a group of the report), the facet its curves are drawn in.

    ``fresh``, ``none`` and ``none-<k>x``: SB3's agent at a constant lr; ``nap`` and ``nap-*``: the
    normalized network; ``elr``, any ``elr-*`` and the default's rules ``norm-*``: ELR; ``redo``,
    ``shrink-perturb``, ``reset``: the interventions; any arm + ``-fb`` (``tools/continual``'s fresh
    replay buffer at each switch): its own family; anything else: other. A group of several keys
    (``--by a,b``) goes by its first value.

    :param group: the group's name (``Run.group``)
    """
    name = group.split(",")[0].strip().lower()
    if name.endswith("-fb"):
        return FAMILIES[4]
    if name in ("none", "fresh") or re.fullmatch(r"none-\d+x", name):
        return FAMILIES[0]
    if name == "nap" or name.startswith("nap-"):
        return FAMILIES[1]
    if name == "elr" or name.startswith(("elr-", "norm-")):
        return FAMILIES[2]
    if name in INTERVENTIONS:
        return FAMILIES[3]
    return FAMILIES[5]


def ratio_axis(values: Sequence[float]) -> tuple[float, str]:
    """The fixed y range of a ratio (a fraction of units): [0, ``RATIO_FLOOR``] if every value is below
    it, else [0, 1]; and the note the axis label carries about it."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    top = RATIO_FLOOR if finite and max(finite) <= RATIO_FLOOR else 1.0
    return top, f"fixed axis 0-{top:g}"


def mean_band(points: dict[float, list[float]], positive: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, mean, band low, band high of values per x: the band is the 95% t-interval of the mean over
    the values at that x, NaN where there is a single value (no band for one seed).

    :param positive: a quantity drawn on a log axis: the band never goes below the smallest value at that x
    """
    from scipy import stats

    xs = np.array(sorted(points), dtype=float)
    mean = np.array([np.mean(points[x]) for x in xs])
    half = np.array([stats.t.ppf(0.975, len(points[x]) - 1) * np.std(points[x], ddof=1) / math.sqrt(len(points[x]))
                     if len(points[x]) > 1 else math.nan for x in xs])  # fmt: skip
    low = np.maximum(mean - half, [min(points[x]) for x in xs]) if positive else mean - half
    return xs, mean, low, mean + half


def binned(runs: Sequence[Run], tag: str, bins: int = PLASTICITY_BINS) -> dict[float, list[float]]:
    """x -> the runs' values of ``tag``, each run's last value in each of ``bins`` equal bins of the steps
    (x: a bin's right edge): runs that log at different steps (on their own log writes) share points,
    so the mean and band at x are over the seeds, not over whichever run happened to log there."""
    end = max((s + r.position for r in runs for s, _ in r.scalars.get(tag, [])), default=0)
    width = max(1, math.ceil(end / bins))
    out: dict[float, list[float]] = defaultdict(list)
    for run in runs:
        last = {}
        for step, value in sorted(run.scalars.get(tag, [])):
            last[math.ceil((step + run.position) / width) * width] = value
        for x, value in last.items():
            out[x].append(value)
    return out


def draw_mean(
    ax, points: dict[float, list[float]], label: str, color, breaks: Sequence[float] = (), positive: bool = False, n: int | None = None
) -> None:
    """One group's mean line with its band (``mean_band``) on ``ax``; markers when there are few points;
    the line is cut at ``breaks`` (the switches, for a group of one-task runs: its runs are not one line).
    ``n``: the group's seeds for the legend (default: the most values at one x)."""
    xs, mean, low, high = mean_band(points, positive)
    cuts = [i for i in range(1, len(xs)) if any(xs[i - 1] <= b < xs[i] for b in breaks)]
    xs, mean, low, high = (np.insert(a, cuts, np.nan) for a in (xs, mean, low, high))
    n = n if n is not None else max(len(v) for v in points.values())
    marker = "o" if len(points) <= MARKER_POINTS else None
    ax.plot(xs, mean, color=color, lw=1.3, marker=marker, markersize=3.5, label=f"{label} (n={n})")
    if np.isfinite(low).any():
        ax.fill_between(xs, low, high, color=color, alpha=0.2, lw=0)


def _steps_label(runs: Sequence[Run]) -> str:
    return "env steps" + (" (a one-task run at its task's place)" if any(r.position for r in runs) else "")


def _breaks(runs: Sequence[Run], group: str) -> list[int]:
    """Where a group's line is cut: at the switches if its runs train one task of a sequence each (``fresh``)."""
    members = [r for r in runs if r.group == group]
    one_task = members and all(r.switch_every and r.total is not None and r.total <= r.switch_every for r in members)
    return switches(runs) if one_task else []


def switches(runs: Sequence[Run]) -> list[int]:
    """The env steps of the task switches: multiples of ``switch_every`` below the longest run's ``total_timesteps``."""
    every = max((r.switch_every for r in runs), default=0)
    end = max((r.total or 0 for r in runs), default=0)
    return list(range(every, end, every)) if every else []


def _facets(groups: Sequence[str]) -> list[str]:
    present = {family(g) for g in groups}
    return [f for f in FAMILIES if f in present]


def _mark_switches(ax, steps: list[int]) -> None:
    from matplotlib.ticker import EngFormatter

    ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 200k, not 200000
    for i, step in enumerate(steps):
        ax.axvline(step, color="0.45", ls=":", lw=1, label="task switch" if i == 0 else None)


def _seeds(runs: Sequence[Run], group: str) -> int:
    """How many seeds a group has (a legend's n): one-task runs of one seed at several places count once."""
    return len({r.seed for r in runs if r.group == group})


def curves_figure(runs: Sequence[Run]):
    """The evaluation returns on the current task over env steps: one panel per family (columns) and, for
    stationary runs of several labelled tasks (games), per task (rows); mean over seeds with 95% band."""
    from matplotlib import pyplot as plt

    labelled = sorted({s.task for r in runs for s in r.segments if isinstance(s.task, str)})
    rows = labelled if len(labelled) > 1 else [None]
    groups = sorted({r.group for r in runs})
    facets = _facets(groups)
    data: dict[tuple[Any, str], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        offset = run.position
        for segment in run.segments:
            row = segment.task if rows != [None] else None
            for step, value in zip(segment.steps, segment.returns):
                data[row, run.group][step + offset].append(value)
    fig, axes = plt.subplots(len(rows), len(facets), figsize=(4.6 * len(facets), 3.4 * len(rows) + 0.4), squeeze=False,
                             sharex=True, sharey="row")  # fmt: skip
    for i, row in enumerate(rows):
        for j, facet in enumerate(facets):
            ax = axes[i][j]
            members = [g for g in groups if family(g) == facet]
            for k, group in enumerate(members):
                if data.get((row, group)):
                    draw_mean(ax, data[row, group], group, plt.cm.tab10(k % 10), _breaks(runs, group), n=_seeds(runs, group))
            _mark_switches(ax, switches(runs))
            ax.set_title(facet if row is None else f"{row}: {facet}", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            if i == len(rows) - 1:
                ax.set_xlabel(_steps_label(runs))
        axes[i][0].set_ylabel("return on the current task")
    fig.suptitle("evaluation return: mean over seeds, shaded 95% t-interval (none for 1 seed)", fontsize=10)
    fig.tight_layout()
    return fig


def plasticity_figure(runs: Sequence[Run], tracked: Sequence[str]):
    """The logged ``tracked`` scalars over env steps: one row per tag, one column per family; mean over
    seeds (``binned``: each run's last value per bin) with 95% band, markers where there are few points;
    ratios on a fixed axis."""
    from matplotlib import pyplot as plt

    groups = sorted({r.group for r in runs})
    facets = _facets(groups)
    fig, axes = plt.subplots(len(tracked), len(facets), figsize=(4.6 * len(facets), 3.0 * len(tracked) + 0.4), squeeze=False,
                             sharex=True, sharey="row")  # fmt: skip
    for i, tag in enumerate(tracked):
        values = []
        for j, facet in enumerate(facets):
            ax = axes[i][j]
            for k, group in enumerate(g for g in groups if family(g) == facet):
                by_step = binned([r for r in runs if r.group == group], tag)
                values += [v for vs in by_step.values() for v in vs]
                if by_step:
                    draw_mean(
                        ax, by_step, group, plt.cm.tab10(k % 10), _breaks(runs, group), positive=tag.endswith("/elr"), n=_seeds(runs, group)
                    )
            _mark_switches(ax, switches(runs))
            ax.set_title(f"{tag}: {facet}", fontsize=9)
            ax.grid(alpha=0.3)
            ax.set_yscale("log" if tag.endswith("/elr") else "linear")
            ax.legend(fontsize=6)
        if tag in RATIO_TAGS:
            top, note = ratio_axis(values)
            axes[i][0].set_ylim(-0.02 * top, top)  # a point at 0 stays in sight
            axes[i][0].set_ylabel(f"fraction of units ({note})", fontsize=8)
        elif tag.endswith("rank"):
            axes[i][0].set_ylim(bottom=0)
        axes[-1][0].set_xlabel(_steps_label(runs))
    fig.tight_layout()
    return fig


def plot(out: Path, runs: Sequence[Run], iqm: dict[str, dict[str, tuple[float, float, float]]], normalized: bool | dict[str, bool],
         seeds: dict[str, dict[str, int]] | None = None) -> list[Path]:  # fmt: skip
    """Write ``iqm.png``, ``curves.png`` and, if a run has ``TRACKED`` scalars, ``plasticity.png``; returns their paths.

    :param out: an existing folder
    :param runs: the runs, their ``group`` set
    :param iqm: metric -> group -> (IQM, CI low, CI high) (``interval_estimates`` per metric)
    :param normalized: whether the IQMs are of normalized scores (the axis label says so), or that per metric
    :param seeds: metric -> group -> seeds (the tick labels say n; None: not said)
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written = []
    n_groups = max((len(v) for v in iqm.values()), default=1)
    fig, axes = plt.subplots(1, len(iqm), figsize=(5 * len(iqm), 0.45 * n_groups + 1.5), squeeze=False)
    for ax, (metric, values) in zip(axes[0], iqm.items()):
        order = sorted(values, key=lambda g: values[g][0])
        y = np.arange(len(order))
        points = np.array([values[g][0] for g in order])
        low = points - np.array([values[g][1] for g in order])
        high = np.array([values[g][2] for g in order]) - points
        ax.errorbar(points, y, xerr=[np.nan_to_num(low), np.nan_to_num(high)], fmt="o", capsize=3)
        counts = (seeds or {}).get(metric, {})
        ax.set_yticks(y, [f"{g} (n={counts[g]})" if g in counts else g for g in order])
        norm = normalized.get(metric, False) if isinstance(normalized, dict) else normalized
        ax.set_xlabel(f"IQM {'normalized' if norm else 'raw'} {metric} (95% CI; none below 2 seeds)")
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    written.append(out / "iqm.png")
    fig.savefig(written[-1], dpi=80)
    plt.close(fig)

    fig = curves_figure(runs)
    written.append(out / "curves.png")
    fig.savefig(written[-1], dpi=80)
    plt.close(fig)

    tracked = [t for t in TRACKED if any(r.scalars.get(t) for r in runs)]
    if tracked:
        fig = plasticity_figure(runs, tracked)
        written.append(out / "plasticity.png")
        fig.savefig(written[-1], dpi=80)
        plt.close(fig)
    return written
