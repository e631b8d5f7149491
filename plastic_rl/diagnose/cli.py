"""``python -m plastic_rl.diagnose``: the command line (arguments, start-up, outputs, one-line errors)."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from plastic_rl import checkpoints as ckpts
from plastic_rl.diagnose.measuring import diagnose
from plastic_rl.diagnose.writers import make_output_format


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m plastic_rl.diagnose",
        description=f"Plasticity diagnostics of SB3 checkpoints ({ckpts.SUPPORTED}). A folder is a time series of its "
        "checkpoints, ordered by training step.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="checkpoint zip or run folder (searched recursively)")
    p.add_argument(
        "--env",
        help="env id to collect observations in (default: the id the checkpoint records; 'module:Id' imports module first)",
    )
    p.add_argument(
        "--backend",
        choices=("envpool", "gymnasium", "auto"),
        help="what makes the env (default: the backend the checkpoint was trained on, as it records; SB3's zips record "
        "none and get gymnasium where it has the id, else envpool; auto: training's rule, envpool first)",
    )
    p.add_argument("--obs", metavar="FILE", help=".npy (or .npz per Dict key) of observations, instead of collecting")
    p.add_argument("--n-obs", type=int, default=2048, help="observations per batch (default 2048)")
    p.add_argument("--seed", type=int, default=0, help="env seed of the collection (default 0)")
    p.add_argument(
        "--obs-from",
        choices=("first", "last"),
        default="first",
        help="which checkpoint of a series collects the batch and gives critics their actions (default first)",
    )
    p.add_argument("--tau", type=float, default=0.025, help="dormant threshold (default 0.025)")
    p.add_argument("--delta", type=float, default=0.01, help="srank delta (default 0.01)")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    p.add_argument("--csv", metavar="FILE", help="write the rows as CSV")
    p.add_argument("--out", metavar="DIR", help="write PNG plots of each series (one per metric family)")
    p.add_argument("--tensorboard", metavar="DIR", help="write the metrics as TensorBoard scalars at their training steps")
    p.add_argument("--save-obs", metavar="FILE", help="save the observation batch (.npy; .npz for Dict spaces)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared machine more threads mostly contend; 0: torch's default)",
    )
    p.add_argument("--layers", action="store_true", default=None, help="print the per-layer table of every checkpoint")
    p.add_argument("-q", "--quiet", action="store_true", help="no tables on stdout")
    p.add_argument("--traceback", action="store_true", help="show the traceback of an error")
    return p


# torch versions whose ``_disable_dynamo`` wrapper was read and measured (2.13: 2.1 s of a 4.7 s CLI run
# saved). Outside them, or if the wrapper no longer caches under ``__dynamo_disable``, nothing is changed.
EAGER_OPTIMIZERS_TORCH = ((2, 1), (2, 13))


def _torch_version() -> tuple[int, int]:
    import torch

    major, minor = torch.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def _eager_optimizers() -> bool:
    """Let ``torch.optim.Optimizer``'s dynamo-guarded methods run without importing ``torch._dynamo`` (CLI only).

    SB3 builds an optimizer with every policy, and ``add_param_group`` & co. are wrapped by
    ``torch._disable_dynamo``, whose first call imports torch._dynamo (~2 s of the CLI's ~7 s here).
    The wrapper caches the disabled function on the wrapped one as ``__dynamo_disable``; caching the
    function itself is the same thing in eager mode, which is all this process runs (it compiles
    nothing). Only for the torch versions in ``EAGER_OPTIMIZERS_TORCH`` and only on wrappers that read
    that cache; otherwise torch imports dynamo as usual (slower start, same results). True if applied.
    """
    if "torch._dynamo" in sys.modules:
        return False
    low, high = EAGER_OPTIMIZERS_TORCH
    if not low <= _torch_version() <= high:
        return False
    from torch.optim import Optimizer

    applied = False
    for attr in vars(Optimizer).values():
        code = getattr(attr, "__code__", None)
        wrapped = getattr(attr, "__wrapped__", None)
        if (code is not None and wrapped is not None and code.co_qualname == "_disable_dynamo.<locals>.inner"
                and "__dynamo_disable" in code.co_consts):  # fmt: skip
            if getattr(wrapped, "__dynamo_disable", None) is None:
                setattr(wrapped, "__dynamo_disable", wrapped)
                applied = True
    return applied


def _cli_setup(threads: int) -> None:
    _eager_optimizers()
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input or file error, 1 unexpected error, 130 interrupted).

    :param argv: the arguments after the program name (see ``--help``); None: ``sys.argv[1:]``.
    """
    args = _parser().parse_args(argv)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", ckpts.UnreadableCheckpoint)
        warnings.showwarning = _one_line_warnings(warnings.showwarning)
        return _run(args, log)


def _one_line_warnings(show):
    """A ``showwarning`` that prints a skipped checkpoint as one ``warning:`` line on stderr (even with -q)."""

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ckpts.UnreadableCheckpoint):
            print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def _run(args: argparse.Namespace, log) -> int:
    try:
        if args.n_obs < 1:
            raise ValueError(f"--n-obs {args.n_obs}: must be at least 1")
        rows = diagnose(
            args.paths,
            env=args.env,
            backend=args.backend,
            obs=args.obs,
            n_obs=args.n_obs,
            seed=args.seed,
            tau=args.tau,
            delta=args.delta,
            obs_from=args.obs_from,
            save_obs=args.save_obs,
            log=log,
            _before_load=lambda: _cli_setup(args.threads),
        )
        if not args.quiet:
            make_output_format("table", layers=args.layers).write(rows)
        for fmt, target in (("json", args.json), ("csv", args.csv)):
            if target:
                make_output_format(fmt, target).write(rows)
        if args.out:
            if any(len({r["checkpoint"] for r in rows if r["series"] == s}) > 1 for s in {r["series"] for r in rows}):
                for path in make_output_format("plots", args.out).write(rows):
                    log(f"wrote {path}")
            else:
                log("no plots: --out needs a series (a folder, or several zips)")
        if args.tensorboard:
            for path in make_output_format("tensorboard", args.tensorboard).write(rows):
                log(f"wrote TensorBoard scalars to {path}")
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:  # FileNotFoundError is an OSError
        if args.traceback:
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except Exception as exc:
        if args.traceback:
            raise
        print(f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())} (rerun with --traceback)", file=sys.stderr)
        return 1
    return 0
