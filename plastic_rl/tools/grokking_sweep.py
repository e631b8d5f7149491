"""The grokking lr sweep's analysis: the measured ELR over a window, and its rank correlation with steps to 90%.

Its own module because it is the test of the paper's explanation (does a higher ELR before
generalization mean sooner generalization?), separate from training and the default report:
the per-run ELR windows, Spearman's rho over groups of runs, and ``sweep.md``.
``plastic_rl.tools.grokking`` re-exports every name.
"""

from __future__ import annotations

import argparse
import math
import statistics
import warnings

from plastic_rl.tools._validate import first_step, machine, markdown_table
from plastic_rl.tools.grokking_arms import PLAIN, STOP_AT, WINDOW_AT
from plastic_rl.tools.grokking_report import _censored, matched_markdown


def elr_window(elr: list[float], steps: list[int], accs: list[float], threshold: float = WINDOW_AT) -> tuple[float, int]:
    """Mean per-step ELR (``elr[i]``: step i + 1) over steps 1..t, t the first logged step with accuracy >= threshold.

    All steps when no logged step gets there. Why this window: the paper's claim is that the ELR while
    the network is still learning its features governs when it generalizes; once it has, the ELR says
    nothing about the speed any more. Returns (mean, steps averaged).
    """
    end = first_step(steps, accs, threshold)
    n = len(elr) if end is None else min(end, len(elr))
    if n < 1:
        raise ValueError(f"no per-step ELR before step {end}: got {len(elr)} values")
    return statistics.fmean(elr[:n]), n


def spearman(
    summaries: list[dict], budget: int, arms=None, censored: bool = True, lr: float | None = None, key: str = "elr_window"
) -> dict:
    """Spearman's rho of a run's mean ELR (``key``) against its steps to 90%, over the runs selected.

    A run not within the budget ranks last (steps = budget + 1, tied with the other such runs: Spearman
    works on ranks, and all we know of them is that they rank after every run that got there);
    ``censored=False`` leaves them out instead.
    """
    pts = [(s[key], s["steps_to_90"]) for s in summaries if (arms is None or s["arm"] in arms) and (lr is None or s["nominal_lr"] == lr)]
    if not censored:
        pts = [p for p in pts if p[1] is not None]
    x = [p[0] for p in pts]
    y = [budget + 1 if p[1] is None else p[1] for p in pts]
    out = {"n": len(pts), "censored": sum(p[1] is None for p in pts), "rho": math.nan, "p": math.nan}
    if len(pts) >= 3 and len(set(x)) > 1 and len(set(y)) > 1:
        from scipy.stats import spearmanr

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = spearmanr(x, y)
        out.update(rho=float(res.statistic), p=float(res.pvalue))
    return out


def _rho(r: dict) -> list[str]:
    return ["undefined (a constant column)", ""] if math.isnan(r["rho"]) else [f"{r['rho']:.2f}", f"{r['p']:.1e}"]


def spearman_rows(summaries: list[dict], budget: int) -> list[list]:
    """Every run; each kind of network; the runs that got there; each lr alone (arms differ, the lr does not)."""
    groups = [
        ("all runs", {}),
        ("plain networks (" + ", ".join(PLAIN) + ")", {"arms": PLAIN}),
        ("normalized networks (nap, elr, late-elr)", {"arms": ("nap", "elr", "late-elr")}),
        ("runs that reached 90% only", {"censored": False}),
    ]
    groups += [(f"lr {lr:g} only (across arms)", {"lr": lr}) for lr in sorted({s["nominal_lr"] for s in summaries})]
    fixed = "elr_fixed" in summaries[0]
    rows = []
    for label, select in groups:
        r = spearman(summaries, budget, **select)  # type: ignore[arg-type]
        if r["n"]:
            rows.append(
                [label, r["n"], r["censored"], *_rho(r), *(_rho(spearman(summaries, budget, key="elr_fixed", **select)) if fixed else [])]  # type: ignore[arg-type]
            )
    return rows


def interval_mean(rows: list[dict], key: str, end: int) -> float:
    """Mean per-step value over steps 1..end of one run, from its logged interval means (weighted by length)."""
    total, last = 0.0, 0
    for r in rows:
        if r["step"] > end:
            break
        total += r[key] * (r["step"] - last)
        last = r["step"]
    if last != end:
        raise ValueError(f"end={end} is not a logged step of this run (last logged: {last})")
    return total / end


def add_fixed_window(summaries: list[dict], rows: list[dict], budget: int) -> int:
    """Give every run ``elr_fixed``: its mean ELR over steps 1..W, W the earliest 50% step of any run (or the budget).

    Why: the window to 50% is shorter for runs that generalize sooner, and the ELR of a plain network
    falls as its weights grow, so part of a correlation over it could come from the window alone. A
    window of the same steps for every run cannot.
    """
    end = min((s["steps_to_50"] for s in summaries if s["steps_to_50"] is not None), default=budget)
    for s in summaries:
        run_rows = [r for r in rows if (r["arm"], r["nominal_lr"], r["seed"]) == (s["arm"], s["nominal_lr"], s["seed"])]
        s["elr_fixed"], s["fixed_steps"] = interval_mean(run_rows, f"elr_mean/{s['elr_layer']}", end), end
    return end


def sweep_markdown(summaries: list[dict], cfg: argparse.Namespace, wall: float, command: str) -> str:
    budget, layer = cfg.steps, summaries[0]["elr_layer"]
    arms = list(dict.fromkeys(s["arm"] for s in summaries))
    lrs = sorted({s["nominal_lr"] for s in summaries})
    seeds = list(dict.fromkeys(s["seed"] for s in summaries))
    by = {(s["arm"], s["nominal_lr"], s["seed"]): s for s in summaries}

    def cells(key, fmt):
        return [[arm, *(" / ".join(fmt(by[arm, lr, seed][key]) for seed in seeds if (arm, lr, seed) in by) for lr in lrs)] for arm in arms]

    lr_heads = [f"lr {lr:g}" for lr in lrs]
    lines = [
        f"# Grokking lr sweep: p={cfg.p}, rho={cfg.rho}, model={cfg.model}, budget {budget} steps",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}; wall time {wall:.0f} s; seeds {seeds}",
        "",
        "The lr of a constant arm is its lr; that of a scheduled arm (`baseline+schedule`, `elr`) is its peak "
        f"(warm-up over {cfg.warmup} steps, cosine over the {budget}-step budget to "
        f"{cfg.floor_lr / cfg.peak_lr:g} x the peak). A run stops at the first logged step with test "
        f"accuracy >= {STOP_AT:.0%} (its schedule spans the budget regardless).",
        "",
        f"Steps to 90% test accuracy, seeds {' / '.join(map(str, seeds))} (resolution {cfg.eval_every} steps; "
        f"'> {budget}': not within the budget):",
        "",
        markdown_table(["arm", *lr_heads], cells("steps_to_90", lambda v: _censored(v, budget))),
    ]
    lines += matched_markdown(summaries, budget, cfg.eval_every)
    lines += [
        "",
        f"Measured ELR of the hidden layer `{layer}` (`ELR.metrics()`, every step), averaged over the steps "
        f"up to the first logged step with test accuracy >= {WINDOW_AT:.0%} (the whole run when none), "
        f"seeds {' / '.join(map(str, seeds))}:",
        "",
        markdown_table(["arm", *lr_heads], cells("elr_window", lambda v: f"{v:.2e}")),
    ]
    fixed = summaries[0].get("fixed_steps")
    heads = ["runs", "n", "not within budget", "rho, window to 50%", "p-value"]
    if fixed:
        lines += [
            "",
            f"The same ELR averaged over a fixed window, steps 1..{fixed} for every run ({fixed}: the earliest "
            f"logged step at which any run reached {WINDOW_AT:.0%}), seeds {' / '.join(map(str, seeds))}:",
            "",
            markdown_table(["arm", *lr_heads], cells("elr_fixed", lambda v: f"{v:.2e}")),
        ]
        heads += [f"rho, steps 1..{fixed}", "p-value"]
    lines += [
        "",
        "Spearman's rank correlation of the mean ELR with steps to 90% (a run not within the budget "
        "ranks last, tied with the others that did not get there; the paper predicts a strong negative "
        "one):",
        "",
        markdown_table(heads, spearman_rows(summaries, budget)),
    ]
    return "\n".join(lines) + "\n"
