"""The warm-starting validator's reports: ``summary.md`` and ``sweep.md`` (accuracy, gap closed, ELR across the change).

Its own module because it only formats the summary rows and curves (no training).
``plastic_rl.tools.warm_start`` re-exports every name.
"""

from __future__ import annotations

import argparse
import math

from plastic_rl.tools._validate import machine, markdown_table, mean_spread
from plastic_rl.tools.warm_start_data import Data


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
