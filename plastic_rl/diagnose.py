"""``python -m plastic_rl.diagnose PATH [PATH...]``: plasticity diagnostics of saved SB3 checkpoints.

A PATH is a checkpoint zip or a run folder. Each folder is one time series (every ``*.zip`` under it,
ordered by the ``num_timesteps`` recorded in the zip, not by file name); the zip arguments together
are one more series. Every network of every checkpoint is measured layer by layer with
``plastic_rl.diagnostics.measure`` on one fixed observation batch per series; between neighbours of a
series come Delta_C, Delta_A (``FeatureSnapshot`` / ``compare``) and the parameter-change ELR.
See docs/diagnose.md for the options, the observation batch and the exact definitions.

The Python API is :func:`diagnose`; :func:`main` is the CLI. Heavy imports (torch, SB3, matplotlib,
TensorBoard) happen inside functions, so bad input is reported before any of them load.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from plastic_rl import checkpoints as ckpts
from plastic_rl.checkpoints import Checkpoint, fail

__all__ = ["diagnose", "main", "write_json", "write_csv", "write_plots", "write_tensorboard", "print_tables"]

ID_KEYS = ("series", "checkpoint", "step", "algorithm", "network", "n_obs", "observations")
# Aggregate metrics in display order, grouped into the families of the plots.
FAMILIES: dict[str, tuple[str, ...]] = {
    "activity": ("dormant_ratio", "dead_ratio", "fau", "saturated_ratio"),
    "rank": ("srank", "effective_rank", "stable_rank"),
    "norms": ("weight_norm", "feature_norm", "grad_norm"),
    "change": ("delta_c", "delta_a", "param_elr"),
}
METRICS: tuple[str, ...] = tuple(m for family in FAMILIES.values() for m in family)


# --------------------------------------------------------------------------------------------
# Inputs: series and observations
# --------------------------------------------------------------------------------------------


def _series(paths: Iterable[str | os.PathLike], log=None) -> list[tuple[str, list[Checkpoint]]]:
    """[(label, checkpoints ordered by step)]: one per folder, one for all zip arguments together.

    A checkpoint with the same step and the same parameters as one before it (a run's
    ``final_model.zip`` next to its last ``checkpoints/step_N.zip``) is left out, with a note.
    """
    groups: list[tuple[str, list[Path]]] = []
    zips: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise fail(path, "no such file or folder", FileNotFoundError)
        if path.is_dir():
            groups.append((str(path), ckpts.find_checkpoints(path)))
        else:
            if not zips:
                groups.append(("", zips))  # placeholder: the zips' series sits where the first zip was given
            zips.append(path)
    if not groups:
        raise ValueError("no checkpoint given: pass checkpoint zips or run folders")
    out = []
    for label, members in groups:
        if members is zips:
            label = str(zips[0]) if len(zips) == 1 else (os.path.commonpath([str(z.parent) for z in zips]) or ".")
        found = []
        for member in members:
            key = member.resolve()
            if key not in seen:
                seen.add(key)
                found.append(ckpts.read_checkpoint(member))
        kept: dict[tuple[int, int], Checkpoint] = {}
        for ckpt in sorted(found, key=lambda c: (c.step, str(c.path))):
            twin = kept.setdefault((ckpt.step, ckpt.params_crc), ckpt)
            if twin is not ckpt:
                _note(log, f"{ckpt.path}: left out, same step and parameters as {twin.path}")
        if kept:
            out.append((label, list(kept.values())))
    return out


def _reference(series: list[Checkpoint], obs_from: str) -> Checkpoint:
    return series[0] if obs_from == "first" else series[-1]


def _plan_obs(series: list[Checkpoint], env: str | None, obs: Any, n_obs: int, obs_from: str):
    """Cheap checks before anything loads: the env exists, an observation file fits. -> (env_id, batch)."""
    ref = _reference(series, obs_from)
    if obs is None:
        env_id = env or ref.env_id
        if env_id is None:
            raise fail(ref.path, f"this {ref.algo.name} checkpoint records no env id (vanilla SB3 checkpoints never do): "
                                 "pass --env ID or --obs FILE.npy")
        ckpts.check_env(env_id, ref.path)
        return env_id, None
    space = ref.observation_space()
    if space is None:  # checked once the model is loaded
        return None, None
    if isinstance(obs, (str, os.PathLike)):
        return None, ckpts.load_obs(obs, space, n_obs)
    return None, ckpts.fit_obs(obs, space, "obs", n_obs)


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def _weights(module) -> dict[str, Any]:
    """(W, b) of every Linear/Conv as one float64 CPU vector, by layer name."""
    import torch

    from plastic_rl import layers

    return {name: torch.cat([p.detach().reshape(-1).double().cpu() for p in layers.layer_params(layer)])
            for name, layer in layers.iter_weight_layers(module)}


def _param_elr(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """||theta_k - theta_{k-1}|| / ||theta_{k-1}|| per layer ((W, b) jointly) and over all layers jointly."""
    out: dict[str, float] = {}
    num = den = 0.0
    for name, w in after.items():
        prev = before.get(name)
        if prev is None or prev.shape != w.shape:
            continue
        d2, p2 = float((w - prev).pow(2).sum()), float(prev.pow(2).sum())
        out[f"param_elr/{name}"] = _ratio(d2, p2)
        num, den = num + d2, den + p2
    if out:
        out["param_elr"] = _ratio(num, den)
    return out


def _ratio(d2: float, p2: float) -> float:
    if p2 == 0.0:
        return 0.0 if d2 == 0.0 else math.inf
    return math.sqrt(d2 / p2)


def _note(log, message: str) -> None:
    if log is not None:
        log(message)


def diagnose(path_or_paths: str | os.PathLike | Sequence[str | os.PathLike], env: str | None = None, obs: Any = None,
             n_obs: int = 2048, seed: int = 0, *, tau: float = 0.025, delta: float = 0.01, obs_from: str = "first",
             n_envs: int = ckpts.N_ENVS, save_obs: str | os.PathLike | None = None, log=None,
             _before_load=None) -> list[dict[str, Any]]:
    """Diagnose checkpoints; one row per checkpoint x network, ordered by series, step, network.

    ``path_or_paths``: checkpoint zips and/or run folders (see the module docstring for series).
    ``env``: gymnasium id to collect observations in (default: the id the checkpoint records).
    ``obs``: a ``.npy``/``.npz`` path or an array (dict of arrays for Dict spaces) instead of collecting.
    ``n_obs``: batch size (the first ``n_obs`` rows of ``obs``). ``seed``: env seed of the collection.
    ``obs_from``: ``"first"`` or ``"last"`` checkpoint of a series collects its batch and supplies the
    critics' actions. ``save_obs``: write the (last series') batch to this ``.npy``/``.npz``.
    ``log``: callable taking one-line notes (the CLI passes a stderr printer).

    A row holds ``series``, ``checkpoint``, ``step``, ``algorithm``, ``network``, ``n_obs``,
    ``observations`` (where the batch came from), every key of ``diagnostics.measure`` (aggregates and
    ``<metric>/<layer>``), and from the second checkpoint of a series on ``delta_c``, ``delta_a``
    (``compare``) and ``param_elr`` (aggregate and per layer). Errors: ``FileNotFoundError`` or
    ``ValueError`` with the message ``"<file>: <problem>"``.
    """
    if obs_from not in ("first", "last"):
        raise ValueError(f"obs_from={obs_from!r}: use 'first' or 'last'")
    if not (isinstance(n_obs, int) and n_obs >= 1):
        raise ValueError(f"n_obs={n_obs!r} must be an int >= 1")
    paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else list(path_or_paths)
    all_series = _series(paths, log)
    plans = [_plan_obs(series, env, obs, n_obs, obs_from) for _, series in all_series]
    if _before_load is not None:  # the CLI's import of SB3 (everything above is cheap and checks the input)
        _before_load()
    from plastic_rl import diagnostics

    rows: list[dict[str, Any]] = []
    for (label, series), (env_id, batch) in zip(all_series, plans):
        ref = _reference(series, obs_from)
        ref_model = ckpts.load(ref)
        if batch is None and obs is None:
            batch = ckpts.collect_obs(ref_model, env_id, n_obs, seed, ref.path, n_envs)
            source = f"{env_id} seed {seed} by {ref.path.name}"
        elif batch is None:
            batch = (ckpts.load_obs(obs, ref_model.observation_space, n_obs) if isinstance(obs, (str, os.PathLike))
                     else ckpts.fit_obs(obs, ref_model.observation_space, "obs", n_obs))
        if obs is not None:
            source = str(obs) if isinstance(obs, (str, os.PathLike)) else "array"
        if save_obs is not None:
            _save_batch(save_obs, batch)
        obs_t = ckpts.as_tensor(batch)
        count = ckpts.n_rows(batch)
        _note(log, f"{label}: {len(series)} checkpoint(s), {count} observations from {source}")
        actions = ckpts.reference_actions(ref_model, ref.algo, obs_t) if ref.algo.needs_actions else None
        previous: dict[str, tuple[Any, Any]] = {}  # network -> (snapshot, weights) of the previous checkpoint
        for ckpt in series:
            model = ref_model if ckpt is ref else ckpts.load(ckpt)
            ckpts.fit_obs(batch, model.observation_space, ckpt.path, n_obs)  # same batch fits every member
            if ckpt.algo.needs_actions and actions is None:
                actions = ckpts.reference_actions(model, ckpt.algo, obs_t)
            inputs = {"observations": obs_t, "actions": actions} if ckpt.algo.needs_actions else obs_t
            measured = 0
            for name, module, forward in ckpts.networks(model, ckpt.algo):
                row: dict[str, Any] = {"series": label, "checkpoint": str(ckpt.path), "step": ckpt.step,
                                       "algorithm": ckpt.algo.name, "network": name, "n_obs": count, "observations": source}
                try:
                    row.update(diagnostics.measure(module, inputs, tau=tau, delta=delta, forward=forward))
                except ValueError as exc:  # e.g. a linear policy: no activation to diagnose
                    _note(log, f"{ckpt.path}: network {name} not diagnosed ({exc})")
                    problem = exc
                    continue
                measured += 1
                if len(series) > 1:
                    snapshot = diagnostics.FeatureSnapshot(module, inputs, forward=forward)
                    weights = _weights(module)
                    if name in previous:
                        row.update(_changes(previous[name], snapshot, weights, ckpt, name, log))
                    previous[name] = (snapshot, weights)
                rows.append(row)
            if not measured:
                raise fail(ckpt.path, f"no network of this {ckpt.algo.name} checkpoint can be diagnosed ({problem})")
    return rows


def _changes(prev: tuple[Any, Any], snapshot, weights, ckpt: Checkpoint, name: str, log) -> dict[str, float]:
    from plastic_rl import diagnostics

    out: dict[str, float] = {}
    try:
        out.update(diagnostics.compare(prev[0], snapshot))
    except ValueError as exc:  # a different architecture in the same series: no Delta for this pair
        _note(log, f"{ckpt.path}: no delta_c/delta_a for {name} ({exc})")
    out.update(_param_elr(prev[1], weights))
    return out


def _save_batch(path: str | os.PathLike, batch: Any) -> None:
    import numpy as np

    if isinstance(batch, dict):
        np.savez(path, **batch)
    else:
        np.save(path, batch)


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


def _columns(rows: list[dict]) -> list[str]:
    """ID keys, aggregates in display order, then per-layer keys in order of appearance."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    layered = [k for k in keys if "/" in k]
    return ([k for k in ID_KEYS if k in keys] + [m for m in METRICS if m in keys]
            + [k for k in keys if k not in ID_KEYS and k not in METRICS and k not in layered] + layered)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_json(rows: list[dict], path: str | os.PathLike) -> None:
    """A JSON array of the rows; non-finite numbers (an infinite Delta_C) are written as null."""
    with open(path, "w") as f:
        json.dump([{k: _finite(v) for k, v in row.items()} for row in rows], f, indent=1, allow_nan=False)


def write_csv(rows: list[dict], path: str | os.PathLike) -> None:
    """One line per row, one column per key of any row (empty where a metric does not apply)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_columns(rows), restval="")
        writer.writeheader()
        writer.writerows(rows)


def _line_label(row: dict, many_series: bool) -> str:
    return f"{row['series']} · {row['network']}" if many_series else row["network"]


def write_plots(rows: list[dict], out: str | os.PathLike) -> list[Path]:
    """``<out>/<family>.png`` for every family with data: one panel per metric, one line per network."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    many = len({r["series"] for r in rows}) > 1
    lines: dict[str, list[dict]] = {}
    for row in rows:
        lines.setdefault(_line_label(row, many), []).append(row)
    written = []
    for family, metrics in FAMILIES.items():
        present = [m for m in metrics if any(_finite(r.get(m)) is not None for r in rows)]
        if not present:
            continue
        fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.4), squeeze=False)
        for ax, metric in zip(axes[0], present):
            for label, members in lines.items():
                pts = [(r["step"], r[metric]) for r in members if _finite(r.get(metric)) is not None]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=label)
            ax.set_title(metric)
            ax.set_xlabel("training step")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize="small")
        fig.suptitle(f"plasticity diagnostics: {family}")
        fig.tight_layout()
        path = out / f"{family}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _tag_dir(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "series"


def write_tensorboard(rows: list[dict], logdir: str | os.PathLike) -> list[Path]:
    """Scalars ``diagnose/<network>/<metric>[/<layer>]`` at each checkpoint's training step.

    One series goes to ``logdir`` itself; several go to one subfolder each (named after the series).
    """
    from torch.utils.tensorboard import SummaryWriter

    logdir = Path(logdir)
    by_series: dict[str, list[dict]] = {}
    for row in rows:
        by_series.setdefault(row["series"], []).append(row)
    dirs = []
    for label, members in by_series.items():
        target = logdir if len(by_series) == 1 else logdir / _tag_dir(label)
        writer = SummaryWriter(log_dir=str(target))
        try:
            for row in members:
                for key, value in row.items():
                    if key not in ID_KEYS and isinstance(value, (int, float)) and math.isfinite(value):
                        writer.add_scalar(f"diagnose/{row['network']}/{key}", value, global_step=row["step"])
        finally:
            writer.close()
        dirs.append(target)
    return dirs


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e6):
        return str(int(value))
    return f"{value:.4g}"


SHORT = {"dormant_ratio": "dormant", "dead_ratio": "dead", "saturated_ratio": "saturated", "effective_rank": "eff_rank",
         "weight_norm": "w_norm", "feature_norm": "feat_norm"}


def _console(file=None):
    from rich.console import Console

    console = Console(file=file or sys.stdout)
    return console if console.is_terminal else Console(file=file or sys.stdout, width=240)


def _name(row: dict) -> str:
    path, series = Path(row["checkpoint"]), Path(row["series"])
    try:
        return str(path.relative_to(series)) if series.is_dir() else path.name
    except ValueError:
        return path.name


def print_tables(rows: list[dict], layers: bool | None = None, file=None) -> None:
    """A summary table per series (aggregates per checkpoint x network) and, for a single checkpoint
    or when ``layers`` is true, a per-layer table of each network. ``–``: the metric does not apply
    (see plastic_rl.diagnostics) or, for delta_c/delta_a/param_elr, there is no previous checkpoint."""
    from rich.table import Table

    console = _console(file)
    metrics = [m for m in METRICS if any(m in r for r in rows)]
    for label in dict.fromkeys(r["series"] for r in rows):
        members = [r for r in rows if r["series"] == label]
        table = Table(title=f"{label}  ({members[0]['n_obs']} observations: {members[0]['observations']})",
                      title_justify="left")
        table.add_column("checkpoint", no_wrap=True)
        table.add_column("step", justify="right")
        table.add_column("network", no_wrap=True)
        for m in metrics:
            table.add_column(SHORT.get(m, m), justify="right")
        for r in members:
            table.add_row(_name(r), str(r["step"]), r["network"], *(_fmt(r.get(m)) for m in metrics))
        console.print(table)
        show_layers = layers if layers is not None else len({r["checkpoint"] for r in members}) == 1
        if show_layers:
            for r in members:
                _layer_table(console, r)


def _layer_table(console, row: dict) -> None:
    from rich.table import Table

    per_layer: dict[str, dict[str, Any]] = {}
    for key, value in row.items():
        metric, sep, layer = key.partition("/")
        if sep and metric in METRICS:
            per_layer.setdefault(layer, {})[metric] = value
    metrics = [m for m in METRICS if any(m in v for v in per_layer.values())]
    table = Table(title=f"{_name(row)} (step {row['step']}) · {row['network']}: per layer", title_justify="left")
    table.add_column("layer", no_wrap=True)
    for m in metrics:
        table.add_column(SHORT.get(m, m), justify="right")
    for layer, values in per_layer.items():
        table.add_row(layer, *(_fmt(values.get(m)) for m in metrics))
    console.print(table)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m plastic_rl.diagnose",
        description=f"Plasticity diagnostics of SB3 checkpoints ({ckpts.SUPPORTED}). A folder is a time series of its "
                    "checkpoints, ordered by training step.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="checkpoint zip or run folder (searched recursively)")
    p.add_argument("--env", help="env id to collect observations in: gymnasium's, else envpool's (default: the id the "
                                 "checkpoint records; 'module:Id' imports module first)")
    p.add_argument("--obs", metavar="FILE", help=".npy (or .npz per Dict key) of observations, instead of collecting")
    p.add_argument("--n-obs", type=int, default=2048, help="observations per batch (default 2048)")
    p.add_argument("--seed", type=int, default=0, help="env seed of the collection (default 0)")
    p.add_argument("--obs-from", choices=("first", "last"), default="first",
                   help="which checkpoint of a series collects the batch and gives critics their actions (default first)")
    p.add_argument("--tau", type=float, default=0.025, help="dormant threshold (default 0.025)")
    p.add_argument("--delta", type=float, default=0.01, help="srank delta (default 0.01)")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    p.add_argument("--csv", metavar="FILE", help="write the rows as CSV")
    p.add_argument("--out", metavar="DIR", help="write PNG plots of each series (one per metric family)")
    p.add_argument("--tensorboard", metavar="DIR", help="write the metrics as TensorBoard scalars at their training steps")
    p.add_argument("--save-obs", metavar="FILE", help="save the observation batch (.npy; .npz for Dict spaces)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared machine more threads mostly contend; 0: torch's default)")
    p.add_argument("--layers", action="store_true", default=None, help="print the per-layer table of every checkpoint")
    p.add_argument("-q", "--quiet", action="store_true", help="no tables on stdout")
    p.add_argument("--traceback", action="store_true", help="show the traceback of an error")
    return p


def _import_sb3_without_tensorboard() -> None:
    """Import SB3 with ``torch.utils.tensorboard`` hidden (CLI only: this process trains nothing).

    SB3's logger imports TensorBoard's writer eagerly (~0.6 s, half of SB3's import) and falls back to
    None when it is missing; ``--tensorboard`` imports the writer itself afterwards.
    """
    if "stable_baselines3" in sys.modules or "torch.utils.tensorboard" in sys.modules:
        return
    sys.modules["torch.utils.tensorboard"] = None  # type: ignore[assignment]
    try:
        import stable_baselines3  # noqa: F401
    finally:
        if sys.modules.get("torch.utils.tensorboard", 0) is None:
            del sys.modules["torch.utils.tensorboard"]


def _eager_optimizers() -> None:
    """Let ``torch.optim.Optimizer``'s dynamo-guarded methods run without importing ``torch._dynamo`` (CLI only).

    SB3 builds an optimizer with every policy, and ``add_param_group`` & co. are wrapped by
    ``torch._disable_dynamo``, whose first call imports torch._dynamo (~3 s of the CLI's ~6 s).
    The wrapper caches the disabled function on the wrapped one; caching the function itself is the
    same thing in eager mode, which is all this process runs (it compiles nothing).
    """
    if "torch._dynamo" in sys.modules:
        return
    from torch.optim import Optimizer

    for attr in vars(Optimizer).values():
        code = getattr(attr, "__code__", None)
        wrapped = getattr(attr, "__wrapped__", None)
        if code is not None and wrapped is not None and code.co_qualname == "_disable_dynamo.<locals>.inner":
            if getattr(wrapped, "__dynamo_disable", None) is None:
                setattr(wrapped, "__dynamo_disable", wrapped)


def _cli_setup(threads: int) -> None:
    _import_sb3_without_tensorboard()
    _eager_optimizers()
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    try:
        if args.n_obs < 1:
            raise ValueError(f"--n-obs {args.n_obs}: must be at least 1")
        rows = diagnose(args.paths, env=args.env, obs=args.obs, n_obs=args.n_obs, seed=args.seed, tau=args.tau,
                        delta=args.delta, obs_from=args.obs_from, save_obs=args.save_obs, log=log,
                        _before_load=lambda: _cli_setup(args.threads))
        if not args.quiet:
            print_tables(rows, layers=args.layers)
        if args.json:
            write_json(rows, args.json)
        if args.csv:
            write_csv(rows, args.csv)
        if args.out:
            if any(len({r["checkpoint"] for r in rows if r["series"] == s}) > 1 for s in {r["series"] for r in rows}):
                for path in write_plots(rows, args.out):
                    log(f"wrote {path}")
            else:
                log("no plots: --out needs a series (a folder, or several zips)")
        if args.tensorboard:
            for path in write_tensorboard(rows, args.tensorboard):
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
        print(f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())} (rerun with --traceback)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
