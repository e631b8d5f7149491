"""The grokking validator's figures: ``curves.png`` (default run) and ``elr_scatter.png`` (sweep).

Its own module because plotting needs matplotlib and nothing else here does; the numbers it shows
come from the summary rows and the curves. ``plastic_rl.tools.grokking`` re-exports every name.
"""

from __future__ import annotations

import argparse

from plastic_rl.tools._validate import pyplot
from plastic_rl.tools.grokking_arms import ARMS, WINDOW_AT
from plastic_rl.tools.grokking_sweep import spearman

COLORS = dict(zip(ARMS, ["tab:gray", "tab:brown", "tab:blue", "tab:red", "tab:green"]))


def plot_scatter(summaries: list[dict], path, cfg: argparse.Namespace) -> None:
    """Mean ELR against steps to 90%, every run (hollow above the budget line: not within it); a panel per window."""
    plt = pyplot()
    lrs = sorted({s["nominal_lr"] for s in summaries})
    markers = dict(zip(lrs, "osD^vP*Xh<>p"))
    layer = summaries[0]["elr_layer"]
    panels = [("elr_window", f"mean ELR of {layer} until test accuracy first >= {WINDOW_AT:.0%}")]
    if "elr_fixed" in summaries[0]:
        panels.append(("elr_fixed", f"mean ELR of {layer} over steps 1..{summaries[0]['fixed_steps']} (every run)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5), squeeze=False)
    above = cfg.steps * 1.08
    for ax, (key, label) in zip(axes.flat, panels):
        for s in summaries:
            color, censored = COLORS.get(s["arm"], "k"), s["steps_to_90"] is None
            ax.scatter(
                s[key],
                above if censored else s["steps_to_90"],
                marker=markers[s["nominal_lr"]],
                s=40,
                facecolors="none" if censored else color,
                edgecolors=color,
                linewidths=1.2,
            )
        ax.axhline(cfg.steps, color="k", lw=0.6, ls=":")
        ax.text(
            0.99, above, f"not within {cfg.steps}", transform=ax.get_yaxis_transform(), fontsize=8, va="center", ha="right"
        )  # the runs that did not get there have the low ELRs, on the left
        ax.set_xscale("log")
        ax.set_xlabel(label, fontsize=9)
        ax.set_ylabel("steps to 90% test accuracy", fontsize=9)
        r = spearman(summaries, cfg.steps, key=key)
        ax.set_title(f"Spearman rho = {r['rho']:.2f} over {r['n']} runs ({r['censored']} not within budget, ranked last)", fontsize=9)
    for arm in dict.fromkeys(s["arm"] for s in summaries):
        axes.flat[0].scatter([], [], color=COLORS.get(arm, "k"), marker="s", label=arm)
    for lr in lrs:
        axes.flat[0].scatter([], [], color="k", marker=markers[lr], facecolors="none", label=f"lr {lr:g}")
    axes.flat[0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"Grokking, x+y mod {cfg.p}, rho={cfg.rho}: measured ELR vs steps to 90% (filled: got there)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot(rows: list[dict], path, cfg: argparse.Namespace) -> None:
    plt = pyplot()
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    colors = COLORS
    hidden = "blocks.0.mlp.0" if cfg.model == "transformer" else "net.0"
    out_layer = "unembed" if cfg.model == "transformer" else "net.2"
    panels = [
        ("train_acc", "train accuracy", False),
        ("test_acc", "test accuracy", False),
        ("lr", "learning rate", True),
        (f"param_norm/{hidden}", f"||W|| {hidden} (hidden)", True),
        (f"param_norm/{out_layer}", f"||W|| {out_layer} (read-out)", True),
        (f"elr_mean/{hidden}", f"ELR {hidden} (mean per log interval)", True),
        (f"elr_mean/{out_layer}", f"ELR {out_layer} (mean per log interval)", True),
        ("dormant_ratio", "dormant ratio (tau=0.025)", False),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(16, 6.5))
    for ax, (key, title, log) in zip(axes.flat, panels):
        for arm in arms:
            seeds = list(dict.fromkeys(r["seed"] for r in rows if r["arm"] == arm))
            for i, seed in enumerate(seeds):
                pts = [(r["step"], r[key]) for r in rows if r["arm"] == arm and r["seed"] == seed and r.get(key) is not None]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                ax.plot(
                    xs,
                    ys,
                    color=colors.get(arm, "k"),
                    alpha=0.85 if i == 0 else 0.4,
                    lw=1.2 if i == 0 else 0.8,
                    label=arm if i == 0 else None,
                )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        if log:
            ax.set_yscale("log")
        if key == "test_acc":
            for th in (0.9,):
                ax.axhline(th, color="k", lw=0.5, ls=":")
    axes.flat[1].legend(fontsize=8)
    fig.suptitle(f"Grokking, x+y mod {cfg.p}, rho={cfg.rho}, {cfg.model}; seeds {cfg.seeds} (first seed bold)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
