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
  (hits within ``--hit-window`` of a task of a switch, false alarms, detection delay), and those
  scalars' last values before each switch (``report.switches``, ``switches.csv``).

A run that did not reach its configured ``total_timesteps`` (killed, or still running; one killed
before its first evaluation too) is named in ``report.md`` and on stdout, and left out of every number
unless ``--include-incomplete``, which uses only the tasks it trained to their end: a task cut short is
never scored. A task some group has no complete run on is left out of every table, and the report says so.

An interval (CI, probability of improvement, spread over seeds) needs ``MIN_SEEDS_INTERVAL`` seeds per
group, a verdict ``MIN_SEEDS_VERDICT`` (``SEED_RULE``, stated in ``report.md``); below that a cell reads
``n/a (1 seed)``, and every cell says its n. Scores are labelled raw unless a reference normalized them.

Writes ``report.md``, ``scores.csv``, ``iqm.csv``, ``switches.csv`` (runs with switches and scalars) and PNG plots to ``--out`` (curves faceted by family of
arms, mean over seeds with a 95% band, task switches marked: ``report.plots``).

This module is the aggregation and the CLI; reading runs (``report.runs``), the numbers
(``report.stats``), the tables (``report.tables``) and the plots (``report.plots``) are one module each,
re-exported by the package (``plastic_rl.report``).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plastic_rl.report.plots import family, plot
from plastic_rl.report.runs import ALARMS, METRICS, TRACKED, Run, Segment, find_runs, group_name, load_run, read_scalars
from plastic_rl.report.stats import (
    MIN_SEEDS_INTERVAL,
    MIN_SEEDS_VERDICT,
    SEED_RULE,
    alarm_stats,
    improvement,
    interval_estimates,
    matrices,
    plasticity_gap,
    score_table,
    seeded_numpy,
)
from plastic_rl.report.switches import switch_rows, write_switch_rows
from plastic_rl.report.tables import markdown_table, write

__all__ = [
    "ALARMS",
    "METRICS",
    "MIN_SEEDS_INTERVAL",
    "MIN_SEEDS_VERDICT",
    "SEED_RULE",
    "TRACKED",
    "Run",
    "Segment",
    "alarm_stats",
    "family",
    "find_runs",
    "group_name",
    "improvement",
    "interval_estimates",
    "load_run",
    "main",
    "markdown_table",
    "matrices",
    "plasticity_gap",
    "plot",
    "read_scalars",
    "report",
    "score_table",
    "seeded_numpy",
    "summarize",
    "write",
]


def report(paths: Sequence[str | Path], out: str | Path, by: Sequence[str] = ("plasticity.preset",), reference: str | None = None,
           baseline: str | None = None, reps: int = 2000, hit_window: float = 0.2, title: str = "Report",
           scalars: bool = True, task_key: str | None = None, log=print,
           include_incomplete: bool = False) -> dict[str, Any]:  # fmt: skip
    """Aggregate the runs under ``paths`` into ``out``; returns the numbers (see the module docstring).

    :param paths: folders holding run folders, or run folders themselves (see ``find_runs``)
    :param out: output folder (created) for ``report.md``, ``scores.csv``, ``iqm.csv`` and the plots
    :param by: config keys (dotted, as in ``Run.config``) whose values, joined by commas, name a run's group
    :param reference: group whose per-task mean over seeds normalizes every score, and that the plasticity gap is taken
        from (None: raw scores, no gap); a reference named ``"fresh"`` is not scored itself
    :param baseline: group for the probability of improvement (None: not computed); ValueError if no run is in it
    :param reps: bootstrap repetitions of the confidence intervals
    :param hit_window: a CUSUM alarm within this fraction of a task (of ``switch_every`` env steps) after a switch is a hit
    :param title: the heading of ``report.md``
    :param scalars: read the runs' TensorBoard scalars (False: faster; no plasticity plot and no alarm statistics)
    :param task_key: config key naming the task of stationary runs (e.g. ``env.id``): it labels their segments'
        tasks (None: the task indices of ``evaluations.csv``)
    :param log: called with each progress message, and with one line per incomplete run
    :param include_incomplete: use the complete tasks of runs that did not reach their ``total_timesteps``
        (False: leave such runs out); a task a run did not train to its end is never scored. Either way
        every incomplete run is listed, in ``report.md`` and through ``log``.
    """
    out = Path(out)
    folders = find_runs(paths, evaluated=False)
    if not folders:
        raise FileNotFoundError(f"no run folders (.hydra/config.yaml with evaluations.csv) under {', '.join(map(str, paths))}")
    loaded = [load_run(f, scalars=scalars) for f in folders]
    for run in loaded:
        run.group = group_name(run, by)
        if task_key is not None:  # stationary runs of several "tasks" (games): the config names the task
            label = str(group_name(run, [task_key]))
            for segment in run.segments:
                segment.task = label if len(run.segments) == 1 else f"{label}/{segment.task}"  # type: ignore[assignment]
    incomplete = [incomplete_run(r, include_incomplete) for r in loaded if not r.complete]
    for entry in incomplete:
        log(entry["line"])
    unevaluated = [str(r.path) for r in loaded if r.complete and not r.segments]
    if unevaluated:
        log(f"no evaluation (eval_freq=0?), left out: {', '.join(unevaluated)}")
    runs = []
    for run in loaded:
        if run.complete or include_incomplete:
            run.segments = [s for s in run.segments if s.complete]  # a partial task is never scored
            if run.segments:
                runs.append(run)
    if not runs:
        names = ", ".join(e["path"] for e in incomplete) or "none"
        hint = "" if include_incomplete else "; --include-incomplete uses the tasks they completed"
        raise ValueError(f"no complete run with an evaluation under {', '.join(map(str, paths))} (incomplete: {names}){hint}")
    log(f"{len(runs)} runs in {len({r.group for r in runs})} groups ({', '.join(by)})")
    if baseline is not None and baseline not in {r.group for r in runs}:
        raise ValueError(f"baseline group {baseline!r} is not among the groups {sorted({r.group for r in runs})}")
    result = summarize({metric: score_table(runs, metric) for metric in METRICS}, reference, baseline, reps)
    result.update(incomplete=incomplete, unevaluated=unevaluated)
    for task, groups in result["left_out_tasks"]["auc"].items():
        log(f"task {task} left out of every table: no complete run of {', '.join(groups)} on it")
    alarms: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        stats = alarm_stats(run, run.switch_every, int(run.config.get("total_timesteps", 0)), hit_window)
        if stats is not None:
            alarms.setdefault(run.group, []).append(stats)
    result["alarms"] = alarms
    result["switches"] = switch_rows(runs)
    out.mkdir(parents=True, exist_ok=True)
    if result["switches"]:
        write_switch_rows(out / "switches.csv", result["switches"])
    write(out, runs, result, by, reference, baseline, title, hit_window)
    result["plots"] = plot(out, runs, result["iqm"], result["normalized"], result["seeds"])
    return result


def summarize(tables: dict[str, dict[str, dict[tuple[int, Any], float]]], reference: str | None, baseline: str | None,
              reps: int) -> dict[str, Any]:  # fmt: skip
    """The report's numbers from its score tables alone (so per-run rows saved as a CSV give them back).

    :param tables: metric -> ``score_table``'s group -> {(seed, task): score}
    :param reference: the group that normalizes every score and the plasticity gap is taken from (None: raw)
    :param baseline: the group of the probability of improvement (None: not computed)
    :param reps: bootstrap repetitions
    """
    result: dict[str, Any] = {"groups": sorted({g for table in tables.values() for g in table}), "iqm": {}, "improvement": {},
                              "gap": {}, "per_task": {}, "normalized": {}, "seeds": {}, "per_task_seeds": {}, "left_out_tasks": {},
                              "incomplete": [], "unevaluated": [], "tables": tables}  # fmt: skip
    for metric, table in tables.items():
        scores, tasks, dropped = matrices(table, reference)
        result["tasks"] = tasks
        result.setdefault("dropped", {})[metric] = dropped
        result["normalized"][metric] = reference is not None and dropped != tasks
        result["left_out_tasks"][metric] = left_out_tasks(table, tasks, dropped)
        result["per_task"][metric], result["per_task_seeds"][metric] = per_task(table)
        # the reference is scored too unless it is the per-task yardstick of a sequence (fresh)
        scored = {g: a for g, a in scores.items() if a.size and not (g == reference and g == "fresh")}
        result["seeds"][metric] = {g: len(a) for g, a in scores.items()}
        result["iqm"][metric] = interval_estimates(scored, reps)
        if baseline is not None:
            result["improvement"][metric] = improvement(scored, baseline, reps)
        if reference is not None:
            result["gap"][metric] = plasticity_gap(table, reference, tasks)
        result.setdefault("scores", {})[metric] = scores
    return result


def _task_order(task: Any) -> tuple[str, Any]:
    return type(task).__name__, task


def incomplete_run(run: Run, included: bool) -> dict[str, Any]:
    """What the report says of a run that did not reach its ``total_timesteps``: its name, how far it got,
    which tasks it completed and whether they are used."""
    done = [s.task for s in run.segments if s.complete]
    partial = [s.task for s in run.segments if not s.complete]
    use = (f"its complete tasks {done} used" if done else "nothing of it used") if included else "left out"
    tasks = f"complete tasks {done}, partial {partial}" if run.segments else "no evaluation yet"
    line = (f"incomplete run {run.path} (group {run.group}, seed {run.seed}): reached step {run.reached:,} of "
            f"{run.total:,}; {tasks}; {use}{'' if included else ' (--include-incomplete: use its complete tasks)'}")  # fmt: skip
    return {"path": str(run.path), "group": run.group, "seed": run.seed, "reached": run.reached, "total": run.total,
            "complete_tasks": done, "partial_tasks": partial, "included": included, "line": line}  # fmt: skip


def left_out_tasks(table: dict[str, dict[tuple[int, int], float]], tasks: list, dropped: list) -> dict[Any, list[str]]:
    """task -> the groups without a score on it, for every task some group has but the tables leave out
    (they keep the tasks every group has: a group missing one would make the groups incomparable)."""
    everywhere = {t for cells in table.values() for _, t in cells}
    return {t: sorted(g for g, cells in table.items() if not any(tt == t for _, tt in cells))
            for t in sorted(everywhere - set(tasks) - set(dropped), key=_task_order)}  # fmt: skip


def per_task(table: dict[str, dict[tuple[int, int], float]]) -> tuple[dict[str, dict[Any, tuple[float, float]]], dict[str, dict[Any, int]]]:
    """group -> task -> (mean, sample std) of the raw scores over seeds (the std is NaN below ``MIN_SEEDS_INTERVAL``
    seeds), and group -> task -> the number of seeds."""
    stats: dict[str, dict[Any, tuple[float, float]]] = {}
    seeds: dict[str, dict[Any, int]] = {}
    for group, cells in table.items():
        for task in sorted({t for _, t in cells}, key=_task_order):
            values = [v for (_, t), v in cells.items() if t == task]
            std = float(np.std(values, ddof=1)) if len(values) >= MIN_SEEDS_INTERVAL else math.nan
            stats.setdefault(group, {})[task] = (float(np.mean(values)), std)
            seeds.setdefault(group, {})[task] = len(values)
    return stats, seeds


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The command line: parse ``argv``, run ``report``, return its numbers; exits with status 2 on a bad input.

    :param argv: the arguments, e.g. ``["runs/", "--reference", "fresh"]`` (None: ``sys.argv[1:]``)
    """
    parser = argparse.ArgumentParser(prog="python -m plastic_rl.report", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="folders holding plastic_rl.train runs (a sweep's output, runs/...)")
    parser.add_argument("--by", default="plasticity.preset", help="config keys that name a group, comma-separated")
    parser.add_argument("--reference", default=None, help="group to normalize by (e.g. fresh)")
    parser.add_argument("--baseline", default=None, help="group for the probability of improvement (e.g. none)")
    parser.add_argument("--out", default="report", help="output folder (default: ./report)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap repetitions")
    parser.add_argument(
        "--hit-window", type=float, default=0.2, help="CUSUM: a hit is an alarm within this fraction of a task after a switch"
    )
    parser.add_argument("--no-scalars", action="store_true", help="skip reading TensorBoard (faster)")
    parser.add_argument("--task-key", default=None, help="config key naming the task of stationary runs (e.g. env.id)")
    parser.add_argument(
        "--include-incomplete",
        action="store_true",
        help="use the tasks that runs short of their total_timesteps completed (default: leave such runs out)",
    )
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"--reps={args.reps} must be >= 1")
    if not 0 < args.hit_window <= 1:
        parser.error(f"--hit-window={args.hit_window} must be in (0, 1]")
    try:
        result = report(args.dirs, args.out, [k.strip() for k in args.by.split(",") if k.strip()], args.reference,
                        args.baseline, args.reps, args.hit_window, scalars=not args.no_scalars, task_key=args.task_key,
                        include_incomplete=args.include_incomplete)  # fmt: skip
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print("error: " + " ".join(str(exc).strip("'\"").split()), file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {Path(args.out) / 'report.md'}")
    return result
