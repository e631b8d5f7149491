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

The code is split by job into ``warm_start_data`` (MNIST-1D, CIFAR-10, the phase-1 subset),
``warm_start_train`` (the arms' recipes, the model, one run), ``warm_start_report`` (``summary.md``,
``sweep.md``), ``warm_start_plots`` (the figures) and ``warm_start_cli`` (the options). This module
keeps the entry point and re-exports every name the others define.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from plastic_rl.tools._validate import Timer, collect, prepare_out, write_outputs
from plastic_rl.tools.warm_start_cli import build_parser, parse_args  # noqa: F401 -- re-exported
from plastic_rl.tools.warm_start_data import _CACHE, Data, cifar10_data, load_data, mnist1d_data, subset  # noqa: F401 -- re-exported
from plastic_rl.tools.warm_start_plots import COLORS, _mean_curve, plot, plot_sweep  # noqa: F401 -- re-exported
from plastic_rl.tools.warm_start_report import (  # noqa: F401 -- re-exported
    _num,
    _sci,
    elr_across_change,
    elr_change_markdown,
    gap_closed,
    summary_markdown,
    sweep_markdown,
    window_epochs,
)
from plastic_rl.tools.warm_start_train import (  # noqa: F401 -- re-exported
    ARMS,
    RECIPES,
    REDO_BATCH,
    REDO_TAU,
    SWEEP_ARMS,
    SWEEP_LRS,
    accuracy,
    build_model,
    run,
)


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
