"""The numbers of ``plastic_rl.report``: score tables, normalization, rliable's IQM and probability of
improvement (repeatably seeded), the plasticity gap, and CUSUM alarms against the task switches.

Its own module: pure functions of ``Run`` objects and arrays, no files; ``tools/continual`` and
``tools/bench_agents`` use them directly.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from plastic_rl.report.runs import ALARMS, Run

# How many seeds a number needs to mean something (issue 22): an interval (a bootstrap CI, a
# probability of improvement, a spread over seeds) needs MIN_SEEDS_INTERVAL per group; a verdict
# (yes/no, "more than the seed spread") needs MIN_SEEDS_VERDICT in every group it compares.
MIN_SEEDS_INTERVAL = 2
MIN_SEEDS_VERDICT = 3
SEED_RULE = (f"A confidence interval, a probability of improvement or a spread over seeds needs at least "
             f"{MIN_SEEDS_INTERVAL} seeds per group; a verdict (yes/no, \"more than the seed spread\") needs at least "
             f"{MIN_SEEDS_VERDICT} seeds in every group it compares. Below that the cell reads n/a (with the seeds there "
             f"were); n is the number of seeds.")  # fmt: skip


def seeds_text(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def not_enough(n: int) -> str:
    """What a cell says where ``n`` seeds are too few for the number: ``n/a (1 seed)``."""
    return f"n/a ({seeds_text(n)})"


def score_table(runs: Sequence[Run], metric: str) -> dict[str, dict[tuple[int, int], float]]:
    """group -> {(seed, task): score}; a task a seed's runs visited twice keeps its last visit; a task a run
    did not train to its end (``Segment.complete`` false) is never scored.

    :param runs: the runs, their ``group`` set
    :param metric: a score of a ``Segment``: ``"auc"`` or ``"final"`` (``METRICS``)
    """
    table: dict[str, dict[tuple[int, int], float]] = defaultdict(dict)
    for run in runs:
        for segment in run.segments:
            if segment.complete:
                table[run.group][(run.seed, segment.task)] = getattr(segment, metric)
    return table


def matrices(table: dict[str, dict[tuple[int, int], float]], reference: str | None) -> tuple[dict[str, np.ndarray], list[int], list[int]]:
    """group -> (seeds x tasks) array over the tasks every group has, normalized by the reference's
    per-task mean over seeds when given; also the tasks left out because that mean is not positive
    (a ratio to 0, or to a negative return, means nothing). If it is positive nowhere, the scores
    stay raw (the third value is then every task). A group keeps the seeds that have every task.

    :param table: ``score_table``'s
    :param reference: the group to normalize by (None: raw scores); ValueError if not in ``table``
    """
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

    :param seed: passed to ``np.random.seed``
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def interval_estimates(scores: dict[str, np.ndarray], reps: int, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """group -> (IQM, CI low, CI high) over seeds x tasks, 95% stratified bootstrap (rliable); the CI is
    NaN for a group of fewer than ``MIN_SEEDS_INTERVAL`` seeds (resampling one seed gives it back: no interval).

    :param scores: group -> (seeds x tasks) array (``matrices``' first value)
    :param reps: bootstrap repetitions
    :param seed: numpy's global seed during the bootstrap (see ``seeded_numpy``)
    """
    from rliable import library as rly
    from rliable import metrics

    with seeded_numpy(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arch: random_state is deprecated (and unused here)
        point, ci = rly.get_interval_estimates(scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps)
    return {g: (float(point[g][0]), *((float(ci[g][0][0]), float(ci[g][1][0])) if len(scores[g]) >= MIN_SEEDS_INTERVAL
                                      else (math.nan, math.nan))) for g in scores}  # fmt: skip


def improvement(scores: dict[str, np.ndarray], baseline: str, reps: int, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """group -> P(group > baseline) with its 95% CI (rliable's probability_of_improvement); NaN where
    either group has fewer than ``MIN_SEEDS_INTERVAL`` seeds.

    :param scores: group -> (seeds x tasks) array (``matrices``' first value)
    :param baseline: the group every other one is compared with (a key of ``scores``; not in the result)
    :param reps: bootstrap repetitions
    :param seed: numpy's global seed during the bootstrap (see ``seeded_numpy``)
    """
    from rliable import library as rly
    from rliable import metrics

    others = [g for g in scores if g != baseline]
    few = {g: (math.nan,) * 3 for g in others if min(len(scores[g]), len(scores[baseline])) < MIN_SEEDS_INTERVAL}
    pairs = {g: (scores[g], scores[baseline]) for g in others if g not in few}
    if not pairs:
        return few
    with seeded_numpy(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        point, ci = rly.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=reps)
    return {**few, **{g: (float(np.squeeze(point[g])), float(np.squeeze(ci[g][0])), float(np.squeeze(ci[g][1]))) for g in pairs}}


def plasticity_gap(
    table: dict[str, dict[tuple[int, int], float]], reference: str, metric_tasks: list[int]
) -> dict[str, tuple[float, float]]:
    """group -> (mean, sample std over seeds) of reference minus group on the late half of the tasks (returns).

    Per seed: the mean over those tasks of the reference's mean score (over its seeds) minus the group's score.
    The std is NaN for fewer than ``MIN_SEEDS_INTERVAL`` seeds (one seed has no spread, not a spread of 0).

    :param table: ``score_table``'s (raw returns)
    :param reference: the group compared with (not in the result)
    :param metric_tasks: the tasks to compare, in order; the second half (from index ``len // 2``) is used
    """
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
            spread = float(np.std(per_seed, ddof=1)) if len(per_seed) >= MIN_SEEDS_INTERVAL else math.nan
            out[group] = (float(np.mean(per_seed)), spread)
    return out


def alarm_stats(run: Run, switch_every: int, total: int, window: float) -> dict[str, Any] | None:
    """CUSUM alarms (env steps where the logged alarm count rose) against the switches of a run.

    Returns switches, alarms, hits (switches with an alarm in the window), false alarms (in no window) and
    the mean detection delay; None when the run logged no alarm count or has no switches.

    :param run: the run, with the ``ALARMS`` scalar (the cumulative alarm count) read
    :param switch_every: env steps between task switches (0: none)
    :param total: env steps of the run: the switches are the multiples of ``switch_every`` below it
    :param window: an alarm within ``window * switch_every`` env steps after a switch is a hit
    """
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
