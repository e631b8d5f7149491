"""Where a speed-table row's time goes: a profile of each arm, and what the plastic arms spend that SB3's does not.

    python -m plastic_rl.tools.bench_agents speed-profile [--rows dqn-default sac-default ...] [--rounds 2]
                                                          [--csv docs/data/speed_profile.csv] [--report-only]

The speed table (``tools/speed.py``) says how much slower a row is; this says where. Each arm of a row is
built and warmed up as the speed table builds it (``speed.warmed_models``), then trained ``--rounds`` rounds
of the row's ``round_steps`` under ``cProfile``, the arms taking turns. Each function's own time (cProfile's
``tottime``) is put in one bucket (a built-in op in its caller's, where the caller is an optimizer, a
normalization or this library):

- ``normalization``: the normalization ops (``layer_norm`` and friends), forward and their Python wrappers;
- ``optimizer``: ``torch/optim`` and the optimizer kernels (``_fused_adam_``, ``_foreach_*``);
- ``autograd``: the backward pass (``run_backward``) and autograd's Python;
- ``plastic_rl``: this library's own Python (ELR's hooks and projection, the loss tap, the controller, logging);
- ``torch ops``: every other torch op and ``torch/nn`` module code (the layers' forwards);
- ``sb3 and env``: the rest (SB3's rollout and ``train()`` code, the env, numpy, Python).

Reported per row and arm: milliseconds per 1,000 env steps in each bucket, and the functions whose time
differs most between the plastic arm and SB3's. cProfile charges a fixed cost to every Python call, so
Python-heavy buckets read larger than they run: use this for *where*, the speed table for *how much*.
CSV rows (``row,arm,kind,name,ms_per_1k``; ``kind`` is ``bucket``, ``function`` or ``total``) keep both.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import time
from pathlib import Path

from plastic_rl.tools import speed

FIELDS = ["row", "arm", "kind", "name", "ms_per_1k"]
BUCKETS = ("normalization", "optimizer", "autograd", "plastic_rl", "torch ops", "sb3 and env")
NORM_OPS = ("layer_norm", "group_norm", "rms_norm", "batch_norm")
TOP = 8  # functions kept per row: the largest differences from SB3's arm


def label(key: tuple[str, int, str]) -> str:
    """A readable name for a pstats key (file, line, function): ``torch/optim/adam.py:_single_tensor_adam``."""
    file, _, func = key
    if file == "~":  # a built-in: "{built-in method torch.layer_norm}", "{method 'mul_' of 'torch._C.TensorBase' objects}"
        return func
    for root in ("plastic_rl/", "stable_baselines3/", "sb3_contrib/", "torch/", "gymnasium/", "numpy/"):
        if root in file:
            return root + file.rsplit(root, 1)[1] + ":" + func
    return file.rsplit("/", 1)[-1] + ":" + func


def bucket(name: str) -> str:
    """The bucket of a ``label``."""
    if any(op in name for op in NORM_OPS):
        return "normalization"
    if name.startswith("torch/optim/") or "_fused_adam" in name or "_foreach_" in name:
        return "optimizer"
    if "run_backward" in name or name.startswith("torch/autograd/"):
        return "autograd"
    if name.startswith("plastic_rl/"):
        return "plastic_rl"
    if name.startswith("torch/") or "torch." in name or "'torch." in name:
        return "torch ops"
    return "sb3 and env"


def own_times(stats: pstats.Stats) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds of own time (``tottime``) per ``label``, and per bucket.

    A built-in op is charged to its caller's bucket where that caller is an optimizer, a normalization or this
    library (Adam's ``lerp_`` and ``sqrt`` are the optimizer's time, ELR's ``mul_`` is plastic_rl's), split
    caller by caller as cProfile recorded it; otherwise to its own bucket.
    """
    functions: dict[str, float] = {}
    buckets = dict.fromkeys(BUCKETS, 0.0)
    for key, (_, _, tottime, _, callers) in stats.stats.items():  # type: ignore[attr-defined]
        name = label(key)
        functions[name] = functions.get(name, 0.0) + tottime
        own = bucket(name)
        if key[0] != "~" or own not in ("torch ops", "sb3 and env") or not callers:
            buckets[own] += tottime
            continue
        charged = 0.0
        for caller, (_, _, caller_tottime, _) in callers.items():
            by = bucket(label(caller))
            if by in ("optimizer", "normalization", "plastic_rl"):
                buckets[by] += caller_tottime
                charged += caller_tottime
        buckets[own] += tottime - charged
    return functions, buckets


def profile_row(name: str, rounds: int, seed: int = 0, round_steps: int | None = None) -> list[dict]:
    """Warm every arm up as the speed table does, then ``rounds`` profiled rounds per arm: CSV dicts."""
    row = speed.ROWS[name] if round_steps is None else dataclasses.replace(speed.ROWS[name], round_steps=round_steps)
    models = speed.warmed_models(row, seed)
    profiles = {arm: cProfile.Profile() for arm in models}
    steps = dict.fromkeys(models, 0)
    names = list(models)
    for r in range(rounds):
        for arm in names[r % len(names) :] + names[: r % len(names)]:
            before = models[arm].num_timesteps
            profiles[arm].enable()
            models[arm].learn(row.round_steps, reset_num_timesteps=False)
            profiles[arm].disable()
            steps[arm] += models[arm].num_timesteps - before
    for model in models.values():
        model.get_env().close()
    times = {arm: own_times(pstats.Stats(profiles[arm])) for arm in names}
    per_1k = {arm: {f: 1e6 * t / steps[arm] for f, t in times[arm][0].items()} for arm in names}  # ms per 1,000 env steps
    out = []
    for arm in names:
        out.append({"row": name, "arm": arm, "kind": "total", "name": "all", "ms_per_1k": round(sum(per_1k[arm].values()), 4)})
        sums = {b: 1e6 * t / steps[arm] for b, t in times[arm][1].items()}
        out += [{"row": name, "arm": arm, "kind": "bucket", "name": b, "ms_per_1k": round(ms, 4)} for b, ms in sums.items()]
    diff = {f: per_1k["plastic"].get(f, 0.0) - per_1k["sb3"].get(f, 0.0) for f in set(per_1k["plastic"]) | set(per_1k["sb3"])}
    top = sorted(diff, key=lambda f: -abs(diff[f]))[:TOP]
    for arm in names:
        out += [{"row": name, "arm": arm, "kind": "function", "name": f, "ms_per_1k": round(per_1k[arm].get(f, 0.0), 4)} for f in top]
    return out


def read(path: Path) -> list[dict]:
    from plastic_rl.tools.bench_rows import read_typed

    return read_typed(path, {"ms_per_1k": float})


def report(rows: list[dict]) -> str:
    """Markdown: per row, each bucket's ms per 1,000 env steps in SB3's arm and the plastic and control arms' differences."""
    value = {(r["row"], r["arm"], r["kind"], r["name"]): r["ms_per_1k"] for r in rows}
    lines = [
        "| row | arm | " + " | ".join(BUCKETS) + " | total |",
        "|---|---|" + "---|" * (len(BUCKETS) + 1),
    ]
    notes = []
    for name in dict.fromkeys(r["row"] for r in rows):
        if (name, "sb3", "total", "all") not in value:
            continue
        base = {b: value.get((name, "sb3", "bucket", b), 0.0) for b in (*BUCKETS, "all")}
        base["all"] = value[(name, "sb3", "total", "all")]
        lines.append(f"| {name} | sb3 (ms / 1k steps) | " + " | ".join(f"{base[b]:.1f}" for b in BUCKETS) + f" | {base['all']:.1f} |")
        for arm in ("plastic", "control"):
            cells = [value.get((name, arm, "bucket", b), 0.0) - base[b] for b in BUCKETS]
            total = value.get((name, arm, "total", "all"), 0.0) - base["all"]
            lines.append(
                f"| {name} | {arm} - sb3 | " + " | ".join(f"{c:+.1f}" for c in cells) + f" | {total:+.1f} ({total / base['all']:+.1%}) |"
            )
        funcs = [r["name"] for r in rows if r["row"] == name and r["arm"] == "plastic" and r["kind"] == "function"]
        parts = [f"`{f}` {value[(name, 'plastic', 'function', f)] - value.get((name, 'sb3', 'function', f), 0.0):+.1f}" for f in funcs]
        notes.append(f"- {name}: " + ", ".join(parts))
    return "\n".join(lines) + "\n\nLargest differences, plastic - sb3 (ms per 1,000 env steps):\n\n" + "\n".join(notes) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m plastic_rl.tools.bench_agents speed-profile", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(speed.ROWS), choices=list(speed.ROWS), help="rows to profile (default: all)")
    parser.add_argument("--rounds", type=int, default=2, help="profiled rounds per arm")
    parser.add_argument(
        "--csv", default="docs/data/speed_profile.csv", help="per-bucket and per-function rows; a row already there is kept"
    )
    parser.add_argument("--report-only", action="store_true", help="profile nothing: print the report from the CSV")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds={args.rounds} must be >= 1")
    import torch

    from plastic_rl.tools.bench_rows import append_row

    torch.set_num_threads(1)
    path = Path(args.csv)
    if not args.report_only:
        done = {r["row"] for r in read(path)}
        for name in args.rows:
            if name in done or not speed.available(name):
                continue
            start = time.perf_counter()
            for r in profile_row(name, args.rounds):
                append_row(path, r, FIELDS)
            print(f"# {name}: profiled in {time.perf_counter() - start:.0f} s", flush=True)
    text = report(read(path))
    print(text)
    return read(path)
