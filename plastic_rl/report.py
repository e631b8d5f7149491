"""``python -m plastic_rl.report DIR... [--by KEY,...]``: seeds x arms of ``plastic_rl.train`` runs -> numbers.

Reads every run folder under the given directories (a folder with ``.hydra/config.yaml`` and
``evaluations.csv``), groups the runs by config keys (``--by plasticity.preset``; any key of the saved
config, or ``arm``, which ``tools/continual`` sets), and reports, per group:

- per task (a run on a ``TaskSequence`` is cut into segments at its task switches, using the
  evaluations' ``trained_on`` column; a stationary run is one task), the return at the task's end (the
  last evaluation in the segment) and its area under the curve (the mean evaluation return over the
  segment), mean and sample std over seeds;
- with ``--reference GROUP`` (``fresh`` in the continual benchmark): each score divided by the
  reference group's mean score on the same task (normalized), the plasticity gap (the reference's
  score minus the group's, on the late half of the tasks, in returns) with its spread over seeds;
- the IQM over seeds x tasks of the normalized (or raw) AUC and final return with 95% stratified
  bootstrap confidence intervals, and the probability of improvement over ``--baseline``, computed
  with ``rliable`` (Agarwal et al. 2021), the field's standard;
- from TensorBoard, the agents' logged ``plasticity/elr``, ``plasticity/dormant_ratio`` and
  ``plasticity/srank`` over time, and for CUSUM re-warming its alarms against the real task switches
  (hits within ``--hit-window`` of a task of a switch, false alarms, detection delay).

Writes ``report.md``, ``scores.csv``, ``iqm.csv`` and PNG plots to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import warnings
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

METRICS = ("auc", "final")
TRACKED = ("plasticity/elr", "plasticity/dormant_ratio", "plasticity/srank")
ALARMS = "plasticity/cusum_alarms"


# -- reading runs ----------------------------------------------------------------------------------
@dataclass
class Segment:
    """One stretch of a run on one task: its evaluations (step, mean return)."""

    task: int
    start: int  # env step of the first evaluation in it
    steps: list[int]
    returns: list[float]

    @property
    def final(self) -> float:
        return self.returns[-1]

    @property
    def auc(self) -> float:
        return float(np.mean(self.returns))


@dataclass
class Run:
    path: Path
    config: dict[str, Any]  # flattened: "plasticity.preset" -> "elr"
    segments: list[Segment]
    group: str = ""
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def _segments(rows: list[dict[str, str]]) -> list[Segment]:
    """Current-task evaluations cut at the task switches (``trained_on`` changes; an evaluation on the
    step of a switch is the old task's last, ``agents.callbacks.EvalCallback``)."""
    segments: list[Segment] = []
    for row in rows:
        if row.get("task", "") != row.get("trained_on", ""):
            continue  # an evaluation of an earlier task (eval_tasks=seen)
        task = int(row["trained_on"]) if row.get("trained_on", "") != "" else 0
        step, value = int(row["step"]), float(row["mean_return"])
        if not segments or segments[-1].task != task:
            segments.append(Segment(task, step, [], []))
        segments[-1].steps.append(step)
        segments[-1].returns.append(value)
    return segments


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Every run folder under ``paths`` (one with ``.hydra/config.yaml`` and ``evaluations.csv``)."""
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such directory")
        candidates = [path] if (path / ".hydra" / "config.yaml").is_file() else sorted(p.parent.parent for p in path.rglob(".hydra/config.yaml"))
        found += [p for p in candidates if (p / "evaluations.csv").is_file()]
    return sorted(dict.fromkeys(found))


def load_run(folder: Path, scalars: bool = False) -> Run:
    import yaml

    config = _flatten(yaml.safe_load((folder / ".hydra" / "config.yaml").read_text()) or {})
    with (folder / "evaluations.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    run = Run(folder, config, _segments(rows))
    if scalars:
        run.scalars = read_scalars(folder / "tb", (*TRACKED, ALARMS))
    return run


def read_scalars(tb: Path, tags: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """The (step, value) points of ``tags`` in a run's TensorBoard folder (purged events dropped)."""
    if not tb.is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for folder in sorted(p for p in tb.iterdir() if p.is_dir()):
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        events.Reload()
        for tag in set(tags) & set(events.Tags()["scalars"]):
            out.setdefault(tag, []).extend((e.step, e.value) for e in events.Scalars(tag))
    return out


def group_name(run: Run, by: Sequence[str]) -> str:
    missing = [key for key in by if key not in run.config]
    if missing:
        raise KeyError(f"{run.path}: config has no {missing}; keys: {', '.join(sorted(run.config)[:12])} ...")
    return ",".join(str(run.config[key]) for key in by)


# -- numbers ---------------------------------------------------------------------------------------
def score_table(runs: Sequence[Run], metric: str) -> dict[str, dict[tuple[int, int], float]]:
    """group -> {(seed, task): score}; a task a seed's runs visited twice keeps its last visit."""
    table: dict[str, dict[tuple[int, int], float]] = defaultdict(dict)
    for run in runs:
        for segment in run.segments:
            table[run.group][(run.seed, segment.task)] = getattr(segment, metric)
    return table


def matrices(table: dict[str, dict[tuple[int, int], float]], reference: str | None) -> tuple[dict[str, np.ndarray], list[int], list[int]]:
    """group -> (seeds x tasks) array over the tasks every group has, normalized by the reference's
    per-task mean over seeds when given; also the tasks left out because that mean is not positive
    (a ratio to 0, or to a negative return, means nothing). If it is positive nowhere, the scores
    stay raw (the third value is then every task)."""
    tasks = sorted(set.intersection(*({t for _, t in cells} for cells in table.values())))
    if not tasks:
        raise ValueError("the groups share no task: nothing to compare")
    dropped: list[int] = []
    norm = None
    if reference is not None:
        if reference not in table:
            raise ValueError(f"reference group {reference!r} is not among the groups {sorted(table)}")
        means = {task: float(np.mean([v for (s, t), v in table[reference].items() if t == task])) for task in tasks}
        positive = [task for task in tasks if means[task] > 0]
        if positive:  # else: nothing to normalize by (an untrained reference): raw scores, said in the report
            dropped = [task for task in tasks if task not in positive]
            tasks = positive
            norm = np.array([means[task] for task in tasks])
        else:
            dropped = list(tasks)
    out = {}
    for group, cells in table.items():
        seeds = sorted({s for s, t in cells if all((s, task) in cells for task in tasks)})
        array = np.array([[cells[s, task] for task in tasks] for s in seeds], dtype=float).reshape(len(seeds), len(tasks))
        out[group] = array / norm if norm is not None else array
    return out, tasks, dropped


@contextlib.contextmanager
def seeded_numpy(seed: int):
    """Seed numpy's global generator for the duration, then put its state back.

    rliable's ``StratifiedBootstrap.update_indices`` draws with ``np.random.choice`` (the global
    generator) whatever ``random_state`` says, so only this makes its confidence intervals repeatable.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def interval_estimates(scores: dict[str, np.ndarray], reps: int, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """group -> (IQM, CI low, CI high) over seeds x tasks, 95% stratified bootstrap (rliable)."""
    from rliable import library as rly
    from rliable import metrics

    with seeded_numpy(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arch: random_state is deprecated (and unused here)
        point, ci = rly.get_interval_estimates(scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps)
    return {g: (float(point[g][0]), float(ci[g][0][0]), float(ci[g][1][0])) for g in scores}


def improvement(scores: dict[str, np.ndarray], baseline: str, reps: int, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """group -> P(group > baseline) with its 95% CI (rliable's probability_of_improvement)."""
    from rliable import library as rly
    from rliable import metrics

    pairs = {g: (x, scores[baseline]) for g, x in scores.items() if g != baseline}
    if not pairs:
        return {}
    with seeded_numpy(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        point, ci = rly.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=reps)
    return {g: (float(np.squeeze(point[g])), float(np.squeeze(ci[g][0])), float(np.squeeze(ci[g][1]))) for g in pairs}


def plasticity_gap(table: dict[str, dict[tuple[int, int], float]], reference: str, metric_tasks: list[int]) -> dict[str, tuple[float, float]]:
    """group -> (mean, sample std over seeds) of reference minus group on the late half of the tasks (returns)."""
    late = metric_tasks[len(metric_tasks) // 2 :]
    ref = {t: np.mean([v for (s, task), v in table[reference].items() if task == t]) for t in late}
    out = {}
    for group, cells in table.items():
        if group == reference:
            continue
        seeds = sorted({s for s, _ in cells})
        per_seed = [np.mean([ref[t] - cells[s, t] for t in late if (s, t) in cells]) for s in seeds]
        per_seed = [g for g in per_seed if not math.isnan(g)]
        if per_seed:
            out[group] = (float(np.mean(per_seed)), float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0)
    return out


def alarm_stats(run: Run, switch_every: int, total: int, window: float) -> dict[str, Any] | None:
    """CUSUM alarms (env steps where the logged alarm count rose) against the switches of a run."""
    points = sorted(run.scalars.get(ALARMS, []))
    if not points or not switch_every:
        return None
    alarms, last = [], 0.0
    for step, count in points:
        if count > last:
            alarms += [step] * int(count - last)
        last = count
    switches = list(range(switch_every, total, switch_every))
    width = window * switch_every
    hits, delays, used = 0, [], set()
    for s in switches:
        inside = [a for a in alarms if s <= a <= s + width and a not in used]
        if inside:
            hits += 1
            delays.append(inside[0] - s)
            used.add(inside[0])
    false = sum(1 for a in alarms if not any(s <= a <= s + width for s in switches))
    return {"switches": len(switches), "alarms": len(alarms), "hits": hits, "false_alarms": false,
            "mean_delay": float(np.mean(delays)) if delays else math.nan}  # fmt: skip


# -- writing ---------------------------------------------------------------------------------------
def _fmt(value: float, digits: int = 3) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plot(out: Path, runs: Sequence[Run], iqm: dict[str, dict[str, tuple[float, float, float]]], normalized: bool) -> list[Path]:
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

    curves = defaultdict(lambda: defaultdict(list))  # group -> step -> returns over seeds
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
                points = defaultdict(list)
                for run in (r for r in runs if r.group == group):
                    for step, value in run.scalars.get(tag, []):
                        points[step].append(value)
                if points:
                    steps = sorted(points)
                    ax.plot(steps, [np.mean(points[s]) for s in steps], label=group, lw=1, color=colors[group])
            ax.set_title(tag)
            ax.set_xlabel("env steps")
            ax.set_yscale("log" if tag.endswith("/elr") else "linear")
        axes[0][0].legend(fontsize=6)
        fig.tight_layout()
        written.append(out / "plasticity.png")
        fig.savefig(written[-1], dpi=80)
        plt.close(fig)
    return written


def report(paths: Sequence[str | Path], out: str | Path, by: Sequence[str] = ("plasticity.preset",), reference: str | None = None,
           baseline: str | None = None, reps: int = 2000, hit_window: float = 0.2, title: str = "Report",
           scalars: bool = True, task_key: str | None = None, log=print) -> dict[str, Any]:  # fmt: skip
    """Aggregate the runs under ``paths`` into ``out``; returns the numbers (see the module docstring)."""
    out = Path(out)
    folders = find_runs(paths)
    if not folders:
        raise FileNotFoundError(f"no run folders (.hydra/config.yaml with evaluations.csv) under {', '.join(map(str, paths))}")
    runs = [load_run(f, scalars=scalars) for f in folders]
    for run in runs:
        run.group = group_name(run, by)
        if task_key is not None:  # stationary runs of several "tasks" (games): the config names the task
            label = str(group_name(run, [task_key]))
            for segment in run.segments:
                segment.task = label if len(run.segments) == 1 else f"{label}/{segment.task}"  # type: ignore[assignment]
    runs = [r for r in runs if r.segments]
    log(f"{len(runs)} runs in {len({r.group for r in runs})} groups ({', '.join(by)})")
    if baseline is not None and baseline not in {r.group for r in runs}:
        raise ValueError(f"baseline group {baseline!r} is not among the groups {sorted({r.group for r in runs})}")
    result: dict[str, Any] = {"groups": sorted({r.group for r in runs}), "iqm": {}, "improvement": {}, "gap": {}, "per_task": {}}
    for metric in METRICS:
        table = score_table(runs, metric)
        scores, tasks, dropped = matrices(table, reference)
        result["tasks"] = tasks
        result.setdefault("dropped", {})[metric] = dropped
        result["per_task"][metric] = {g: {t: (float(np.mean([v for (s, tt), v in c.items() if tt == t])),
                                              float(np.std([v for (s, tt), v in c.items() if tt == t], ddof=1))
                                              if sum(1 for (s, tt) in c if tt == t) > 1 else 0.0) for t in tasks}
                                      for g, c in table.items()}  # fmt: skip
        # the reference is scored too unless it is the per-task yardstick of a sequence (fresh)
        scored = {g: a for g, a in scores.items() if a.size and not (g == reference and g == "fresh")}
        result["iqm"][metric] = interval_estimates(scored, reps)
        if baseline is not None:
            result["improvement"][metric] = improvement(scored, baseline, reps)
        if reference is not None:
            result["gap"][metric] = plasticity_gap(table, reference, tasks)
        result.setdefault("scores", {})[metric] = scores
    alarms = {}
    for run in runs:
        stats = alarm_stats(run, int(run.config.get("env.kwargs.switch_every", 0) or 0), int(run.config.get("total_timesteps", 0)), hit_window)
        if stats is not None:
            alarms.setdefault(run.group, []).append(stats)
    result["alarms"] = alarms
    out.mkdir(parents=True, exist_ok=True)
    write(out, runs, result, by, reference, baseline, title, hit_window)
    result["plots"] = plot(out, runs, result["iqm"], reference is not None)
    return result


def write(out: Path, runs, result, by, reference, baseline, title, hit_window) -> None:
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
            header += [f"gap to {reference} (late tasks, returns)"]
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


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m plastic_rl.report", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="folders holding plastic_rl.train runs (a sweep's output, runs/...)")
    parser.add_argument("--by", default="plasticity.preset", help="config keys that name a group, comma-separated")
    parser.add_argument("--reference", default=None, help="group to normalize by (e.g. fresh)")
    parser.add_argument("--baseline", default=None, help="group for the probability of improvement (e.g. none)")
    parser.add_argument("--out", default="report", help="output folder (default: ./report)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap repetitions")
    parser.add_argument("--hit-window", type=float, default=0.2, help="CUSUM: a hit is an alarm within this fraction of a task after a switch")
    parser.add_argument("--no-scalars", action="store_true", help="skip reading TensorBoard (faster)")
    parser.add_argument("--task-key", default=None, help="config key naming the task of stationary runs (e.g. env.id)")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"--reps={args.reps} must be >= 1")
    if not 0 < args.hit_window <= 1:
        parser.error(f"--hit-window={args.hit_window} must be in (0, 1]")
    try:
        result = report(args.dirs, args.out, [k.strip() for k in args.by.split(",") if k.strip()], args.reference,
                        args.baseline, args.reps, args.hit_window, scalars=not args.no_scalars, task_key=args.task_key)  # fmt: skip
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print("error: " + " ".join(str(exc).strip("'\"").split()), file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {Path(args.out) / 'report.md'}")
    return result


if __name__ == "__main__":
    main()
