"""The warm-starting validator's command line: its options and the checks that reject bad values early.

Its own module because the options and their validation are long and independent of how a run
trains; ``python -m plastic_rl.tools.warm_start`` (which re-exports both functions) parses with them.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from plastic_rl.tools._validate import add_common, parse_lrs, positive_int, resolve_common
from plastic_rl.tools.warm_start_train import ARMS, SWEEP_ARMS, SWEEP_LRS


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
