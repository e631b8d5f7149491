"""``plastic_rl.report`` on hand-made runs: every number equals one computed by hand."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import yaml
from scipy import stats

from plastic_rl import report

SWITCH = 100


def make_run(root, name, arm, seed, tasks: dict[int, list[float]], first_task=0, extra_rows=()):
    """A run folder: config + evaluations.csv with one evaluation every 50 steps, ``tasks[k]`` the returns on task k."""
    folder = root / name
    (folder / ".hydra").mkdir(parents=True)
    config = {"arm": arm, "seed": seed, "plasticity": {"preset": arm}, "total_timesteps": SWITCH * len(tasks),
              "env": {"kwargs": {"switch_every": SWITCH, "first_task": first_task}}}  # fmt: skip
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    rows, offset = [], 0
    for task, returns in tasks.items():
        for i, value in enumerate(returns):
            step = offset + 50 * (i + 1)
            rows.append({"step": step, "task": task, "trained_on": task, "mean_return": value, "std_return": 0, "episodes": 1})
        offset += SWITCH
    rows += list(extra_rows)
    with (folder / "evaluations.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "task", "trained_on", "mean_return", "std_return", "episodes"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


@pytest.fixture
def runs(tmp_path):
    # two tasks; "fresh" trains each task from scratch (one run per task), the others both in turn
    for seed in (0, 1):
        make_run(tmp_path, f"fresh_t0_s{seed}", "fresh", seed, {0: [10, 20]})
        make_run(tmp_path, f"fresh_t1_s{seed}", "fresh", seed, {1: [30, 40]}, first_task=1)
    make_run(tmp_path, "none_s0", "none", 0, {0: [10, 20], 1: [5, 15]},
             extra_rows=[{"step": 150, "task": 0, "trained_on": 1, "mean_return": 999, "std_return": 0, "episodes": 1}])  # fmt: skip
    make_run(tmp_path, "none_s1", "none", 1, {0: [12, 18], 1: [7, 13]})
    make_run(tmp_path, "elr_s0", "elr", 0, {0: [10, 30], 1: [30, 50]})
    make_run(tmp_path, "elr_s1", "elr", 1, {0: [14, 26], 1: [34, 46]})
    return tmp_path


def test_report_numbers_equal_hand_computed_ones(runs, tmp_path):
    out = tmp_path / "out"
    result = report.report([runs], out, by=["arm"], reference="fresh", baseline="none", reps=200, scalars=False, log=lambda *_: None)
    assert result["groups"] == ["elr", "fresh", "none"] and result["tasks"] == [0, 1]
    # per task, raw: final = last evaluation in the task, auc = mean of its evaluations (the 999 row is an
    # evaluation of an earlier task, eval_tasks=seen: not the current task's)
    assert result["per_task"]["final"]["none"][1] == (14.0, pytest.approx(np.std([15, 13], ddof=1)))
    assert result["per_task"]["auc"]["elr"][1] == (40.0, 0.0)
    # normalized by fresh's mean on the same task: fresh auc = 15 (task 0), 35 (task 1)
    none_auc = np.array([[15 / 15, 10 / 35], [15 / 15, 10 / 35]])
    elr_auc = np.array([[20 / 15, 40 / 35], [20 / 15, 40 / 35]])
    np.testing.assert_allclose(result["scores"]["auc"]["none"], none_auc)
    np.testing.assert_allclose(result["scores"]["auc"]["elr"], elr_auc)
    # IQM = 25% trimmed mean over all seeds x tasks (rliable's aggregate_iqm)
    assert result["iqm"]["auc"]["none"][0] == pytest.approx(stats.trim_mean(none_auc.ravel(), 0.25))
    assert result["iqm"]["auc"]["elr"][0] == pytest.approx(stats.trim_mean(elr_auc.ravel(), 0.25))
    low, high = result["iqm"]["auc"]["elr"][1:]
    assert low <= result["iqm"]["auc"]["elr"][0] <= high
    # elr beats none on every task and seed: P(improvement) = 1
    assert result["improvement"]["auc"]["elr"][0] == pytest.approx(1.0)
    # plasticity gap on the late half (task 1): fresh auc 35 minus the group's, per seed
    assert result["gap"]["auc"]["none"] == (pytest.approx(25.0), pytest.approx(0.0))
    assert result["gap"]["auc"]["elr"] == (pytest.approx(-5.0), pytest.approx(0.0))
    md = (out / "report.md").read_text()
    assert "| `elr` | 2 |" in md and "P(> none)" in md and "gap to fresh (late tasks, returns)" in md
    assert {p.name for p in result["plots"]} == {"iqm.png", "curves.png"}
    rows = list(csv.DictReader((out / "iqm.csv").open()))
    assert {r["group"] for r in rows} == {"elr", "none"}


def test_report_cli_and_bad_input(runs, tmp_path):
    out = subprocess.run([sys.executable, "-m", "plastic_rl.report", str(runs), "--by", "arm", "--out", str(tmp_path / "r"),
                          "--reps", "50", "--no-scalars"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "r" / "report.md").is_file()
    bad = subprocess.run([sys.executable, "-m", "plastic_rl.report", str(runs), "--by", "arm", "--reference", "nope",
                          "--no-scalars"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "reference group 'nope' is not among the groups ['elr', 'fresh', 'none']" in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "plastic_rl.report", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 2 and "no such directory" in missing.stderr


def test_cusum_alarms_against_switches():
    run = report.Run(report.Path("x"), {}, [])
    # alarms counted at steps 120 (a hit 20 after the switch at 100), 160 (a second alarm in the same window:
    # not a hit) and 260 (a false alarm: the switch at 200 has a 20-step window)
    run.scalars = {report.ALARMS: [(50, 0), (120, 1), (160, 2), (260, 3)]}
    stats_ = report.alarm_stats(run, switch_every=100, total=300, window=0.2)
    assert stats_ == {"switches": 2, "alarms": 3, "hits": 1, "false_alarms": 2, "mean_delay": 20.0}


def test_tasks_the_reference_never_scores_on_are_left_out_of_the_ratios(tmp_path):
    make_run(tmp_path, "fresh_t0", "fresh", 0, {0: [0, 0]})
    make_run(tmp_path, "fresh_t1", "fresh", 0, {1: [4, 6]}, first_task=1)
    make_run(tmp_path, "none", "none", 0, {0: [3, 3], 1: [5, 5]})
    result = report.report([tmp_path], tmp_path / "out", by=["arm"], reference="fresh", reps=20, scalars=False, log=lambda *_: None)
    assert result["tasks"] == [1] and result["dropped"]["auc"] == [0]
    np.testing.assert_allclose(result["scores"]["auc"]["none"], [[1.0]])
    assert "tasks [0]" in (tmp_path / "out" / "report.md").read_text()


def test_a_reference_that_never_scores_leaves_the_scores_raw(tmp_path):
    make_run(tmp_path, "fresh_t0", "fresh", 0, {0: [0, 0]})
    make_run(tmp_path, "none", "none", 0, {0: [3, 5]})
    result = report.report([tmp_path], tmp_path / "out", by=["arm"], reference="fresh", reps=20, scalars=False, log=lambda *_: None)
    np.testing.assert_allclose(result["scores"]["auc"]["none"], [[4.0]])  # raw AUC, not a ratio to 0
    assert "not normalized (raw returns)" in (tmp_path / "out" / "report.md").read_text()


def test_a_single_task_report_speaks_of_its_one_task(tmp_path):
    """A single-game suite (MinAtar Breakout): the gap is on the one task, not on "late tasks"."""
    for seed in (0, 1):
        make_run(tmp_path, f"none_s{seed}", "none", seed, {0: [10, 20 + seed]})
        make_run(tmp_path, f"elr_s{seed}", "elr", seed, {0: [12, 30 + seed]})
    result = report.report([tmp_path], tmp_path / "out", by=["arm"], reference="none", reps=20, scalars=False, log=lambda *_: None)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "gap to none (returns)" in md and "late tasks" not in md
    # none's mean AUC over seeds (15 + 15.5) / 2 minus elr's 21 and 21.5, per seed: -5.75 and -6.25
    assert result["gap"]["auc"]["elr"] == (pytest.approx(-6.0), pytest.approx(np.std([-5.75, -6.25], ddof=1)))


def test_confidence_intervals_are_repeatable():
    """rliable draws from numpy's global generator: the report seeds it, so the same runs give the same CIs."""
    rng = np.random.default_rng(0)
    scores = {"a": rng.random((5, 4)), "b": rng.random((5, 4))}
    state = np.random.get_state()
    first, second = report.interval_estimates(scores, 300), report.interval_estimates(scores, 300)
    assert first == second and first["a"][1] < first["a"][0] < first["a"][2]
    assert report.improvement(scores, "b", 300) == report.improvement(scores, "b", 300)
    assert np.array_equal(np.random.get_state()[1], state[1])  # the caller's random stream is left as it was
