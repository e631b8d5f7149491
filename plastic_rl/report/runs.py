"""Reading ``plastic_rl.train`` run folders for ``plastic_rl.report``: configs, evaluations cut into tasks, scalars.

Its own module so that the numbers (``report.stats``) and the writers (``report.tables``) work on
``Run`` objects whatever made them (tests build them by hand).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("auc", "final")
TRACKED = ("plasticity/elr", "plasticity/dormant_ratio", "plasticity/srank")
ALARMS = "plasticity/cusum_alarms"
EVALUATIONS = "evaluations.csv"
FINAL = "final_model.zip"  # plastic_rl.train writes it once the run reached total_timesteps
_CHECKPOINT = re.compile(r"step_(\d+)\.zip$")


@dataclass
class Segment:
    """One stretch of a run on one task: its evaluations (step, mean return).

    :param task: the task trained on (``trained_on`` in ``evaluations.csv``; 0 for a stationary run), or a label
        (``report``'s ``task_key``)
    :param start: env step of the first evaluation in it
    :param steps: env step of each evaluation
    :param returns: mean evaluation return of each evaluation, on this task
    :param end: env step at which the task ends (its switch, or the run's ``total_timesteps``; None: unknown)
    :param complete: whether the run trained past ``end`` (``load_run``); a partial task is never scored
    """

    task: int
    start: int
    steps: list[int]
    returns: list[float]
    end: int | None = None
    complete: bool = True

    @property
    def final(self) -> float:
        return self.returns[-1]

    @property
    def auc(self) -> float:
        return float(np.mean(self.returns))


@dataclass
class Run:
    """One ``plastic_rl.train`` run.

    :param path: its folder
    :param config: its Hydra config, flattened: ``"plasticity.preset" -> "elr"``
    :param segments: its current-task evaluations cut at the task switches, one segment per task visited
    :param group: the name of its group (``group_name``; ``""`` until ``report`` sets it)
    :param scalars: TensorBoard tag -> (step, value) points (``read_scalars``; empty unless read)
    :param reached: env step the run got to (``progress``; None: unknown, taken as complete)
    """

    path: Path
    config: dict[str, Any]
    segments: list[Segment]
    group: str = ""
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    reached: int | None = None

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def total(self) -> int | None:
        """The configured ``total_timesteps`` (None: the config has none)."""
        value = self.config.get("total_timesteps")
        return int(value) if value is not None else None

    @property
    def complete(self) -> bool:
        """Whether the run reached its configured ``total_timesteps``."""
        return self.reached is None or self.total is None or self.reached >= self.total

    @property
    def switch_every(self) -> int:
        return int(self.config.get("env.kwargs.switch_every", 0) or 0)

    @property
    def first_task(self) -> int:
        """The task a run on a sequence started on (``fresh`` runs: the one task they train)."""
        value = self.config.get("env.kwargs.first_task", 0)
        return int(value) if isinstance(value, int) or str(value).isdigit() else 0

    @property
    def position(self) -> int:
        """Where its steps sit in the sequence: a run of one task of a sequence (``fresh``) at its task's slot."""
        every, total = self.switch_every, self.total
        return self.first_task * every if every and total is not None and total <= every else 0


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


def _check_order(folder: Path, rows: list[dict[str, str]]) -> None:
    """ValueError if the current-task evaluations of a run do not move forward in steps: two processes trained
    into one folder (their rows interleave), so it holds two runs' numbers under one name."""
    last = None
    for row in rows:
        if row.get("task", "") != row.get("trained_on", "") or not row.get("step", "").isdigit():
            continue
        step = int(row["step"])
        if last is not None and step <= last:
            raise ValueError(f"{folder / EVALUATIONS}: an evaluation at step {step:,} follows one at step {last:,}: two processes "
                             "wrote this run (or it was edited); move the folder away and train it again")  # fmt: skip
        last = step


def progress(folder: Path, rows: list[dict[str, str]], total: int | None) -> int:
    """The env step a run folder got to: its last evaluation, its latest checkpoint, or its
    ``total_timesteps`` once ``final_model.zip`` is written (``plastic_rl.train`` writes it when done).

    :param folder: the run folder
    :param rows: its ``evaluations.csv`` rows (all of them)
    :param total: its configured ``total_timesteps`` (None: unknown)
    """
    steps = [int(r["step"]) for r in rows if r.get("step", "") != ""]
    steps += [int(m.group(1)) for p in (folder / "checkpoints").glob("step_*.zip") if (m := _CHECKPOINT.match(p.name))]
    if total is not None and (folder / FINAL).is_file():
        steps.append(total)
    return max(steps, default=0)


def _mark_complete(run: Run) -> None:
    """Set each segment's end (the switch after its first evaluation, or the run's end) and whether the run got past it."""
    total = run.total
    for segment in run.segments:
        every = run.switch_every
        end = (max(segment.start - 1, 0) // every + 1) * every if every else total
        segment.end = min(end, total) if end is not None and total is not None else end
        segment.complete = run.reached is None or segment.end is None or run.reached >= segment.end


def find_runs(paths: Iterable[str | Path], evaluated: bool = True) -> list[Path]:
    """Every run folder under ``paths`` (one with ``.hydra/config.yaml`` and ``evaluations.csv``), sorted, once each.

    :param paths: run folders, or folders searched recursively for them; FileNotFoundError if one does not exist
    :param evaluated: only folders with an ``evaluations.csv`` (False: also training runs, their config has
        ``total_timesteps``, killed before their first evaluation)
    """
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such directory")
        candidates = (
            [path] if (path / ".hydra" / "config.yaml").is_file() else sorted(p.parent.parent for p in path.rglob(".hydra/config.yaml"))
        )
        found += [p for p in candidates if (p / EVALUATIONS).is_file() or (not evaluated and _is_training_run(p))]
    return sorted(dict.fromkeys(found))


def _is_training_run(folder: Path) -> bool:
    return re.search(r"^total_timesteps:", (folder / ".hydra" / "config.yaml").read_text(), re.MULTILINE) is not None


def load_run(folder: Path, scalars: bool = False) -> Run:
    """Read a run folder: its config, its evaluations cut into segments, and optionally its scalars.

    Also how far it got (``Run.reached``, ``progress``) and which of its tasks it trained to their end
    (``Segment.complete``).

    :param folder: a run folder (see ``find_runs``)
    :param scalars: also read the ``TRACKED`` tags and the CUSUM alarm count from its ``tb`` folder
    """
    import yaml

    config = _flatten(yaml.safe_load((folder / ".hydra" / "config.yaml").read_text()) or {})
    rows = []
    if (folder / EVALUATIONS).is_file():  # none: killed before its first evaluation
        with (folder / EVALUATIONS).open(newline="") as f:
            rows = list(csv.DictReader(f))
    _check_order(folder, rows)
    run = Run(folder, config, _segments(rows))
    run.reached = progress(folder, rows, run.total)
    _mark_complete(run)
    if scalars:
        run.scalars = read_scalars(folder / "tb", (*TRACKED, ALARMS))
    return run


def read_scalars(tb: Path, tags: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """The (step, value) points of ``tags`` in a run's TensorBoard folder (purged events dropped).

    :param tb: the TensorBoard folder, whose subfolders (one per logger run) are read (missing: ``{}``)
    :param tags: the scalar tags to read; tags no subfolder has are left out of the result
    """
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
    """The group of ``run``: its config's values of the keys ``by``, joined by commas.

    :param run: the run
    :param by: flattened config keys (``"plasticity.preset"``); KeyError if the config lacks one
    """
    missing = [key for key in by if key not in run.config]
    if missing:
        raise KeyError(f"{run.path}: config has no {missing}; keys: {', '.join(sorted(run.config)[:12])} ...")
    return ",".join(str(run.config[key]) for key in by)
