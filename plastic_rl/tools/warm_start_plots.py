"""The warm-starting validator's figures: ``curves.png``, ``features.png`` (default run) and ``sweep.png``.

Its own module because plotting needs matplotlib and nothing else here does.
``plastic_rl.tools.warm_start`` re-exports every name.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from plastic_rl.tools._validate import mean_spread, pyplot
from plastic_rl.tools.warm_start_train import RECIPES

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
