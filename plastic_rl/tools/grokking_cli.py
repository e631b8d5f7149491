"""The grokking validator's command line: its options and the checks that reject bad values early.

Its own module because the options and their validation are long and independent of how a run
trains; ``python -m plastic_rl.tools.grokking`` (which re-exports both functions) parses with them.
"""

from __future__ import annotations

import argparse
import math

from plastic_rl.tools._validate import add_common, parse_lrs, positive_int, resolve_common
from plastic_rl.tools.grokking_arms import ARMS, MODELS, SWEEP_ARMS, SWEEP_LRS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m plastic_rl.tools.grokking",
        description="Grokking on modular addition: baseline (AdamW, wd 1) vs normalize+project(+re-warm).",
    )
    parser.add_argument("--p", type=int, default=97, help="modulus, >= 3 (default 97)")
    parser.add_argument("--rho", type=float, default=0.3, help="training fraction of the p^2 pairs, in (0, 1) (default 0.3)")
    parser.add_argument("--model", default="mlp", help="mlp (default) or transformer")
    parser.add_argument("--steps", type=positive_int("--steps"), default=None, help="optimizer steps per run (default 3000)")
    parser.add_argument("--batch", type=int, default=512, help="minibatch size (default 512, sampled with replacement); 0 = full batch")
    parser.add_argument("--embed", type=int, default=128, help="embedding width (default 128)")
    parser.add_argument("--hidden", type=int, default=256, help="MLP hidden width (default 256)")
    parser.add_argument("--norm", default="layer", choices=("layer", "rms"), help="normalization insert_norm inserts")
    parser.add_argument(
        "--gains",
        default="project",
        choices=("project", "decay"),
        help="normalized arms: project the norm gains with ELR (default) or leave them to AdamW decay",
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="base lr of baseline, nap, elr (default 1e-3)")
    parser.add_argument("--wd", type=float, default=1.0, help="baseline AdamW weight decay (default 1.0)")
    parser.add_argument(
        "--norm-wd", type=float, default=1.0, help="AdamW weight decay on the non-projected parameters of the normalized arms (default 1.0)"
    )
    parser.add_argument("--peak-lr", type=float, default=1e-2, help="re-warm peak lr of elr, late-elr (default 1e-2)")
    parser.add_argument("--floor-lr", type=float, default=1e-3, help="lr at the end of the cosine (default 1e-3)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default steps // 10)")
    parser.add_argument("--low-lr", type=float, default=1e-3, help="late-elr: lr before the re-warm (default 1e-3, 10x below the peak)")
    parser.add_argument("--late-at", type=float, default=0.5, help="late-elr: re-warm after this fraction of the steps (default 0.5)")
    parser.add_argument(
        "--eval-every", type=positive_int("--eval-every"), default=100, help="log (train/test accuracy, ELR) every N steps (default 100)"
    )
    parser.add_argument(
        "--diag-every",
        type=positive_int("--diag-every"),
        default=500,
        help="dormant ratio every N steps (multiple of --eval-every; default 500)",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="run every arm at every lr of --lrs (default arms: " + ", ".join(SWEEP_ARMS) + "), stop "
        "each run at 90%% test accuracy, and correlate the measured ELR with steps to 90%%",
    )
    parser.add_argument(
        "--lrs",
        default=SWEEP_LRS,
        help=f"--sweep: the lrs, comma-separated (a constant arm's lr, a scheduled arm's peak; default {SWEEP_LRS})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    add_common(parser, ARMS, default_out="runs/grokking", seeds="0-2")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.sweep:
        args.lrs = parse_lrs(parser, args.lrs, example=SWEEP_LRS)
        if args.arms.strip() == "all":
            args.arms = ",".join(SWEEP_ARMS)
        try:
            import scipy.stats  # noqa: F401
        except ImportError:
            parser.error("--sweep needs scipy for Spearman's rank correlation: pip install scipy")
    if args.p < 3:
        parser.error(f"--p {args.p} is not accepted; the modulus must be an int >= 3")
    if not 0 < args.rho < 1:
        parser.error(f"--rho {args.rho} is not accepted; the training fraction must be in (0, 1), e.g. 0.3")
    n_train = round(args.rho * args.p * args.p)
    if not 1 <= n_train < args.p * args.p:
        parser.error(
            f"--rho {args.rho} with --p {args.p} gives {n_train} training pairs of {args.p**2}; need at least 1 and at least one test pair"
        )
    if args.model not in MODELS:
        parser.error(f"--model {args.model!r} is unknown; accepted: {', '.join(MODELS)}")
    if not 0 <= args.late_at < 1:
        parser.error(f"--late-at {args.late_at} is not accepted; it is a fraction of the steps in [0, 1)")
    for name in ("lr", "peak_lr", "floor_lr", "low_lr"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            parser.error(f"--{name.replace('_', '-')} {value} is not accepted; it must be a number > 0")
    if args.floor_lr > args.peak_lr:
        parser.error(f"--floor-lr {args.floor_lr} is above --peak-lr {args.peak_lr}; the cosine ends at or below its peak")
    for name in ("wd", "norm_wd"):
        if not getattr(args, name) >= 0:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} is not accepted; it must be >= 0")
    if args.batch < 0:
        parser.error(f"--batch {args.batch} is not accepted; 0 (full batch) or a size >= 1")
    resolve_common(parser, args, ARMS)
    if args.steps is None:
        args.steps = 3000
    args.warmup = args.steps // 10 if args.warmup is None else args.warmup
    if not 0 <= args.warmup <= args.steps:
        parser.error(f"--warmup {args.warmup} is not accepted; it must be in [0, --steps={args.steps}]")
    args.late = int(args.late_at * args.steps)
    if args.diag_every % args.eval_every:
        parser.error(f"--diag-every {args.diag_every} must be a multiple of --eval-every {args.eval_every}")
    args.verbose = not args.quiet
    return args
