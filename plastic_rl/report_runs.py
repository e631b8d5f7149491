"""Reading ``plastic_rl.train`` run folders for ``plastic_rl.report``: configs, evaluations cut into tasks, scalars.

Its own module so that the numbers (``report_stats``) and the writers (``report_write``) work on
``Run`` objects whatever made them (tests build them by hand).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("auc", "final")
TRACKED = ("plasticity/elr", "plasticity/dormant_ratio", "plasticity/srank")
ALARMS = "plasticity/cusum_alarms"


@dataclass
class Segment:
    """One stretch of a run on one task: its evaluations (step, mean return).

    :param task: the task trained on (``trained_on`` in ``evaluations.csv``; 0 for a stationary run), or a label
        (``report``'s ``task_key``)
    :param start: env step of the first evaluation in it
    :param steps: env step of each evaluation
    :param returns: mean evaluation return of each evaluation, on this task
    """

    task: int
    start: int
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
    """One ``plastic_rl.train`` run.

    :param path: its folder
    :param config: its Hydra config, flattened: ``"plasticity.preset" -> "elr"``
    :param segments: its current-task evaluations cut at the task switches, one segment per task visited
    :param group: the name of its group (``group_name``; ``""`` until ``report`` sets it)
    :param scalars: TensorBoard tag -> (step, value) points (``read_scalars``; empty unless read)
    """

    path: Path
    config: dict[str, Any]
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
    """Every run folder under ``paths`` (one with ``.hydra/config.yaml`` and ``evaluations.csv``), sorted, once each.

    :param paths: run folders, or folders searched recursively for them; FileNotFoundError if one does not exist
    """
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such directory")
        candidates = (
            [path] if (path / ".hydra" / "config.yaml").is_file() else sorted(p.parent.parent for p in path.rglob(".hydra/config.yaml"))
        )
        found += [p for p in candidates if (p / "evaluations.csv").is_file()]
    return sorted(dict.fromkeys(found))


def load_run(folder: Path, scalars: bool = False) -> Run:
    """Read a run folder: its config, its evaluations cut into segments, and optionally its scalars.

    :param folder: a run folder (see ``find_runs``)
    :param scalars: also read the ``TRACKED`` tags and the CUSUM alarm count from its ``tb`` folder
    """
    import yaml

    config = _flatten(yaml.safe_load((folder / ".hydra" / "config.yaml").read_text()) or {})
    with (folder / "evaluations.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    run = Run(folder, config, _segments(rows))
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
