"""Shared plumbing of the reference validators (``grokking``, ``warm_start``): CLI, files, plots.

Nothing here is about plasticity: the validators get that from the core (``plastic_rl.elr``,
``plastic_rl.norm``, ``plastic_rl.schedules``, ``plastic_rl.diagnostics``).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"``, ``"0-4"`` or ``"3"`` (a single seed) -> list of ints."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            a, b = part.split("-", 1)
            lo, hi = int(a), int(b)
            if hi < lo:
                raise ValueError(part)
            seeds.extend(range(lo, hi + 1))
        else:
            seeds.append(int(part))
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError(text)
    return list(dict.fromkeys(seeds))


def add_common(parser: argparse.ArgumentParser, arms: Sequence[str], default_out: str, seeds: str) -> None:
    parser.add_argument("--arms", default="all", help=f"comma-separated arms, or 'all' (default); accepted: {', '.join(arms)}")
    parser.add_argument("--seeds", default=seeds, help=f"seeds: a list '0,1,2' or a range '0-4' (default {seeds})")
    parser.add_argument("--out", default=default_out, help=f"output folder (default {default_out})")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: runs are small and the machine is shared)")


def resolve_common(parser: argparse.ArgumentParser, args: argparse.Namespace, arms: Sequence[str]) -> None:
    """Validate --arms, --seeds, --threads in place; errors are one line (``parser.error``, exit 2)."""
    if args.arms.strip() == "all":
        args.arms = list(arms)
    else:
        chosen = [a.strip() for a in args.arms.split(",") if a.strip()]
        unknown = [a for a in chosen if a not in arms]
        if unknown or not chosen:
            parser.error(
                f"--arms: unknown arm {', '.join(map(repr, unknown)) or repr(args.arms)}; "
                f"accepted: {', '.join(arms)} (comma-separated) or all"
            )
        args.arms = list(dict.fromkeys(chosen))
    try:
        args.seeds = parse_seeds(args.seeds)
    except ValueError:
        parser.error(f"--seeds {args.seeds!r} is not a seed list; accepted: '0,1,2', '0-4' or one int >= 0")
    if args.threads < 1:
        parser.error(f"--threads {args.threads} must be >= 1")
    torch.set_num_threads(args.threads)


def parse_lrs(parser: argparse.ArgumentParser, text: str, example: str) -> list[float]:
    """``--lrs "1e-3,3e-3"`` -> [0.001, 0.003], sorted; anything else is a one-line error naming the value."""
    try:
        lrs = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        lrs = []
    if not lrs or not all(math.isfinite(lr) and lr > 0 for lr in lrs):
        parser.error(f"--lrs {text!r} is not accepted; give numbers > 0, comma-separated, e.g. {example}")
    return sorted(set(lrs))


def positive_int(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an int; {name} accepts ints >= 1") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{value} is not accepted; {name} accepts ints >= 1")
        return value

    return parse


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


def first_step(steps: Sequence[int], values: Sequence[float], threshold: float) -> int | None:
    """The first logged step whose value is >= threshold, or None."""
    for s, v in zip(steps, values):
        if v >= threshold:
            return int(s)
    return None


def mean_spread(values: Iterable[float]) -> tuple[float, float]:
    """(mean, sample standard deviation; 0 for one value)."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def prepare_out(path: str) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows with possibly different keys: the header is the union, in first-seen order; blanks for missing."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(keys), restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return ""
    return value


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def machine() -> str:
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


class IntervalMean:
    """Means of per-step metrics since the last ``pop()``: the ELR of one step is a noisy sample of it."""

    def __init__(self, prefix: str = "elr/"):
        self.prefix = prefix
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            if key.startswith(self.prefix):
                self.sums[key] = self.sums.get(key, 0.0) + value
        self.n += 1

    def pop(self) -> dict[str, float]:
        """``{"elr_mean/<layer>": mean}`` over the steps added since the last call; then starts again."""
        head = self.prefix.rstrip("/") + "_mean/"
        out = {head + key[len(self.prefix) :]: total / self.n for key, total in self.sums.items()} if self.n else {}
        self.sums, self.n = {}, 0
        return out


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def collect(jobs: Iterable[Any], run_one, progress, verbose: bool) -> tuple[list[dict], list[dict]]:
    """Run ``run_one(*job)`` for every job; its (curve rows, summary) gathered, a progress line each."""
    rows: list[dict] = []
    summaries: list[dict] = []
    for job in jobs:
        r, s = run_one(*job)
        rows += r
        summaries.append(s)
        if verbose:
            print(progress(s), flush=True)
    return rows, summaries


def write_outputs(out: Path, name: str, rows: list[dict], summaries: list[dict], text: str) -> list[str]:
    """``curves.csv``, ``<name>.csv`` and ``<name>.md`` in ``out``; returns the file names written."""
    write_csv(out / "curves.csv", rows)
    write_csv(out / f"{name}.csv", summaries)
    (out / f"{name}.md").write_text(text)
    return ["curves.csv", f"{name}.csv", f"{name}.md"]
