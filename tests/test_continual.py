"""The continual-RL benchmark end to end with tiny budgets, and sweeps through Hydra's submitit launcher."""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from plastic_rl import report
from plastic_rl.agents import PlasticDQN
from plastic_rl.tools import continual

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
TINY = ["--seeds", "0", "--eval-episodes", "1", "--jobs", "2", "--reps", "50"]


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_permuted_cartpole_end_to_end_and_resumable(tmp_path):
    out = tmp_path / "pc"
    args = ["--tasks", "2", "--steps-per-task", "512", "--eval-freq", "256", "--arms", "fresh,none,nap,elr", "--out", str(out), *TINY]
    result = continual.main(args)
    runs = sorted(p.name for p in (out / "runs").iterdir() if p.is_dir())
    assert runs == ["elr_seed0", "fresh_task0_seed0", "fresh_task1_seed0", "nap_seed0", "none_seed0"]
    # the fresh runs trained one task each, from scratch; the others both tasks in turn
    assert {r["trained_on"] for r in rows(out / "runs" / "fresh_task1_seed0" / "evaluations.csv")} == {"1"}
    # evaluations at 256, 512 (the switch step: still task 0's last), 768, 1024
    assert [int(r["trained_on"]) for r in rows(out / "runs" / "elr_seed0" / "evaluations.csv")] == [0, 0, 1, 1]
    assert result["tasks"] == [0, 1] and set(result["iqm"]["auc"]) == {"none", "nap", "elr"}
    summary = (out / "report" / "summary.md").read_text()
    assert "Plasticity gap" in summary and "Best ELR arm `elr` against the best constant-lr `none` arm `none`" in summary
    assert "the best constant-lr `nap` (the same network) arm `nap`" in summary
    # run again (launched in-process this time): every run is complete, nothing is trained again
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("final_model.zip")}
    continual.main([*args, "--launcher", "basic"])
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("final_model.zip")} == before
    assert "is complete" in (out / "logs" / "elr.log").read_text()


@pytest.mark.parametrize("suite, extra", [
    ("minatar-sequence", ["--games", "Breakout,SpaceInvaders", "--tasks", "2", "--arms", "fresh,none,reset"]),
    ("minatar", ["--games", "Breakout,Freeway", "--arms", "none,redo"]),
])  # fmt: skip
def test_minatar_suites_end_to_end(tmp_path, suite, extra):
    out = tmp_path / suite
    hydra = ["--hydra", "agent.kwargs.learning_starts=100", "agent.kwargs.buffer_size=1000", "diagnostics_freq=50"]
    result = continual.main(["--suite", suite, "--steps-per-task", "300", "--eval-freq", "150", "--out", str(out), *extra, *TINY,
                             "--launcher", "basic", *hydra])  # fmt: skip
    assert (out / "report" / "report.md").is_file() and result["iqm"]["auc"]
    model = PlasticDQN.load(next((out / "runs").glob("none_*seed0")) / "final_model.zip")
    assert model.observation_space.shape[1:] == (10, 10) and model.env_id.startswith("plastic_rl/MinAtar-")
    if suite == "minatar":
        assert result["tasks"] == ["Breakout", "Freeway"]  # the games are the tasks
    else:
        reset = PlasticDQN.load(out / "runs" / "reset_seed0" / "final_model.zip")
        # at each switch the sequence announced: 300, and 600 (the last step wraps around to the first game)
        assert reset.plasticity.interventions == 2
        # the fresh agent of the first game explores as the sequence does there: it is SB3's agent on that game, exactly
        fresh = PlasticDQN.load(out / "runs" / "fresh_task0_seed0" / "final_model.zip")
        at_switch = PlasticDQN.load(next((out / "runs" / "none_seed0" / "checkpoints").glob("*300.zip")))
        assert fresh.exploration_rate == pytest.approx(at_switch.exploration_rate) and 0.1 < fresh.exploration_rate < 1
        assert all(torch.equal(a, b) for a, b in zip(fresh.policy.state_dict().values(), at_switch.policy.state_dict().values()))


def test_atari_sequence_composes_and_runs_a_few_steps(tmp_path):
    out = tmp_path / "atari"
    hydra = [
        "--hydra",
        "agent.kwargs.learning_starts=64",
        "agent.kwargs.buffer_size=500",
        "n_envs=2",
        "+env.eval_kwargs.max_episode_steps=100",
    ]  # short evaluation games
    result = continual.main(["--suite", "atari-sequence", "--games", "Pong,Breakout", "--tasks", "2", "--steps-per-task", "128",
                             "--eval-freq", "128", "--arms", "none", "--launcher", "basic", "--out", str(out), *TINY, *hydra])  # fmt: skip
    assert result["tasks"] == [0, 1]


def test_constant_lr_arms_multiply_the_suites_lr():
    suite = continual.Suite("s", [], lr=1e-4, tasks=1, steps_per_task=100, optimizer_steps_per_task=100, sequence=False)
    for arm, factor in (("none", 1), ("none-2x", 2), ("none-4x", 4), ("none-8x", 8), ("none-16x", 16), ("nap", 1), ("nap-4x", 4)):
        plasticity, lr = continual.arm_overrides(arm, suite)
        assert plasticity == f"plasticity={arm.split('-')[0]}" and lr == f"agent.kwargs.learning_rate={1e-4 * factor:g}"
    assert "none-8x" in continual.CONSTANT_LR_ARMS and "none-8x" in continual.ARMS


@pytest.mark.parametrize("steps, tasks", [(40_000, 3), (100, 5), (30_000, 2)])
def test_a_fresh_agent_explores_as_the_sequence_does_at_its_position(steps, tasks):
    """The plasticity reference differs from the sequence's agents in its network's history only: task
    k's fresh agent has, at each of its steps, the epsilon the sequence has at step k * steps + t."""
    from stable_baselines3.common.utils import LinearSchedule

    args = argparse.Namespace(suite="minatar-sequence", steps_per_task=steps, replay_ratio=0.25, eval_freq=None,
                                        eval_episodes=1, tasks=tasks, games=continual.MINATAR_GAMES, hydra=[])  # fmt: skip
    suite = continual.make_suite(args)
    total = tasks * steps
    fraction = float(next(o for o in suite.overrides if o.startswith("agent.kwargs.exploration_fraction=")).split("=")[1])
    sequence = LinearSchedule(1.0, 0.1, fraction)  # the hparams' epsilon 1 -> 0.1, over the sequence's progress
    multiruns = continual.jobs(suite, "fresh", [0, 1])
    assert len(multiruns) == tasks
    for k, overrides in enumerate(multiruns):
        assert f"+env.kwargs.first_task={k}" in overrides and f"total_timesteps={steps}" in overrides
        kwargs = {**{"exploration_fraction": fraction}, **{o.split("=")[0].rsplit(".", 1)[1]: float(o.split("=")[1])
                                                          for o in overrides if o.startswith("agent.kwargs.exploration_")}}  # fmt: skip
        fresh = LinearSchedule(kwargs["exploration_initial_eps"], kwargs["exploration_final_eps"], kwargs["exploration_fraction"])
        for t in np.linspace(0, steps, 41):
            assert fresh(1 - t / steps) == pytest.approx(sequence(1 - (k * steps + t) / total), abs=1e-4), (k, t)
    # the hparams are read, and --hydra overrides of them are seen
    args.hydra = ["agent.kwargs.exploration_final_eps=0.05"]
    assert continual.make_suite(args).exploration[1] == 0.05  # type: ignore[index]
    # suites without a sequence keep one multirun, with the suite's own exploration
    game = continual.Suite("g", [], lr=1e-4, tasks=2, steps_per_task=100, optimizer_steps_per_task=100)
    assert len(continual.jobs(game, "fresh", [0])) == 1


def test_a_fresh_buffer_arm_is_its_arm_with_the_buffer_emptied_at_each_switch(capsys):
    args = argparse.Namespace(suite="minatar-sequence", steps_per_task=100, replay_ratio=1.0, eval_freq=None, eval_episodes=1,
                              tasks=2, games=continual.MINATAR_GAMES, hydra=[])  # fmt: skip
    suite = continual.make_suite(args)
    for arm in ("none", "norm-rewarm", "none-8x", "reset"):
        assert continual.arm_overrides(f"{arm}-fb", suite) == [*continual.arm_overrides(arm, suite), "++env.fresh_buffer_on_switch=true"]
    assert continual.jobs(suite, "none-fb", [0])[0][-1] == "run_name=none-fb_seed${seed}"
    assert not continual.is_arm("fresh-fb") and not continual.is_arm("bogus-fb") and continual.is_arm("nap-2x-fb")
    with pytest.raises(ValueError, match="needs a DQN sequence suite"):
        continual.arm_overrides("none-fb", continual.Suite("p", [], lr=1e-3, tasks=2, steps_per_task=100, optimizer_steps_per_task=10))
    with pytest.raises(SystemExit):
        continual.main(["--arms", "none-fb", "--report-only", "--out", "unused"])
    assert (
        "the '-fb' arms (a fresh replay buffer at each switch) need a DQN sequence suite, not permuted-cartpole" in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        continual.main(["--arms", "fresh-fb", "--report-only", "--out", "unused"])
    assert "['fresh-fb'] unknown" in capsys.readouterr().err


def test_the_elr_decay_arm_is_the_rule_rewarmed_at_each_announced_switch():
    sequence = continual.Suite("s", [], lr=1e-3, tasks=2, steps_per_task=100, optimizer_steps_per_task=100, sequence=True)
    game = continual.Suite("g", [], lr=1e-4, tasks=1, steps_per_task=100, optimizer_steps_per_task=100, sequence=False)
    assert continual.arm_overrides("elr-decay", sequence) == [
        "plasticity=elr-decay", "agent.kwargs.learning_rate=0.001", "env.rewarm_on_switch=true"]  # fmt: skip
    assert continual.arm_overrides("elr-decay", game) == ["plasticity=elr-decay", "agent.kwargs.learning_rate=0.0001"]
    assert "elr-decay" in continual.ELR_ARMS and "elr-decay" in continual.ARMS
    assert continual.arm_overrides("norm-rewarm", sequence) == [
        "plasticity=norm-rewarm", "agent.kwargs.learning_rate=0.001", "env.rewarm_on_switch=true"]  # fmt: skip
    assert "norm-rewarm" in continual.ELR_ARMS
    assert continual.arm_overrides("norm-shrink", sequence) == [
        "plasticity=norm-rewarm", "plasticity.project=on-rewarm", "agent.kwargs.learning_rate=0.001", "env.rewarm_on_switch=true"]  # fmt: skip
    assert continual.arm_overrides("norm-rewarm-lr", sequence) == [
        "plasticity=norm-rewarm", "plasticity.schedule=on-demand", "agent.kwargs.learning_rate=0.001", "env.rewarm_on_switch=true"]  # fmt: skip


def test_gap_verdicts_read_the_sign():
    assert continual.gap_verdict(63.0, 58.1, "fresh") == "below `fresh` by more than the seed spread"
    assert continual.gap_verdict(-1.2, 0.3, "none") == "above `none` by more than the seed spread"
    assert continual.gap_verdict(8.6, 104.4, "fresh") == continual.gap_verdict(-0.2, 0.3, "none") == "within the seed spread"


def test_bad_arguments_are_one_line(capsys):
    for args, words in ((["--arms", "nope"], "--arms: ['nope'] unknown"), (["--tasks", "1"], "a sequence needs at least 2 tasks"),
                        (["--replay-ratio", "2"], "--replay-ratio=2.0 must be in (0, 1]")):  # fmt: skip
        with pytest.raises(SystemExit) as info:
            continual.main(args)
        assert info.value.code == 2 and words in capsys.readouterr().err


def test_a_sweep_through_submitit_local_and_its_report(tmp_path):
    """Hydra's submitit launcher (the code path of submitit_slurm), local executor: real subprocess jobs."""
    sweep = tmp_path / "sweep"
    out = subprocess.run(
        [sys.executable, "-m", "plastic_rl.train", "-m", "hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep}",
         "hydra.sweep.subdir=${run_name}", "seed=0,1", "total_timesteps=512", "eval_freq=256", "eval_episodes=1",
         "checkpoint_freq=0", "progress_bar=false", "hydra.launcher.timeout_min=10"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.name for p in sweep.glob("*_seed*")) == ["ppo_CartPole_norm-rewarm_seed0", "ppo_CartPole_norm-rewarm_seed1"]
    assert list(sweep.glob(".submitit/*/*_result.pkl")) or list(sweep.rglob("*_result.pkl"))  # submitit ran the jobs
    result = report.report([sweep], tmp_path / "report", by=["plasticity.preset"], reps=50, scalars=False, log=lambda *_: None)
    assert result["groups"] == ["norm-rewarm"] and result["scores"]["final"]["norm-rewarm"].shape == (2, 1)


# -- issue 22: the summary says what it computed and needs seeds for its verdicts --------------------
def claims_for(tmp_path, seeds, fresh=False):
    from test_report import make_run

    root = tmp_path / f"runs{len(seeds)}{fresh}"
    for seed in seeds:
        make_run(root, f"none_s{seed}", "none", seed, {0: [10 + seed, 20], 1: [5, 15 + seed]})
        make_run(root, f"elr_s{seed}", "elr", seed, {0: [100 + seed, 300], 1: [300, 500 + seed]})
        if fresh:
            make_run(root, f"fresh_t0_s{seed}", "fresh", seed, {0: [10, 20 + seed]})
            make_run(root, f"fresh_t1_s{seed}", "fresh", seed, {1: [30, 40 + seed]}, first_task=1)
    result = report.report([root], root / "report", by=["arm"], reference="fresh" if fresh else None, baseline="none", reps=50,
                           scalars=False, log=lambda *_: None)  # fmt: skip
    return "\n".join(continual.claims(result, ["fresh", "none", "elr"], "fresh" if fresh else "(none)", 50))


def test_claims_say_raw_auc_when_nothing_normalized_it(tmp_path):
    """22.1: without a fresh arm the IQM is of raw AUC, and the summary says so."""
    text = claims_for(tmp_path, [0, 1, 2])
    assert "raw-AUC IQM 300.500 (n=3) vs 13.000 (n=3)" in text and "normalized-AUC" not in text
    assert "Nothing is normalized" in text
    assert "normalized-AUC IQM" in claims_for(tmp_path, [0, 1, 2], fresh=True)


def test_claims_give_the_plasticity_gap_at_each_position_of_the_sequence(tmp_path):
    """Issue 21: fresh minus the arm on each task alone. Known answers: fresh's AUC on task 0 is 15 + s/2 and
    none's 15 + s/2 (gap 0.5 - s/2 per seed: 0 +- 0.5); on task 1 fresh 35 + s/2, none 10 + s/2 (25 +- 0.5)."""
    text = claims_for(tmp_path, [0, 1, 2], fresh=True)
    assert "| arm | task 0 | task 1 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| `none` |"))
    assert row == ("| `none` | 0.0 +- 0.5 (n=3); within the seed spread | "
                   "25.0 +- 0.5 (n=3); below `fresh` by more than the seed spread |")  # fmt: skip
    assert "| `fresh` |" not in text and "Plasticity gap per position" not in claims_for(tmp_path, [0, 1, 2])
    assert "25.0 +- n/a (1 seed); verdict n/a (1 seed)" in claims_for(tmp_path, [0], fresh=True)
    result = {"tasks": [0, 1], "tables": {"auc": {"fresh": {(0, 0): 1.0, (0, 1): 2.0}}}}
    assert continual.gaps_by_position(result, ["fresh"], "fresh") == []  # the reference alone: no empty table
    from plastic_rl.report.tables import score_sections

    alone = report.summarize({**result["tables"], "final": result["tables"]["auc"]}, "fresh", None, 20)
    text = "\n".join(score_sections(alone, "fresh", None))
    assert "No group but the reference `fresh`: nothing to normalize." in text and "| `fresh` | 1.0 +- n/a (1 seed) |" in text


def test_claims_compare_the_fresh_buffer_arms_among_themselves(tmp_path):
    """The -fb arms get their own "best ELR arm against the best constant lr", never mixed with the others."""
    from test_report import make_run

    root = tmp_path / "runs"
    for seed in (0, 1, 2):
        for arm, base in (("none", 10), ("elr", 100), ("none-fb", 20), ("norm-rewarm-fb", 30)):
            make_run(root, f"{arm}_s{seed}", arm, seed, {0: [base + seed, base], 1: [base, base + seed]})
    result = report.report([root], root / "report", by=["arm"], baseline="none", reps=50, scalars=False, log=lambda *_: None)
    text = "\n".join(continual.claims(result, ["none", "elr", "none-fb", "norm-rewarm-fb"], "(none)", 50))
    assert "Best ELR arm `elr` against the best constant-lr `none` arm `none`: raw-AUC IQM 100.500 (n=3) vs 10.500 (n=3)" in text
    assert "Best ELR arm `norm-rewarm-fb` against the best constant-lr `none` arm `none-fb`: raw-AUC IQM 30.500 (n=3) vs 20.500" in text
    assert "- `norm-rewarm-fb`: 30.5 [" in text


def test_claims_need_two_seeds_for_an_interval_and_three_for_a_verdict(tmp_path):
    """22.2: one seed: no CI and no verdict; two: a CI but no verdict; three: both."""
    one = claims_for(tmp_path, [0], fresh=True)
    assert "95% CI n/a (1 seed)); >= +20% with the lower bound above 0: n/a (1 seed)." in one and "**yes**" not in one
    assert "- `none`: 25.0 +- n/a (1 seed); verdict n/a (1 seed)" in one and "seed spread)" not in one
    assert "- `elr`: 12.38 [n/a (1 seed)]" in one and report.SEED_RULE in one
    two = claims_for(tmp_path, [0, 1], fresh=True)
    assert "(95% CI +" in two and "lower bound above 0: n/a (2 seeds)." in two and "verdict n/a (2 seeds)" in two
    three = claims_for(tmp_path, [0, 1, 2], fresh=True)
    assert "lower bound above 0: **yes**." in three and "(n=3)" in three and "n/a" not in three.replace(report.SEED_RULE, "")
    assert continual.gap_verdict(63.0, 58.1, "fresh", seeds=2) == "verdict n/a (2 seeds)"
    assert continual.gap_verdict(63.0, 58.1, "fresh", seeds=3) == "below `fresh` by more than the seed spread"


def test_report_only_on_a_killed_sweep_names_the_killed_runs(tmp_path, capsys):
    """22.3b through the tool: an arm killed mid-sweep is listed on stdout and in report.md, the others keep both tasks."""
    from test_report import make_run

    for seed in (0, 1):
        make_run(tmp_path / "runs", f"none_seed{seed}", "none", seed, {0: [10, 20], 1: [5, 15]})
    make_run(tmp_path / "runs", "elr_seed0", "elr", 0, {0: [10, 30], 1: [40]}, total=200)
    result = continual.main(["--report-only", "--arms", "none,elr", "--tasks", "2", "--out", str(tmp_path), *TINY])
    stdout = capsys.readouterr().out
    assert f"incomplete run {tmp_path / 'runs' / 'elr_seed0'}" in stdout and result["tasks"] == [0, 1]
    assert "## Incomplete runs (1)" in (tmp_path / "report" / "report.md").read_text()


# -- issue 20/22: per-run rows, committed, give the report's numbers back without the run folders ----------
def sweep_of(tmp_path, seeds=(0, 1, 2)):
    from test_report import make_run

    root = tmp_path / "runs"
    for seed in seeds:
        make_run(root, f"none_seed{seed}", "none", seed, {0: [10 + seed, 20], 1: [5, 15 + seed]})
        make_run(root, f"elr_seed{seed}", "elr", seed, {0: [100 + seed, 300], 1: [300, 500 + seed]})
        make_run(root, f"fresh_task0_seed{seed}", "fresh", seed, {0: [10, 20 + seed]})
        make_run(root, f"fresh_task1_seed{seed}", "fresh", seed, {1: [30, 40 + seed]}, first_task=1)
    return root


def test_per_run_rows_round_trip_and_give_the_same_numbers(tmp_path):
    from plastic_rl.report.rows import FIELDS, read_rows, rows_of, tables_of, write_rows

    root = sweep_of(tmp_path)
    result = report.report([root], tmp_path / "r", by=["arm"], reference="fresh", baseline="none", reps=200, scalars=False,
                           log=lambda *_: None)  # fmt: skip
    rows = rows_of(result["tables"], "permuted-cartpole", lambda task: "CartPole-v1")
    assert len(rows) == 3 * (2 + 2 + 2)  # 3 seeds x (none, elr: 2 tasks each; fresh: one run per task)
    first = {k: rows[0][k] for k in FIELDS}
    assert first == {"suite": "permuted-cartpole", "arm": "elr", "seed": 0, "task": 0, "game": "CartPole-v1", "auc": 200.0, "final": 300.0}
    path = tmp_path / "data" / "continual_permuted_cartpole.csv"
    write_rows(path, rows)
    assert read_rows(path) == rows and not list(path.parent.glob(".*tmp"))
    again = report.summarize(tables_of(read_rows(path)), "fresh", "none", 200)
    for metric in ("auc", "final"):
        assert again["iqm"][metric] == result["iqm"][metric]
        assert again["improvement"][metric] == result["improvement"][metric]
        assert again["gap"][metric] == result["gap"][metric]


def test_from_csv_writes_the_summary_from_rows_alone(tmp_path, capsys):
    root = sweep_of(tmp_path)
    out = root.parent
    continual.main(["--report-only", "--arms", "fresh,none,elr", "--tasks", "2", "--out", str(out), "--rows-csv",
                    str(tmp_path / "rows.csv"), *TINY])  # fmt: skip
    from_runs = (out / "report" / "summary.md").read_text()
    assert (out / "report" / "per_run.csv").read_text() == (tmp_path / "rows.csv").read_text()
    capsys.readouterr()
    result = continual.main(["--from-csv", str(tmp_path / "rows.csv"), "--arms", "fresh,none,elr", "--tasks", "2", *TINY])
    text = capsys.readouterr().out
    best = next(line for line in from_runs.splitlines() if line.startswith("Best ELR arm"))
    assert best in text  # the same claim, the same numbers, from the rows
    assert "## Area under the curve (normalized by `fresh` on the same task)" in text and result["tasks"] == [0, 1]
    with pytest.raises(SystemExit, match="not of --suite minatar-sequence"):
        continual.main(["--from-csv", str(tmp_path / "rows.csv"), "--suite", "minatar-sequence", "--arms", "fresh,none,elr", *TINY])


def test_the_diagnostics_at_each_switch_travel_beside_the_rows(tmp_path, capsys):
    """Issue 21: the ELR (dormant ratio, srank) before each switch is committed next to the per-run rows,
    and --from-csv prints its table from that file alone."""
    from torch.utils.tensorboard import SummaryWriter

    root = sweep_of(tmp_path)
    for seed in (0, 1, 2):
        with SummaryWriter(str(root / f"none_seed{seed}" / "tb" / "PPO_1")) as writer:
            for step in (50, 150, 200):
                writer.add_scalar("plasticity/elr", 0.001 * (seed + 1) * (1 + step // 100), step)
    continual.main(["--report-only", "--arms", "fresh,none,elr", "--tasks", "2", "--out", str(root.parent), "--rows-csv",
                    str(tmp_path / "rows.csv"), *TINY])  # fmt: skip
    assert continual.switches_csv(tmp_path / "rows.csv") == tmp_path / "rows_switches.csv"
    assert (tmp_path / "rows_switches.csv").read_text() == (root.parent / "report" / "switches.csv").read_text()
    capsys.readouterr()
    result = continual.main(["--from-csv", str(tmp_path / "rows.csv"), "--arms", "fresh,none,elr", "--tasks", "2", *TINY])
    text = capsys.readouterr().out
    # before the switch at 100: 0.001 (seed + 1); at the end (200): 0.003 (seed + 1)
    assert "| arm | step 100 | step 200 |" in text and "| `none` | 0.002 +- 0.001 (n=3) | 0.006 +- 0.003 (n=3) |" in text
    assert {r["arm"] for r in result["switches"]} == {"none"}
