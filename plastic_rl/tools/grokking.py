"""Grokking on modular addition: does raising the effective learning rate make a network generalize sooner?

    python -m plastic_rl.tools.grokking [--p 97] [--rho 0.3] [--model mlp|transformer] [--steps N]
                                        [--arms baseline,baseline+schedule,nap,elr,late-elr] [--seeds 0-2] [--out DIR]
    python -m plastic_rl.tools.grokking --sweep [--lrs 1e-3,3e-3,1e-2,3e-2]     # every arm at every lr

Task: every pair (x, y) in [0, p)^2 labelled (x + y) mod p; a random fraction ``rho`` of the p^2 pairs
is the training set, the rest the test set (the split depends on the seed, and is the same for every
arm of a seed). Minibatches of 512 drawn with replacement (``--batch 0``: full batch), cross-entropy.

Arms (same seed: same split, same initial weights; same budget):

- ``baseline``: the classic grokking set-up, no normalization, AdamW (weight decay 1.0) at a
  constant lr 1e-3. ELR runs with ``project=False``: it only measures.
- ``baseline+schedule``: the plain network with ``elr``'s lr schedule (no projection): the matched
  control for ``elr``, so its speed-up is not a larger nominal lr.
- ``nap``: ``insert_norm`` (LayerNorm before the ReLU), the normalized layers and their gains
  projected to their initial norm every 100 steps, constant lr.
- ``elr``: normalized and projected every step, and a warm-up to a high peak (1e-2) then a cosine
  over the whole run (``CyclicRewarm(period=steps)``).
- ``late-elr``: normalized and projected, a low constant lr until ``--late-at``, then re-warmed
  (``elr.rewarm()``) to the same peak: "grokking on demand".

In the normalized arms the parameters that are not scale-invariant (token embedding, output layer;
in the transformer also the RMSNorm gains, which ELR does not project there) get AdamW weight decay:
left free they grow, the loss collapses and nothing generalizes. See docs/validators.md.

Speed-ups are only ever reported at a matched lr: ``nap`` against ``baseline`` at the same constant
lr, ``elr`` against ``baseline+schedule`` under the same schedule. ``--sweep`` runs the arms at every
lr of ``--lrs`` (a constant arm at that lr; a scheduled arm with that lr as its peak) and tests the
paper's explanation: the hidden layer's measured ELR, averaged over the steps before test accuracy
first reaches 50%, against steps to 90%, over all arms and lrs (Spearman's rank correlation).

Writes to ``--out``: ``curves.csv`` (every logged step of every arm and seed), ``summary.csv``,
``summary.md`` (steps to 50/90/95% test accuracy), ``curves.png``; with ``--sweep`` ``curves.csv``,
``sweep.csv``, ``sweep.md`` and ``elr_scatter.png``.

The code is split by job into ``grokking_data`` (the task and its split), ``grokking_model`` (MLP,
transformer), ``grokking_arms`` (the arms: constants, lr matching, schedule, optimizer, ELR),
``grokking_report`` (``summary.md``), ``grokking_sweep`` (the ELR windows, Spearman, ``sweep.md``),
``grokking_plots`` (the figures) and ``grokking_cli`` (the options). This module keeps the training
loop (``run``, ``evaluate``) and the entry point, and re-exports every name the others define.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch
from torch import nn
from torch.nn import functional as F

from plastic_rl import diagnostics
from plastic_rl.tools._validate import IntervalMean, Timer, collect, first_step, prepare_out, write_outputs
from plastic_rl.tools.grokking_arms import (  # noqa: F401 -- re-exported
    ARMS,
    COMPARISONS,
    MODELS,
    PLAIN,
    SCHEDULED,
    STOP_AT,
    SWEEP_ARMS,
    SWEEP_LRS,
    THRESHOLDS,
    WINDOW_AT,
    at_lr,
    hidden_layer,
    make_optimizer_and_elr,
    make_schedule,
    nominal_lr,
)
from plastic_rl.tools.grokking_cli import build_parser, parse_args  # noqa: F401 -- re-exported
from plastic_rl.tools.grokking_data import Split, make_split  # noqa: F401 -- re-exported
from plastic_rl.tools.grokking_model import MLP, Attention, Block, Transformer, build_model  # noqa: F401 -- re-exported
from plastic_rl.tools.grokking_plots import COLORS, plot, plot_scatter  # noqa: F401 -- re-exported
from plastic_rl.tools.grokking_report import (  # noqa: F401 -- re-exported
    _censored,
    _fmt_steps,
    comparison_rows,
    matched_markdown,
    speedup,
    summary_markdown,
)
from plastic_rl.tools.grokking_sweep import (  # noqa: F401 -- re-exported
    _rho,
    add_fixed_window,
    elr_window,
    interval_mean,
    spearman,
    spearman_rows,
    sweep_markdown,
)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    model.train()
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def run(arm: str, seed: int, cfg: argparse.Namespace, log=print, stop_at: float | None = None) -> tuple[list[dict], dict]:
    """Train one arm with one seed; return (logged rows, summary row).

    ``stop_at``: stop at the first logged step with test accuracy at or above it (the sweep: 0.9).
    """
    split = make_split(cfg.p, cfg.rho, seed)
    torch.manual_seed(seed)
    model = build_model(cfg, normalized=arm != "baseline")
    optimizer, elr = make_optimizer_and_elr(arm, model, cfg)
    probe = split.train_x[torch.randperm(len(split.train_x), generator=torch.Generator().manual_seed(seed))[:512]]
    timer = Timer()
    rows: list[dict] = []
    batch = cfg.batch if cfg.batch and cfg.batch < len(split.train_x) else None
    gen = torch.Generator().manual_seed(seed + 1)
    hidden, per_step, means = hidden_layer(cfg), [], IntervalMean()
    for step in range(1, cfg.steps + 1):
        if arm == "late-elr" and step == cfg.late + 1:
            elr.rewarm()
        if batch is None:
            x, y = split.train_x, split.train_y
        else:
            idx = torch.randint(len(split.train_x), (batch,), generator=gen)
            x, y = split.train_x[idx], split.train_y[idx]
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        elr.step(loss=loss.detach())
        metrics = elr.metrics()
        per_step.append(metrics[f"elr/{hidden}"])
        means.add(metrics)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            train_loss, train_acc = evaluate(model, split.train_x, split.train_y)
            test_loss, test_acc = evaluate(model, split.test_x, split.test_y)
            row = {
                "arm": arm,
                "nominal_lr": nominal_lr(arm, cfg),
                "seed": seed,
                "step": step,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "test_loss": test_loss,
                "test_acc": test_acc,
                "lr": optimizer.param_groups[0]["lr"] * metrics["lr_factor"],
            }
            row.update({k: v for k, v in metrics.items() if k != "lr_factor"})  # this step's own
            row.update(means.pop())  # elr_mean/<layer>: the mean since the last logged step
            row["param_norm"] = math.sqrt(sum(float(p.detach().pow(2).sum()) for p in model.parameters()))
            if step % cfg.diag_every == 0 or step == cfg.steps:
                d = diagnostics.measure(model, probe)
                row["dormant_ratio"] = d["dormant_ratio"]
            rows.append(row)
            if cfg.verbose and step % (cfg.eval_every * 20) == 0:
                log(
                    f"  {arm:9s} seed {seed} step {step:6d}  train {train_acc:.3f}  test {test_acc:.3f}  "
                    f"loss {train_loss:.3g}  [{timer():.0f}s]"
                )
            if stop_at is not None and test_acc >= stop_at:
                break
    elr.remove()
    steps_logged = [r["step"] for r in rows]
    accs = [r["test_acc"] for r in rows]
    summary = {"arm": arm, "nominal_lr": nominal_lr(arm, cfg), "seed": seed}
    for th in THRESHOLDS:
        summary[f"steps_to_{round(th * 100)}"] = first_step(steps_logged, accs, th)
    window, n = elr_window(per_step, steps_logged, accs)
    summary.update(
        {
            "final_train_acc": rows[-1]["train_acc"],
            "final_test_acc": rows[-1]["test_acc"],
            "best_test_acc": max(accs),
            "last_step": rows[-1]["step"],
            "elr_layer": hidden,
            "elr_window": window,
            "window_steps": n,
            "wall_s": round(timer(), 1),
        }
    )
    return rows, summary


def _progress(s: dict) -> str:
    return (
        f"{s['arm']:17s} lr {s['nominal_lr']:<7g} seed {s['seed']}: steps to 50/90/95% = "
        f"{', '.join(_fmt_steps(s[f'steps_to_{round(t * 100)}']) for t in THRESHOLDS)}; "
        f"final test {s['final_test_acc']:.3f}; mean ELR to 50% {s['elr_window']:.2e}  ({s['wall_s']} s)"
    )


def sweep(args: argparse.Namespace, out, command: str) -> int:
    """Every arm at every lr and seed, each stopped at 90% test accuracy; the ELR table, correlation, scatter."""
    timer = Timer()
    jobs = [(arm, seed, at_lr(args, arm, lr)) for lr in args.lrs for seed in args.seeds for arm in args.arms]
    rows, summaries = collect(jobs, lambda arm, seed, cfg: run(arm, seed, cfg, stop_at=STOP_AT), _progress, args.verbose)
    add_fixed_window(summaries, rows, args.steps)
    text = sweep_markdown(summaries, args, timer(), command)
    files = write_outputs(out, "sweep", rows, summaries, text)
    plot_scatter(summaries, out / "elr_scatter.png", args)
    if args.verbose:
        print(text)
        print(f"wrote {out}/{', '.join(files)}, elr_scatter.png")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    out = prepare_out(args.out)
    command = "python -m plastic_rl.tools.grokking " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.sweep:
        return sweep(args, out, command)
    timer = Timer()
    rows, summaries = collect([(arm, seed) for seed in args.seeds for arm in args.arms], lambda arm, seed: run(arm, seed, args),
                              _progress, args.verbose)  # fmt: skip
    text = summary_markdown(summaries, args, timer(), command)
    files = write_outputs(out, "summary", rows, summaries, text)
    plot(rows, out / "curves.png", args)
    if args.verbose:
        print(text)
        print(f"wrote {out}/{', '.join(files)}, curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
