"""Continual RL: does raising the effective learning rate keep agents learning? Arms x seeds, measured.

    python -m plastic_rl.tools.continual [--suite permuted-cartpole] [--seeds 0-4] [--arms all] [--out runs/continual]
    python -m plastic_rl.tools.continual --suite minatar-sequence --steps-per-task 200000 --jobs 8   # a bigger machine
    python -m plastic_rl.tools.continual --suite permuted-cartpole --launcher submitit_slurm \\
        --hydra hydra.launcher.partition=gpu hydra.launcher.timeout_min=240                            # a cluster

Every run is a ``plastic_rl.train`` run, launched arm by arm as a Hydra multirun over the seeds (Hydra's
joblib launcher locally, ``--launcher submitit_local|submitit_slurm|ray`` elsewhere: nothing home-made
schedules jobs). Runs use ``resume=auto``, so re-running the same command after an interruption
continues the killed runs from their checkpoints and skips the finished ones. The numbers come from
``plastic_rl.report`` (IQM with stratified-bootstrap CIs and probability of improvement, ``rliable``).

Suites (every budget is a flag):

- ``permuted-cartpole``: PPO (rl-zoo3's CartPole settings at a constant lr 1e-3), ``--tasks`` tasks
  of ``--steps-per-task`` env steps, each a new fixed permutation of the observation.
- ``minatar-sequence``: DQN on MinAtar games in turn (full action set, channels padded), replay
  ratio 1 (``--replay-ratio``), the paper's high-replay-ratio Atari setting at CPU size.
- ``minatar``: DQN on single MinAtar games (``--games``) at replay ratio 1: no task switch; the games
  are the "tasks" of the report and ``none`` is the reference.
- ``atari-sequence``: DQN on envpool Atari games in turn: a documented command for a GPU machine.

Arms (``--arms``): ``fresh`` (a new agent per task, trained on it alone: the plasticity reference; in a
DQN sequence it explores as the sequence's agents do at that task's position),
``none`` (SB3's agent, constant lr) and ``none-2x``/``-4x``/``-8x``/``-16x`` (2x to 16x that lr), ``nap`` and
``nap-2x``/``nap-4x``, ``elr`` (cyclic re-warm), ``elr-cusum`` (re-warm on a CUSUM alarm),
``elr-on-switch`` (re-warm at each announced switch), ``elr-decay`` and ``norm-rewarm`` (the default: decay
while a task holds, re-warm at each announced switch), ``norm-shrink`` (the default's first rule: its layers
shrunk back at each switch, never projected), ``norm-rewarm-lr`` (the default with the lr re-warmed at each
switch, x1 -> x2 over 1,000 optimizer steps and back over 9,000), ``redo`` (every 1000 optimizer steps),
``shrink-perturb`` and ``reset`` (the output heads) at each announced switch (single games: every
fifth of the run); in a DQN sequence any arm but ``fresh`` + ``-fb`` (``none-fb``): that arm with its
replay buffer emptied at each switch and ``learning_starts`` steps of waiting, as a new agent has. The re-warm arms' cycle is a fixed number of optimizer steps, 1/2.3 of a task's,
so cycles do not line up with the switches; ``elr-on-switch``, ``shrink-perturb`` and ``reset`` are
told where the switches are, the others are not.

Writes ``--out``/``runs/<arm>_seed<k>/`` (the training runs), ``--out``/``logs/`` (each multirun's
output) and ``--out``/``report/`` (``report.md``, ``scores.csv``, ``iqm.csv``, ``summary.md`` with the
claims below, PNG plots, and ``per_run.csv``: one row per run and task, ``suite,arm,seed,task,game,auc,final``,
also written to ``--rows-csv``, with the plasticity diagnostics at each switch in ``<rows>_switches.csv``).
``--from-csv ROWS`` runs nothing: the summary and score tables from such rows (and the switch tables, if
that file is beside them).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from plastic_rl.tools._validate import parse_seeds
from plastic_rl.tools.continual_suites import (
    ARMS,
    CONSTANT_LR_ARMS,
    ELR_ARMS,
    FRESH_BUFFER,
    INTERVENTION_ARMS,
    MINATAR_GAMES,
    Suite,
    arm_overrides,
    epsilons,
    fresh_exploration,
    is_arm,
    jobs,
    make_suite,
)

__all__ = ["ARMS", "CONSTANT_LR_ARMS", "ELR_ARMS", "INTERVENTION_ARMS", "LAUNCHERS", "MINATAR_GAMES", "Suite", "arm_overrides",
           "claims", "epsilons", "fresh_exploration", "from_rows", "gap_verdict", "gaps_by_position", "is_arm", "jobs", "main",
           "make_suite", "switches_csv", "FRESH_BUFFER"]  # fmt: skip
LAUNCHERS = ("joblib", "basic", "submitit_local", "submitit_slurm", "ray")


def launch(overrides: list[str], suite: Suite, args: argparse.Namespace, log: Path) -> int:
    """One Hydra multirun of ``plastic_rl.train``; its output goes to ``log``."""
    launcher = [f"hydra/launcher={args.launcher}"]
    if args.launcher == "joblib":
        launcher.append(f"hydra.launcher.n_jobs={args.jobs}")
    command = [sys.executable, "-m", "plastic_rl.train", "-m", *launcher, f"hydra.sweep.dir={Path(args.out).resolve() / 'runs'}",
               "hydra.sweep.subdir=${run_name}", "resume=auto", "progress_bar=false", f"torch_threads={args.threads}",
               *suite.overrides, *overrides, *args.hydra]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        return subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env).returncode


def gap_verdict(gap: float, spread: float, reference: str, seeds: int | None = None) -> str:
    """What a plasticity gap (reference minus arm, mean +- std over seeds) says: a positive gap is a loss
    of plasticity, a negative one an arm that learns better than the reference.

    :param seeds: the fewest seeds of the two groups; below ``report.MIN_SEEDS_VERDICT`` no verdict:
        ``verdict n/a (2 seeds)`` (None: not checked here)
    """
    from plastic_rl.report.stats import MIN_SEEDS_VERDICT, not_enough

    if seeds is not None and seeds < MIN_SEEDS_VERDICT or math.isnan(spread):
        return f"verdict {not_enough(seeds if seeds is not None else 1)}"
    if abs(gap) <= spread:
        return "within the seed spread"
    side = "below" if gap > 0 else "above"
    return f"{side} `{reference}` by more than the seed spread"


def gaps_by_position(result: dict[str, Any], arms: list[str], reference: str) -> list[str]:
    """A table of the plasticity gap on each task of a sequence: does an arm fall behind a fresh agent on
    the 2nd, 3rd, ... task? (``reference`` minus the arm on that task alone, AUC in returns, mean +- std
    over seeds, and the verdict of ``gap_verdict``). Empty without a reference or with one task."""
    from plastic_rl.report.stats import plasticity_gap
    from plastic_rl.report.tables import markdown_table, spread_cell

    table = result["tables"].get("auc", {})
    tasks = [t for t in result["tasks"] if isinstance(t, int)]
    if reference not in table or len(tasks) < 2:
        return []
    rows = []
    for arm in [a for a in arms if a in table and a != reference]:
        cells = []
        for task in tasks:
            gap = plasticity_gap({reference: table[reference], arm: table[arm]}, reference, [task]).get(arm)
            n = min(len({s for s, t in table[arm] if t == task}), len({s for s, t in table[reference] if t == task}))
            cells.append("–" if gap is None else f"{spread_cell(gap[0], gap[1], n)}; {gap_verdict(gap[0], gap[1], reference, n)}")
        rows.append([f"`{arm}`", *cells])
    if not rows:  # the reference alone: nothing to compare
        return []
    header = ["arm", *(f"task {t}" for t in tasks)]
    return [f"Plasticity gap per position in the sequence (`{reference}` minus the arm on task k alone, AUC in returns, "
            "mean +- std over seeds; task 0 is played first):", "",
            markdown_table(header, rows), ""]  # fmt: skip


def claims(result: dict[str, Any], arms: list[str], reference: str, reps: int) -> list[str]:
    """The benchmark's questions, answered from the report's numbers (module docstring of the issue).

    Every number says how many seeds it rests on; an interval needs ``MIN_SEEDS_INTERVAL`` seeds per
    group and a verdict ``MIN_SEEDS_VERDICT`` (``report.stats.SEED_RULE``), else it reads ``n/a (k seeds)``.
    """
    from plastic_rl.report.stats import SEED_RULE
    from plastic_rl.report.tables import estimate_cell, spread_cell

    lines = [SEED_RULE, ""]
    seeds = result["seeds"]["auc"]
    gaps = result["gap"].get("auc", {})
    if gaps:
        where = "on the late tasks" if len(result["tasks"]) > 1 else "on the one task"
        lines.append(f"Plasticity gap (`{reference}` minus the arm {where}, AUC in returns, mean +- std over n seeds):")
        for arm in [a for a in arms if a in gaps]:
            gap, spread = gaps[arm]
            n = min(seeds.get(arm, 0), seeds.get(reference, 0))
            lines.append(f"- `{arm}`: {spread_cell(gap, spread, seeds.get(arm, 0))}; {gap_verdict(gap, spread, reference, n)}")
        lines.append("")
    lines += gaps_by_position(result, arms, reference)
    scores = result["scores"]["auc"]
    iqm = result["iqm"]["auc"]
    label = "normalized-AUC IQM" if result["normalized"]["auc"] else "raw-AUC IQM"
    if not result["normalized"]["auc"]:
        lines += ["Nothing is normalized (no reference arm, or one that never scores): every AUC below is in raw returns.", ""]

    # the issue's target (against SB3's own agent at its best constant lr), then the matched control
    # (the same normalized, projected network at its best constant lr: what re-warming alone adds);
    # the fresh-buffer arms (-fb) against their own kind
    for suffix in ("", FRESH_BUFFER):
        elr = [a + suffix for a in ELR_ARMS if a + suffix in scores]
        for controls, what in (([a + suffix for a in CONSTANT_LR_ARMS if a + suffix in scores], "constant-lr `none`"),
                               ([a + suffix for a in ("nap", "nap-2x", "nap-4x") if a + suffix in scores],
                                "constant-lr `nap` (the same network)")):  # fmt: skip
            if controls and elr:
                lines += [best_against(scores, iqm, elr, controls, what, label, reps), ""]
    others = [a for base in (*ELR_ARMS, *INTERVENTION_ARMS) for a in (base, base + FRESH_BUFFER) if a in iqm]
    if others:
        lines += [f"ELR arms and the interventions side by side ({label} [95% CI]):", ""]
        lines += [
            f"- `{a}`: {estimate_cell(iqm[a][0], iqm[a][1], iqm[a][2], seeds[a], 4)}" for a in sorted(others, key=lambda a: -iqm[a][0])
        ]
        lines.append("")
    return lines


def best_against(scores: dict[str, Any], iqm: dict[str, Any], elr: list[str], controls: list[str], what: str, label: str, reps: int) -> str:
    """The best of the ``elr`` arms against the best of the ``controls`` (by IQM): the relative IQM, its
    bootstrap CI and the issue's verdict (>= +20% with the lower bound above 0), each only with the seeds for it."""
    from rliable import library as rly
    from rliable import metrics

    from plastic_rl import report
    from plastic_rl.report.stats import MIN_SEEDS_INTERVAL, MIN_SEEDS_VERDICT, not_enough

    def relative(x, y):
        return np.array([metrics.aggregate_iqm(x) / metrics.aggregate_iqm(y) - 1.0])

    best_control = max(controls, key=lambda a: iqm[a][0])
    best_elr = max(elr, key=lambda a: iqm[a][0])
    n = min(len(scores[best_elr]), len(scores[best_control]))
    d = float(relative(scores[best_elr], scores[best_control])[0])
    if n >= MIN_SEEDS_INTERVAL:
        with report.seeded_numpy(0):
            _, ci = rly.get_interval_estimates({"d": (scores[best_elr], scores[best_control])}, relative, reps=reps)
        low, high = float(ci["d"][0][0]), float(ci["d"][1][0])
        interval = f"95% CI {100 * low:+.1f}% to {100 * high:+.1f}%"
    else:
        interval = f"95% CI {not_enough(n)}"
    verdict = f"**{'yes' if d >= 0.2 and low > 0 else 'no'}**" if n >= MIN_SEEDS_VERDICT else not_enough(n)  # 3 > 2: low is set
    return (f"Best ELR arm `{best_elr}` against the best {what} arm `{best_control}`: {label} "
            f"{iqm[best_elr][0]:.3f} (n={len(scores[best_elr])}) vs {iqm[best_control][0]:.3f} (n={len(scores[best_control])}), "
            f"{100 * d:+.1f}% ({interval}); >= +20% with the lower bound above 0: {verdict}.")  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m plastic_rl.tools.continual", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--suite", default="permuted-cartpole", choices=["permuted-cartpole", "minatar-sequence", "minatar", "atari-sequence"]
    )
    parser.add_argument("--arms", default="all", help=f"comma-separated arms or 'all'; accepted: {', '.join(ARMS)}")
    parser.add_argument("--seeds", default="0-4", help="'0-4' or '0,1,2' (default 0-4)")
    parser.add_argument("--tasks", type=int, default=5, help="tasks in the sequence (default 5)")
    parser.add_argument("--steps-per-task", type=int, default=0, help="env steps per task (default: 30k cartpole, 100k minatar)")
    parser.add_argument("--games", default=MINATAR_GAMES, help="MinAtar (or Atari) games, comma-separated")
    parser.add_argument("--replay-ratio", type=float, default=1.0, help="DQN suites: gradient updates per env step (1 or 0.25)")
    parser.add_argument(
        "--eval-freq", type=int, default=0, help="env steps between evaluations (default: 5k cartpole, a tenth of a task minatar)"
    )
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (joblib launcher)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--launcher", default="joblib", choices=LAUNCHERS, help="Hydra launcher (submitit_slurm/ray: a cluster)")
    parser.add_argument("--hydra", nargs="*", default=[], help="extra overrides for every run (hydra.launcher.partition=...)")
    parser.add_argument("--out", default="runs/continual", help="output folder (default runs/continual)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap repetitions of the report")
    parser.add_argument("--report-only", action="store_true", help="only (re)write the report from the runs in --out")
    parser.add_argument(
        "--rows-csv",
        default=None,
        help="also write the per-run rows (suite,arm,seed,task,game,auc,final) here, e.g. docs/data/continual_<suite>.csv",
    )
    parser.add_argument("--from-csv", default=None, help="run nothing, read no run: the summary and score tables from these per-run rows")
    parser.add_argument("--include-incomplete", action="store_true",
                        help="report: use the tasks that killed runs completed (default: leave them out; listed either way)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError:
        parser.error(f"--seeds={args.seeds!r}: give '0-4' or '0,1,2'")
    arms = list(ARMS) if args.arms.strip() == "all" else [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if not is_arm(a)]
    if unknown:
        parser.error(f"--arms: {unknown} unknown; accepted: {', '.join(ARMS)}, and any of them but fresh + '-fb' (DQN sequences)")
    for key in ("tasks", "jobs", "threads", "eval_episodes", "reps"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')}={getattr(args, key)} must be >= 1")
    for key in ("steps_per_task", "eval_freq"):
        if getattr(args, key) < 0:
            parser.error(f"--{key.replace('_', '-')}={getattr(args, key)} must be >= 0 (0: the suite's default)")
    if args.replay_ratio <= 0 or args.replay_ratio > 1:
        parser.error(f"--replay-ratio={args.replay_ratio} must be in (0, 1]")
    suite = make_suite(args)
    if suite.exploration is None and any(a.endswith(FRESH_BUFFER) and a not in ARMS for a in arms):
        parser.error(f"--arms: the '-fb' arms (a fresh replay buffer at each switch) need a DQN sequence suite, not {suite.name}")
    if not suite.sequence:
        arms = [a for a in arms if a not in ("fresh", "elr-on-switch")]  # no switches: no reference, nothing to announce
    elif suite.tasks < 2:
        parser.error(f"--tasks={args.tasks}: a sequence needs at least 2 tasks")
    out = Path(args.out)
    started = time.monotonic()
    if args.from_csv is not None:
        return from_rows(args.from_csv, suite, arms, args.reps)
    if not args.report_only:
        from tqdm import tqdm

        failed = []
        with tqdm(total=len(arms), desc=f"{suite.name}: arms", unit="arm") as bar:
            for arm in arms:
                bar.set_postfix_str(arm)
                for overrides in jobs(suite, arm, seeds):
                    if launch(overrides, suite, args, out / "logs" / f"{arm}.log") != 0:
                        failed.append(arm)
                bar.update()
        if failed:
            print(f"error: the runs of {', '.join(failed)} failed; see {out / 'logs'}", file=sys.stderr)
            raise SystemExit(1)
    from plastic_rl import report

    task_key = None if suite.sequence else "env.id"
    reference = suite.reference if suite.reference in arms else None  # without it: raw returns
    result = report.report([out / "runs"], out / "report", by=["arm"], reference=reference,
                           baseline="none" if "none" in arms else None, reps=args.reps,
                           title=f"Continual RL: {suite.name}", task_key=task_key,
                           include_incomplete=args.include_incomplete)  # fmt: skip
    lines = [f"# Continual RL: {suite.name}", "",
             f"Command: `python -m plastic_rl.tools.continual {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
             f"Budget: {suite.tasks} tasks x {suite.steps_per_task:,} env steps, seeds {seeds}; wall time "
             f"{math.ceil(time.monotonic() - started)} s (this invocation).", ""]  # fmt: skip
    lines += claims(result, arms, reference or "(none)", args.reps)
    (out / "report" / "summary.md").write_text("\n".join(lines))
    from plastic_rl.report.rows import rows_of, write_rows
    from plastic_rl.report.switches import write_switch_rows

    rows = rows_of(result["tables"], suite.name, suite.game_of)
    for path in [out / "report" / "per_run.csv", *([args.rows_csv] if args.rows_csv else [])]:
        write_rows(path, rows)
        print(f"per-run rows: {path}")
    if args.rows_csv and result.get("switches"):
        write_switch_rows(switches_csv(args.rows_csv), result["switches"])
        print(f"diagnostics at each switch: {switches_csv(args.rows_csv)}")
    print("\n".join(lines))
    print(f"report: {out / 'report' / 'report.md'}")
    return result


def from_rows(path: str, suite: Suite, arms: list[str], reps: int) -> dict[str, Any]:
    """The summary and score tables of committed per-run rows, through the report's own statistics."""
    from plastic_rl import report
    from plastic_rl.report.rows import read_rows, tables_of
    from plastic_rl.report.switches import read_switch_rows, switch_section
    from plastic_rl.report.tables import score_sections

    rows = [r for r in read_rows(path) if r["arm"] in arms]
    other = sorted({r["suite"] for r in rows} - {suite.name})
    if other or not rows:
        raise SystemExit(f"error: {path} holds rows of {other or 'no arm asked for'}, not of --suite {suite.name} ({', '.join(arms)})")
    present = sorted({r["arm"] for r in rows})
    reference = suite.reference if suite.reference in present else None
    baseline = "none" if "none" in present else None
    result = report.summarize(tables_of(rows), reference, baseline, reps)
    runs = len({(r["arm"], r["seed"]) for r in rows})
    lines = [f"# Continual RL: {suite.name}, from {path}", "", f"{len(rows)} rows of {runs} runs (arm x seed), arms {present}.", ""]
    lines += claims(result, present, reference or "(none)", reps)
    lines += score_sections(result, reference, baseline)
    if switches_csv(path).is_file():
        result["switches"] = [r for r in read_switch_rows(switches_csv(path)) if r["arm"] in arms]
        lines += switch_section(result["switches"], [a for a in arms if a in present])
    print("\n".join(lines))
    return result


def switches_csv(rows_csv: str | Path) -> Path:
    """Where the diagnostics at each switch (``report.switches``) go beside per-run rows: ``<rows>_switches.csv``."""
    path = Path(rows_csv)
    return path.with_name(f"{path.stem}_switches{path.suffix}")


if __name__ == "__main__":
    main()
