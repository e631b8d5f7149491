"""The grokking validator's default report: steps to 50/90/95% test accuracy and matched-lr speed-ups.

Its own module because it only formats summary rows (no training): ``summary.md``, and the
matched-lr speed-up table the sweep report reuses. ``plastic_rl.tools.grokking`` re-exports every name.
"""

from __future__ import annotations

import argparse

from plastic_rl.tools._validate import machine, markdown_table
from plastic_rl.tools.grokking_arms import COMPARISONS, THRESHOLDS


def _fmt_steps(s) -> str:
    return "not within budget" if s is None else str(s)


def _censored(s, budget: int) -> str:
    return f"> {budget}" if s is None else str(s)


def speedup(ref: int | None, arm: int | None, budget: int) -> str:
    """Steps of the reference over steps of the arm; a side not within the budget makes it a bound."""
    if ref is not None and arm is not None:
        return f"{ref / arm:.1f}x"
    if arm is not None:
        return f"> {budget / arm:.1f}x"
    if ref is not None:
        return f"< {ref / budget:.2f}x"
    return "neither"


def comparison_rows(summaries: list[dict], budget: int) -> list[list]:
    """One row per matched comparison and nominal lr present in ``summaries``, per-seed values joined by " / "."""
    by = {(s["arm"], s["nominal_lr"], s["seed"]): s["steps_to_90"] for s in summaries}
    seeds = list(dict.fromkeys(s["seed"] for s in summaries))
    lrs = sorted({s["nominal_lr"] for s in summaries})
    rows = []
    for arm, ref, what in COMPARISONS:
        for lr in lrs:
            both = [seed for seed in seeds if (arm, lr, seed) in by and (ref, lr, seed) in by]
            if both:
                rows.append(
                    [
                        f"`{arm}` vs `{ref}`",
                        what,
                        f"{lr:g}",
                        " / ".join(_censored(by[ref, lr, s], budget) for s in both),
                        " / ".join(_censored(by[arm, lr, s], budget) for s in both),
                        " / ".join(speedup(by[ref, lr, s], by[arm, lr, s], budget) for s in both),
                    ]
                )
    return rows


def matched_markdown(summaries: list[dict], budget: int, eval_every: int) -> list[str]:
    rows = comparison_rows(summaries, budget)
    if not rows:
        return []
    return [
        "",
        f"Speed-up to 90% test accuracy at a matched lr (the lr is the constant lr, or the schedule's peak): "
        f"steps of the reference / steps of the arm, per seed; resolution {eval_every} steps; "
        f"'> {budget}': not within the budget, which makes the speed-up a bound.",
        "",
        markdown_table(["arm vs reference", "matched", "lr", "reference: steps to 90%", "arm: steps to 90%", "speed-up"], rows),
    ]


def summary_markdown(summaries: list[dict], cfg: argparse.Namespace, wall: float, command: str) -> str:
    lines = [
        f"# Grokking: modular addition, p={cfg.p}, rho={cfg.rho}, model={cfg.model}, {cfg.steps} steps",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}; wall time {wall:.0f} s",
        "",
    ]
    per_seed = []
    for s in summaries:
        per_seed.append(
            [
                s["arm"],
                f"{s['nominal_lr']:g}",
                s["seed"],
                *(_fmt_steps(s[f"steps_to_{round(t * 100)}"]) for t in THRESHOLDS),
                f"{s['final_train_acc']:.3f}",
                f"{s['final_test_acc']:.3f}",
                f"{s['best_test_acc']:.3f}",
                f"{s['elr_window']:.2e}",
                s["wall_s"],
            ]
        )
    lines.append(
        markdown_table(
            [
                "arm",
                "lr",
                "seed",
                "steps to 50%",
                "steps to 90%",
                "steps to 95%",
                "final train acc",
                "final test acc",
                "best test acc",
                f"mean ELR {summaries[0]['elr_layer']} to 50%",
                "wall s",
            ],
            per_seed,
        )
    )
    arms = list(dict.fromkeys(s["arm"] for s in summaries))
    lines += ["", f"Steps to 90% test accuracy, per arm (median over the seeds that reached it; resolution {cfg.eval_every} steps):", ""]
    agg = []
    for arm in arms:
        reached = sorted(s["steps_to_90"] for s in summaries if s["arm"] == arm and s["steps_to_90"] is not None)
        n = sum(1 for s in summaries if s["arm"] == arm)
        med = reached[len(reached) // 2] if reached else None
        agg.append([arm, f"{len(reached)}/{n}", _fmt_steps(med)])
    lines.append(markdown_table(["arm", "seeds reaching 90%", "median steps to 90%"], agg))
    lines += matched_markdown(summaries, cfg.steps, cfg.eval_every)
    return "\n".join(lines) + "\n"
