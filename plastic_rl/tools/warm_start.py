"""Warm-starting (Ash & Adams 2020): does re-warming the effective learning rate close the generalization gap?

    python -m plastic_rl.tools.warm_start [--fraction 0.5] [--epochs N] [--arms ...] [--seeds 0-4]
                                          [--out DIR] [--data CIFAR_DIR]
    python -m plastic_rl.tools.warm_start --sweep [--lrs 3e-4,1e-3,3e-3,1e-2,3e-2]   # constant-lr sweep

Protocol: phase 1 trains on a random ``--fraction`` of the training set, phase 2 continues on all of
it ("warm"); a network trained on all of it from the start ("fresh") is the reference. Both phases
run ``--epochs`` epochs' worth of full-training-set steps (so phase 1 sees its subset 1/fraction
times as often and converges: its final train accuracy is reported). Phase 2 starts a new optimizer
state (Adam's moments cleared), as a new training run from the old weights would;
``--keep-optimizer-state`` keeps it. Accuracy is compared at the end of phase 2 (fresh: after the
same number of steps).

Data: MNIST-1D (Greydanus 2020) generated procedurally by the ``mnist1d`` package (``make_dataset``
with its default arguments: 4000 train / 1000 test, 40 features, 10 classes); nothing is downloaded.
``--data DIR``: a local CIFAR-10 copy in the python format (the ``cifar-10-batches-py`` folder with
``data_batch_1..5`` and ``test_batch``), flattened to 3072 features; ``--n-train``/``--n-test`` cap it.

Model: MLP, 2 hidden layers of 256, LayerNorm before each ReLU (``insert_norm``), Adam (lr 1e-3,
batch 128, no weight decay), constant lr unless re-warmed.
Every arm has an ``ELR`` on its optimizer (it measures; it projects and re-warms only where the arm says):

- ``fresh``: all data from scratch.
- ``warm``: phase 1 then phase 2, nothing else.
- ``warm+shrink-perturb``: at the data change theta <- 0.4 theta + 0.1 theta_init', theta_init' a
  fresh initialization (Ash & Adams; ``interventions.shrink_perturb``).
- ``warm+redo``: at the data change the tau-dormant units (tau 0.1) on 1024 inputs of the new data
  are recycled (Sokar et al.; ``interventions.redo``).
- ``warm+elr``: the normalized layers projected to their initial norm throughout, and the lr re-warmed
  at the data change: warm-up to 10x the initial lr, cosine back down over phase 2.
- ``warm+project``, ``warm+rewarm``: each half of ``warm+elr`` alone.
- ``fresh+elr``: the matched control, the ``warm+elr`` recipe from scratch (projection, and the same
  warm-up + cosine over its run).

Writes to ``--out``: ``curves.csv``, ``summary.csv``, ``summary.md`` (final test accuracy per arm, mean
and spread over seeds, gap closed against ``fresh`` and against the matched control, the measured ELR
across the data change), ``curves.png`` and ``features.png`` (Delta_C and Delta_A across the data
change, ``diagnostics.compare``).

``--sweep``: does any *constant* lr close the gap? The constant-lr arms (default ``fresh`` and ``warm``)
run at every lr of ``--lrs``, both phases at that lr; the re-warmed arms (default ``warm+elr``,
``fresh+elr``) at ``--lr`` only, their schedule already peaks at ``--peak`` x it. Writes
``curves.csv``, ``sweep.csv``, ``sweep.md`` and ``sweep.png``.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from plastic_rl import diagnostics, interventions
from plastic_rl.elr import ELR, OnDemandRewarm
from plastic_rl.norm import insert_norm
from plastic_rl.tools._validate import (
    IntervalMean,
    Timer,
    add_common,
    collect,
    machine,
    markdown_table,
    mean_spread,
    parse_lrs,
    positive_int,
    prepare_out,
    pyplot,
    resolve_common,
    write_outputs,
)

ARMS = ("fresh", "warm", "warm+shrink-perturb", "warm+redo", "warm+elr", "warm+project", "warm+rewarm", "fresh+elr")
# arm -> (warm-started, projected, re-warmed, intervention at the data change)
RECIPES = {
    "fresh": (False, False, False, None),
    "warm": (True, False, False, None),
    "warm+shrink-perturb": (True, False, False, "shrink-perturb"),
    "warm+redo": (True, False, False, "redo"),
    "warm+elr": (True, True, True, None),
    "warm+project": (True, True, False, None),
    "warm+rewarm": (True, False, True, None),
    "fresh+elr": (False, True, True, None),
}
REDO_TAU, REDO_BATCH = 0.1, 1024
SWEEP_ARMS = ("fresh", "warm", "warm+elr", "fresh+elr")
SWEEP_LRS = "3e-4,1e-3,3e-3,1e-2,3e-2"


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass
class Data:
    x: torch.Tensor  # (n_train, features) float32
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str


_CACHE: dict = {}


def mnist1d_data() -> Data:
    """MNIST-1D from ``mnist1d.data.make_dataset`` (procedural; no file, no network), 4000 / 1000."""
    if "mnist1d" not in _CACHE:
        import random

        from mnist1d.data import get_dataset_args, make_dataset

        # make_dataset seeds the global numpy and random generators: leave them as they were.
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            ds = make_dataset(get_dataset_args())
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        _CACHE["mnist1d"] = Data(
            torch.tensor(ds["x"], dtype=torch.float32),
            torch.tensor(ds["y"], dtype=torch.long),
            torch.tensor(ds["x_test"], dtype=torch.float32),
            torch.tensor(ds["y_test"], dtype=torch.long),
            "MNIST-1D",
        )
    return _CACHE["mnist1d"]


def cifar10_data(path: Path, n_train: int | None, n_test: int | None) -> Data:
    """CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``), flattened, standardized per channel."""

    def load(name):
        with open(path / name, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        return np.asarray(d[b"data"], dtype=np.float32), np.asarray(d[b"labels"], dtype=np.int64)

    parts = [load(f"data_batch_{i}") for i in range(1, 6) if (path / f"data_batch_{i}").is_file()]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    xt, yt = load("test_batch")
    x, y, xt, yt = x[:n_train], y[:n_train], xt[:n_test], yt[:n_test]
    mean = x.reshape(len(x), 3, -1).mean(axis=(0, 2)).repeat(1024)
    std = x.reshape(len(x), 3, -1).std(axis=(0, 2)).repeat(1024)
    norm = lambda a: torch.tensor((a - mean) / std)  # noqa: E731
    return Data(norm(x), torch.tensor(y), norm(xt), torch.tensor(yt), f"CIFAR-10 ({len(x)} / {len(xt)})")


def subset(n: int, fraction: float, seed: int) -> torch.Tensor:
    """The phase-1 indices: a random round(fraction * n) of range(n), sorted."""
    k = max(1, round(fraction * n))
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].sort().values


# --------------------------------------------------------------------------------------------
# Model and one run
# --------------------------------------------------------------------------------------------


def build_model(features: int, classes: int, hidden: int = 256) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    return insert_norm(net, kind="layer")  # type: ignore[return-value]  # Linear -> LayerNorm -> ReLU; the read-out stays linear


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    acc = float((model(x).argmax(1) == y).float().mean())
    model.train()
    return acc


def run(arm: str, seed: int, data: Data, cfg: argparse.Namespace, log=print) -> tuple[list[dict], dict]:
    warm, project, rewarm, intervention = RECIPES[arm]
    n = len(data.x)
    steps_per_epoch = math.ceil(n / cfg.batch)
    phase_steps = cfg.epochs * steps_per_epoch
    torch.manual_seed(seed)
    model = build_model(data.x.shape[1], int(data.y.max()) + 1, cfg.hidden)
    if cfg.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.wd, foreach=True)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.wd, foreach=True)  # type: ignore[assignment]
    warmup = round(cfg.warmup * phase_steps)
    schedule = None
    if rewarm:
        schedule = OnDemandRewarm(warmup=warmup, decay=phase_steps - warmup, peak=cfg.peak, floor=cfg.floor)
    elr = ELR(model, optimizer, schedule=schedule, project=project)  # measures every step: per-epoch means
    means = IntervalMean()
    probe = data.x_test[:512]
    gen = torch.Generator().manual_seed(seed + 1)
    timer = Timer()
    rows: list[dict] = []
    phases = [("phase1", subset(n, cfg.fraction, seed)), ("phase2", None)] if warm else [("phase2", None)]
    step = 0
    phase1_train_acc = None
    previous = None
    at_change = None
    for phase, idx in phases:
        if phase == "phase2":
            torch.manual_seed(10_000 + seed)  # the fresh values an intervention draws
            if intervention == "shrink-perturb":  # clears the optimizer state of what it touches (everything)
                interventions.shrink_perturb(model, optimizer, shrink=0.4, perturb=0.1)
            elif intervention == "redo":  # zeroes the optimizer state of the recycled units' entries
                inputs = data.x[torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:REDO_BATCH]]
                redone = interventions.redo(model, optimizer, inputs, tau=REDO_TAU)
                log(f"  {arm} seed {seed}: redo recycled " + ", ".join(f"{len(u)} of {layer}" for layer, u in redone.items()))
            if not cfg.keep_optimizer_state:  # phase 2 is a new training run from the old weights
                optimizer.state.clear()
            if rewarm:
                elr.rewarm()
            at_change = diagnostics.FeatureSnapshot(model, probe)
        x_all = data.x if idx is None else data.x[idx]
        y_all = data.y if idx is None else data.y[idx]
        for epoch_step in range(phase_steps):
            i = torch.randint(len(x_all), (cfg.batch,), generator=gen)
            loss = F.cross_entropy(model(x_all[i]), y_all[i])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            elr.step(loss=loss.detach())
            means.add(elr.metrics())
            step += 1
            if (epoch_step + 1) % steps_per_epoch == 0:
                snap = diagnostics.FeatureSnapshot(model, probe)
                row = {
                    "arm": arm,
                    "base_lr": cfg.lr,
                    "seed": seed,
                    "phase": phase,
                    "step": step,
                    "phase_step": epoch_step + 1,
                    "train_acc": accuracy(model, x_all, y_all),
                    "full_train_acc": accuracy(model, data.x, data.y),
                    "test_acc": accuracy(model, data.x_test, data.y_test),
                    "lr": cfg.lr * elr.metrics()["lr_factor"],
                }
                if previous is not None:  # feature change over the last epoch (across the change too)
                    d = diagnostics.compare(previous, snap)
                    row["delta_c_epoch"], row["delta_a_epoch"] = d["delta_c"], d["delta_a"]
                if at_change is not None:  # feature change since the data change
                    d = diagnostics.compare(at_change, snap)
                    row["delta_c"], row["delta_a"] = d["delta_c"], d["delta_a"]
                previous = snap
                row.update({k: v for k, v in elr.metrics().items() if k != "lr_factor"})  # this step's own
                row.update(means.pop())  # elr_mean/<layer>: the mean over the epoch
                rows.append(row)
        if phase == "phase1":
            phase1_train_acc = rows[-1]["train_acc"]
    elr.remove()
    last = rows[-1]
    summary = {
        "arm": arm,
        "base_lr": cfg.lr,
        "seed": seed,
        "final_test_acc": last["test_acc"],
        "final_train_acc": last["full_train_acc"],
        "phase1_train_acc": phase1_train_acc,
        "wall_s": round(timer(), 1),
    }
    return rows, summary


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def gap_closed(a_arm: float, a_warm: float, a_ref: float) -> float:
    return (a_arm - a_warm) / (a_ref - a_warm) if a_ref != a_warm else math.nan


def window_epochs(cfg: argparse.Namespace) -> int:
    """Epochs per ELR window: the re-warm's warm-up (10% of a phase: 3 epochs by default), at least 1."""
    return max(1, round(cfg.warmup * cfg.epochs))


def elr_across_change(rows: list[dict], layer: str, k: int) -> dict[str, float]:
    """Mean per-epoch ELR of ``layer`` (seeds pooled) over the last k epochs of phase 1, the first and last k of phase 2.

    Also ``||W||`` of the layer at the end of each phase (seed mean). A fresh arm has no phase 1 (nan).
    Why these windows: the ELR the network had when the data changed, the burst after it, and where it settles.
    """

    def mean(values):
        return sum(values) / len(values) if values else math.nan

    out = {}
    seeds = list(dict.fromkeys(r["seed"] for r in rows))
    for phase, name, part in (
        ("phase1", "before", slice(-k, None)),
        ("phase2", "after", slice(None, k)),
        ("phase2", "end", slice(-k, None)),
    ):
        runs = [[r for r in rows if r["seed"] == seed and r["phase"] == phase] for seed in seeds]
        out[f"elr_{name}"] = mean([r[f"elr_mean/{layer}"] for run in runs for r in run[part]])
        if name != "after":
            out[f"norm_{name}"] = mean([run[-1][f"param_norm/{layer}"] for run in runs if run])
    return out


def elr_change_markdown(rows: list[dict], keys: list[tuple[str, float]], cfg: argparse.Namespace) -> list[str]:
    """The measured ELR across the data change, one row per (arm, base lr) in ``keys``."""
    layers = [k[len("elr_mean/") :] for k in rows[0] if k.startswith("elr_mean/")]
    layer, k = layers[0], window_epochs(cfg)
    table = []
    for arm, lr in keys:
        e = elr_across_change([r for r in rows if r["arm"] == arm and r["base_lr"] == lr], layer, k)
        table.append(
            [
                arm,
                f"{lr:g}",
                *(_sci(e[key]) for key in ("elr_before", "elr_after", "elr_end")),
                *(_num(e[key]) for key in ("norm_before", "norm_end")),
            ]
        )
    return [
        "",
        f"Measured ELR of the first hidden layer `{layer}` across the data change (`ELR.metrics()` every "
        f"step, epoch means, seeds pooled; windows of {k} epochs; a fresh arm starts at the change):",
        "",
        markdown_table(
            [
                "arm",
                "lr",
                f"ELR, last {k} epochs of phase 1",
                f"ELR, first {k} epochs of phase 2",
                f"ELR, last {k} epochs of phase 2",
                "norm end of phase 1",
                "norm end of phase 2",
            ],
            table,
        ),
    ]


def _sci(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2e}"


def _num(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def summary_markdown(
    summaries: list[dict], cfg: argparse.Namespace, data: Data, wall: float, command: str, curves: list[dict] | None = None
) -> str:
    arms = list(dict.fromkeys(s["arm"] for s in summaries))
    acc = {a: [s["final_test_acc"] for s in summaries if s["arm"] == a] for a in arms}
    stats = {a: mean_spread(v) for a, v in acc.items()}
    lines = [
        f"# Warm-starting: {data.name}, fraction {cfg.fraction}, {cfg.epochs} epochs per phase",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}; wall time {wall:.0f} s; seeds {cfg.seeds}",
        "",
        "Final test accuracy (mean +- sample std over seeds); gap closed = (acc(arm) - acc(warm)) / "
        "(acc(ref) - acc(warm)), on the seed means.",
        "",
    ]
    rows = []
    for a in arms:
        m, sd = stats[a]
        p1 = [s["phase1_train_acc"] for s in summaries if s["arm"] == a and s["phase1_train_acc"] is not None]
        gf = gc = ""
        if a.startswith("warm") and a != "warm" and "warm" in stats:
            if "fresh" in stats:
                gf = f"{100 * gap_closed(m, stats['warm'][0], stats['fresh'][0]):.0f}%"
            if "fresh+elr" in stats:
                gc = f"{100 * gap_closed(m, stats['warm'][0], stats['fresh+elr'][0]):.0f}%"
        rows.append(
            [
                a,
                f"{100 * m:.2f} +- {100 * sd:.2f}",
                f"{100 * min(v for v in acc[a]):.2f}",
                f"{100 * max(acc[a]):.2f}",
                f"{100 * sum(p1) / len(p1):.1f}" if p1 else "",
                gf,
                gc,
            ]
        )
    lines.append(
        markdown_table(
            ["arm", "test acc %", "min %", "max %", "phase-1 train acc %", "gap closed vs fresh", "gap closed vs fresh+elr"], rows
        )
    )
    if {"warm", "warm+elr", "fresh+elr"} <= set(stats):
        w, e, c = stats["warm"], stats["warm+elr"], stats["fresh+elr"]
        gap = c[0] - w[0]
        spread = max(w[1], c[1], e[1])
        per_seed = []
        by = {(s["arm"], s["seed"]): s["final_test_acc"] for s in summaries}
        for seed in cfg.seeds:
            if all((a, seed) in by for a in ("warm", "warm+elr", "fresh+elr")):
                per_seed.append(gap_closed(by["warm+elr", seed], by["warm", seed], by["fresh+elr", seed]))
        lines += [
            "",
            f"Matched-control gap acc(fresh+elr) - acc(warm) = {100 * gap:.2f} points; largest seed std "
            f"of the three arms = {100 * spread:.2f} points ({'larger' if gap > spread else 'NOT larger'}"
            " than the spread).",
            f"warm+elr closes {100 * gap_closed(e[0], w[0], c[0]):.0f}% of it (target >= 80%); per seed: "
            + ", ".join(f"{100 * g:.0f}%" for g in per_seed)
            + ".",
        ]
    if {"warm", "fresh"} <= set(stats):
        lines.append(f"Plain gap acc(fresh) - acc(warm) = {100 * (stats['fresh'][0] - stats['warm'][0]):.2f} points.")
    if curves:
        lines += elr_change_markdown(curves, [(a, cfg.lr) for a in arms], cfg)
    return "\n".join(lines) + "\n"


def sweep_markdown(summaries: list[dict], rows: list[dict], cfg: argparse.Namespace, data: Data, wall: float, command: str) -> str:
    """Final test accuracy per (arm, lr); the plain gap at each constant lr; what each closes of the recipe's gap."""
    order = list(dict.fromkeys(s["arm"] for s in summaries))
    keys = sorted({(s["arm"], s["base_lr"]) for s in summaries}, key=lambda key: (order.index(key[0]), key[1]))
    acc = {key: [s["final_test_acc"] for s in summaries if (s["arm"], s["base_lr"]) == key] for key in keys}
    stats = {key: mean_spread(v) for key, v in acc.items()}
    warm0, control = stats.get(("warm", cfg.lr)), stats.get(("fresh+elr", cfg.lr))
    lines = [
        f"# Warm-starting lr sweep: {data.name}, fraction {cfg.fraction}, {cfg.epochs} epochs per phase",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}; wall time {wall:.0f} s; seeds {cfg.seeds}",
        "",
        f"A constant-lr arm trains both phases at its lr; a re-warmed arm has base lr {cfg.lr:g} and peaks at "
        f"{cfg.peak:g}x it. Gap = acc(fresh) - acc(warm) at the same lr; 'closes' = (acc - acc(warm at "
        f"{cfg.lr:g})) / (acc(fresh+elr) - acc(warm at {cfg.lr:g})), the matched-control gap of the default "
        "run, on the seed means.",
        "",
    ]
    table = []
    for arm, lr in keys:
        m, sd = stats[arm, lr]
        gap = closes = ""
        if arm == "warm" and ("fresh", lr) in stats:
            gap = f"{100 * (stats['fresh', lr][0] - m):+.2f}"
        if arm.startswith("warm") and warm0 and control:
            closes = f"{100 * gap_closed(m, warm0[0], control[0]):.0f}%"
        table.append(
            [
                arm,
                f"{lr:g}",
                f"{100 * m:.2f} +- {100 * sd:.2f}",
                f"{100 * min(acc[arm, lr]):.2f}",
                f"{100 * max(acc[arm, lr]):.2f}",
                gap,
                closes,
            ]
        )
    lines.append(
        markdown_table(
            ["arm", "lr", "test acc % (mean +- std)", "min %", "max %", "gap fresh - warm (points)", "closes of the matched-control gap"],
            table,
        )
    )
    lines += elr_change_markdown(rows, keys, cfg)
    return "\n".join(lines) + "\n"


COLORS = {
    "fresh": "k",
    "warm": "tab:gray",
    "warm+shrink-perturb": "tab:purple",
    "warm+redo": "tab:brown",
    "warm+elr": "tab:red",
    "warm+project": "tab:orange",
    "warm+rewarm": "tab:blue",
    "fresh+elr": "tab:green",
}


def _mean_curve(rows, arm, key):
    by_step: dict[int, list[float]] = {}
    for r in rows:
        if r["arm"] == arm and r.get(key) is not None:
            by_step.setdefault(r["step"], []).append(r[key])
    steps = sorted(by_step)
    return steps, [sum(by_step[s]) / len(by_step[s]) for s in steps]


def plot(rows: list[dict], out: Path, cfg: argparse.Namespace, change: int) -> None:
    plt = pyplot()
    arms = list(dict.fromkeys(r["arm"] for r in rows))

    def shift(arm, steps):  # fresh arms start at the data change
        return [s + change if arm.startswith("fresh") else s for s in steps]

    layers = [k[len("elr/") :] for k in rows[0] if k.startswith("elr/")]
    panels = [
        ("test_acc", "test accuracy", False),
        ("full_train_acc", "train accuracy (all data)", False),
        ("lr", "learning rate", True),
        (f"param_norm/{layers[0]}", f"||W|| {layers[0]}", True),
        (f"elr/{layers[0]}", f"ELR {layers[0]}", True),
        (f"elr/{layers[-1]}", f"ELR {layers[-1]} (read-out)", True),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for ax, (key, title, log) in zip(axes.flat, panels):
        for arm in arms:
            xs, ys = _mean_curve(rows, arm, key)
            ax.plot(shift(arm, xs), ys, color=COLORS.get(arm), label=arm, lw=1.2)
        ax.axvline(change, color="k", lw=0.6, ls=":")
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
        if log:
            ax.set_yscale("log")
        if key == "test_acc":
            finals = [v for arm in arms for v in _mean_curve(rows, arm, key)[1][-1:]]
            ax.set_ylim(min(finals) - 0.15, max(finals) + 0.03)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(
        f"Warm-starting, fraction {cfg.fraction}: mean over seeds {cfg.seeds}; data change at step {change} (fresh arms start there)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=70)
    plt.close(fig)

    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    for ax, key, title in zip(
        axes.flat,
        ("delta_c_epoch", "delta_a_epoch", "delta_c", "delta_a"),
        ("Delta_C per epoch", "Delta_A per epoch", "Delta_C since the data change", "Delta_A since the data change"),
    ):
        for arm in arms:
            xs, ys = _mean_curve(rows, arm, key)
            ax.plot(shift(arm, xs), ys, color=COLORS.get(arm), label=arm, lw=1.2)
        ax.axvline(change, color="k", lw=0.6, ls=":")
        ax.set_title(title, fontsize=10)
        ax.set_yscale("log")
        ax.tick_params(labelsize=8)
        ax.set_xlabel("step", fontsize=8)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Feature change (diagnostics.compare on 512 test inputs), mean over seeds", fontsize=11)
    fig.tight_layout()
    fig.savefig(out / "features.png", dpi=70)
    plt.close(fig)


def plot_sweep(summaries: list[dict], rows: list[dict], out: Path, cfg: argparse.Namespace, change: int) -> None:
    """Final test accuracy against the constant lr (re-warmed arms as lines); the first hidden layer's ELR over time."""
    plt = pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(13, 4.5))
    for arm in dict.fromkeys(s["arm"] for s in summaries):
        lrs = sorted({s["base_lr"] for s in summaries if s["arm"] == arm})
        stats = [mean_spread(s["final_test_acc"] for s in summaries if s["arm"] == arm and s["base_lr"] == lr) for lr in lrs]
        if RECIPES[arm][2]:  # re-warmed: one lr, a reference line
            ax0.axhline(stats[0][0], color=COLORS.get(arm), ls="--", lw=1.2, label=f"{arm} (lr {lrs[0]:g}, peak {cfg.peak:g}x)")
        else:
            ax0.errorbar(
                lrs,
                [m for m, _ in stats],
                [sd for _, sd in stats],
                color=COLORS.get(arm),
                marker="o",
                capsize=3,
                label=f"{arm}, constant lr",
            )
    ax0.set_xscale("log")
    ax0.set_xlabel("lr", fontsize=9)
    ax0.set_title("final test accuracy (mean +- std over seeds)", fontsize=10)
    ax0.legend(fontsize=7)
    layer = [k[len("elr_mean/") :] for k in rows[0] if k.startswith("elr_mean/")][0]
    warm_lrs = sorted({r["base_lr"] for r in rows if r["arm"] == "warm"})
    shades = plt.get_cmap("Blues")
    for i, lr in enumerate(warm_lrs):
        xs, ys = _mean_curve([r for r in rows if r["base_lr"] == lr], "warm", f"elr_mean/{layer}")
        ax1.plot(xs, ys, color=shades(0.35 + 0.65 * i / max(1, len(warm_lrs) - 1)), lw=1.1, label=f"warm, lr {lr:g}")
    for arm in ("warm+elr", "fresh+elr"):
        xs, ys = _mean_curve(rows, arm, f"elr_mean/{layer}")
        if xs:
            ax1.plot([x + change if arm.startswith("fresh") else x for x in xs], ys, color=COLORS[arm], lw=1.2, label=arm)
    ax1.axvline(change, color="k", lw=0.6, ls=":")
    ax1.set_yscale("log")
    ax1.set_xlabel("step (fresh arms start at the data change)", fontsize=9)
    ax1.set_title(f"ELR of {layer} (epoch means, mean over seeds)", fontsize=10)
    ax1.legend(fontsize=7)
    fig.suptitle(f"Warm-starting, fraction {cfg.fraction}: constant-lr sweep, seeds {cfg.seeds}", fontsize=11)
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=70)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m plastic_rl.tools.warm_start",
        description="Warm-starting (Ash & Adams): fresh vs warm vs warm + projection and re-warm.",
    )
    parser.add_argument(
        "--fraction", type=float, default=0.5, help="phase-1 fraction of the training set, in (0, 1) (default 0.5; the paper also uses 0.1)"
    )
    parser.add_argument(
        "--epochs", type=positive_int("--epochs"), default=30, help="epochs of the full training set per phase (default 30)"
    )
    parser.add_argument("--batch", type=positive_int("--batch"), default=128, help="minibatch size (default 128)")
    parser.add_argument("--hidden", type=positive_int("--hidden"), default=256, help="hidden width (default 256)")
    parser.add_argument("--optimizer", default="adam", choices=("adam", "sgd"), help="adam (default) or sgd (momentum 0.9)")
    parser.add_argument("--lr", type=float, default=1e-3, help="base lr (default 1e-3)")
    parser.add_argument(
        "--keep-optimizer-state",
        action="store_true",
        help="keep the optimizer state (Adam moments) across the data change; default: phase 2 starts "
        "a new optimizer state, as a new training run from the old weights would",
    )
    parser.add_argument("--wd", type=float, default=0.0, help="L2 weight decay of the optimizer (default 0)")
    parser.add_argument("--peak", type=float, default=10.0, help="re-warm peak, a multiple of --lr (default 10)")
    parser.add_argument("--floor", type=float, default=1.0, help="end of the cosine, a multiple of --lr (default 1)")
    parser.add_argument("--warmup", type=float, default=0.1, help="warm-up, a fraction of phase 2 (default 0.1)")
    parser.add_argument(
        "--data", default=None, help="a CIFAR-10 python-format folder (cifar-10-batches-py); default: MNIST-1D generated in memory"
    )
    parser.add_argument(
        "--n-train", type=positive_int("--n-train"), default=10000, help="with --data: training examples kept (default 10000)"
    )
    parser.add_argument("--n-test", type=positive_int("--n-test"), default=2000, help="with --data: test examples kept (default 2000)")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="constant-lr sweep: the constant-lr arms (default fresh, warm) at every lr of --lrs, the "
        "re-warmed ones (default warm+elr, fresh+elr) at --lr",
    )
    parser.add_argument("--lrs", default=SWEEP_LRS, help=f"--sweep: the constant lrs, comma-separated (default {SWEEP_LRS})")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    add_common(parser, ARMS, default_out="runs/warm_start", seeds="0-4")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.sweep:
        args.lrs = parse_lrs(parser, args.lrs, example=SWEEP_LRS)
        if args.arms.strip() == "all":
            args.arms = ",".join(SWEEP_ARMS)
    if not 0 < args.fraction < 1:
        parser.error(f"--fraction {args.fraction} is not accepted; the phase-1 fraction must be in (0, 1), e.g. 0.5 or 0.1")
    for name in ("lr", "peak", "floor"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            parser.error(f"--{name} {value} is not accepted; it must be a number > 0")
    if args.floor > args.peak:
        parser.error(f"--floor {args.floor} is above --peak {args.peak}; the cosine ends at or below its peak")
    if not 0 <= args.warmup <= 1:
        parser.error(f"--warmup {args.warmup} is not accepted; it is a fraction of phase 2 in [0, 1]")
    if args.data is not None:
        path = Path(args.data)
        missing = [f for f in ("data_batch_1", "test_batch") if not (path / f).is_file()]
        if not path.is_dir():
            parser.error(
                f"--data {args.data}: no such folder; expected a CIFAR-10 python-format folder "
                "(cifar-10-batches-py with data_batch_1..5 and test_batch)"
            )
        if missing:
            parser.error(
                f"--data {args.data}: {', '.join(missing)} not found; expected a CIFAR-10 python-format "
                "folder (cifar-10-batches-py with data_batch_1..5 and test_batch)"
            )
    resolve_common(parser, args, ARMS)
    args.verbose = not args.quiet
    return args


def load_data(args: argparse.Namespace) -> Data:
    if args.data is None:
        return mnist1d_data()
    return cifar10_data(Path(args.data), args.n_train, args.n_test)


def _progress(s: dict) -> str:
    return (
        f"{s['arm']:20s} lr {s['base_lr']:<7g} seed {s['seed']}: final test {s['final_test_acc']:.4f}  "
        f"train {s['final_train_acc']:.4f}"
        + (f"  phase-1 train {s['phase1_train_acc']:.4f}" if s["phase1_train_acc"] is not None else "")
        + f"  ({s['wall_s']} s)"
    )


def sweep_pairs(args: argparse.Namespace) -> list[tuple[str, float]]:
    """(arm, lr) to run: constant-lr arms at every lr of --lrs, re-warmed arms at --lr (they peak at --peak x it)."""
    return [(arm, lr) for arm in args.arms for lr in ([args.lr] if RECIPES[arm][2] else args.lrs)]


def sweep(args: argparse.Namespace, out: Path, command: str) -> int:
    timer = Timer()
    data = load_data(args)
    jobs = [(arm, seed, argparse.Namespace(**{**vars(args), "lr": lr})) for seed in args.seeds for arm, lr in sweep_pairs(args)]
    rows, summaries = collect(jobs, lambda arm, seed, cfg: run(arm, seed, data, cfg), _progress, args.verbose)
    text = sweep_markdown(summaries, rows, args, data, timer(), command)
    files = write_outputs(out, "sweep", rows, summaries, text)
    plot_sweep(summaries, rows, out, args, args.epochs * math.ceil(len(data.x) / args.batch))
    if args.verbose:
        print(text)
        print(f"wrote {out}/{', '.join(files)}, sweep.png")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    out = prepare_out(args.out)
    command = "python -m plastic_rl.tools.warm_start " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.sweep:
        return sweep(args, out, command)
    timer = Timer()
    data = load_data(args)
    rows, summaries = collect([(arm, seed) for seed in args.seeds for arm in args.arms],
                              lambda arm, seed: run(arm, seed, data, args), _progress, args.verbose)  # fmt: skip
    text = summary_markdown(summaries, args, data, timer(), command, rows)
    files = write_outputs(out, "summary", rows, summaries, text)
    change = args.epochs * math.ceil(len(data.x) / args.batch)
    plot(rows, out, args, change)
    if args.verbose:
        print(text)
        print(f"wrote {out}/{', '.join(files)}, curves.png, features.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
