"""``plastic_rl.report`` on hand-made runs: every number equals one computed by hand."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from plastic_rl import report
from plastic_rl.report import plots as report_plots

SWITCH = 100


def make_run(root, name, arm, seed, tasks: dict[int, list[float]], first_task=0, extra_rows=(), total=None):
    """A run folder: config + evaluations.csv with one evaluation every 50 steps, ``tasks[k]`` the returns on task k;
    ``total``: its total_timesteps (default: every task's end; more: a run killed early)."""
    folder = root / name
    (folder / ".hydra").mkdir(parents=True)
    config = {"arm": arm, "seed": seed, "plasticity": {"preset": arm}, "total_timesteps": total or SWITCH * len(tasks),
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
    run = report.Run(Path("x"), {}, [])
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


def quiet(*_):
    pass


# -- issue 22: reports that cannot mislead ------------------------------------------------------------
def test_scores_without_a_reference_are_labelled_raw(tmp_path):
    """22.1: no reference, nothing normalized: every label says raw."""
    for seed in (0, 1):
        make_run(tmp_path, f"none_s{seed}", "none", seed, {0: [10, 20], 1: [5, 15]})
        make_run(tmp_path, f"elr_s{seed}", "elr", seed, {0: [10, 30], 1: [30, 50]})
    result = report.report([tmp_path], tmp_path / "out", by=["arm"], reps=20, scalars=False, log=quiet)
    md = (tmp_path / "out" / "report.md").read_text()
    assert result["normalized"] == {"auc": False, "final": False}
    assert "IQM raw auc [95% CI]" in md and "(raw returns, not normalized)" in md and "IQM normalized" not in md
    assert {r["normalized"] for r in csv.DictReader((tmp_path / "out" / "iqm.csv").open())} == {"False"}


def test_a_reference_that_never_scores_is_not_called_normalized(tmp_path):
    make_run(tmp_path, "fresh_t0", "fresh", 0, {0: [0, 0]})
    make_run(tmp_path, "none", "none", 0, {0: [3, 5]})
    report.report([tmp_path], tmp_path / "out", by=["arm"], reference="fresh", reps=20, scalars=False, log=quiet)
    assert [r["normalized"] for r in csv.DictReader((tmp_path / "out" / "iqm.csv").open())] == ["False", "False"]  # auc, final


def test_intervals_need_two_seeds_and_every_cell_says_n(tmp_path):
    """22.2: one seed gives no CI, no P(improvement) and no spread (n/a (1 seed)), never a zero-width interval."""
    make_run(tmp_path, "none_s0", "none", 0, {0: [10, 20], 1: [5, 15]})
    make_run(tmp_path, "elr_s0", "elr", 0, {0: [10, 30], 1: [30, 50]})
    make_run(tmp_path, "fresh_t0", "fresh", 0, {0: [10, 20]})
    make_run(tmp_path, "fresh_t1", "fresh", 0, {1: [30, 40]}, first_task=1)
    result = report.report([tmp_path], tmp_path / "out", by=["arm"], reference="fresh", baseline="none", reps=50, scalars=False,
                           log=quiet)  # fmt: skip
    point, low, high = result["iqm"]["auc"]["elr"]
    assert point == pytest.approx(np.mean([20 / 15, 40 / 35])) and np.isnan(low) and np.isnan(high)
    assert all(np.isnan(result["improvement"]["auc"]["elr"])) and np.isnan(result["gap"]["auc"]["elr"][1])
    md = (tmp_path / "out" / "report.md").read_text()
    assert report.SEED_RULE in md and report.MIN_SEEDS_INTERVAL == 2 and report.MIN_SEEDS_VERDICT == 3
    assert "| `elr` | 1 | 1.24 [n/a (1 seed)] | n/a (1 seed) | -5.0 +- n/a (1 seed) |" in md
    assert "| `none` | 15.0 +- n/a (1 seed) | 10.0 +- n/a (1 seed) |" in md  # per task, raw
    assert "[1, 1]" not in md and "+- 0.0" not in md
    # two seeds: intervals, each with its n
    make_run(tmp_path, "none_s1", "none", 1, {0: [12, 18], 1: [7, 13]})
    make_run(tmp_path, "elr_s1", "elr", 1, {0: [14, 26], 1: [34, 46]})
    make_run(tmp_path, "fresh_t0_s1", "fresh", 1, {0: [10, 20]})
    make_run(tmp_path, "fresh_t1_s1", "fresh", 1, {1: [30, 40]}, first_task=1)
    report.report([tmp_path], tmp_path / "out", by=["arm"], reference="fresh", baseline="none", reps=50, scalars=False, log=quiet)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| `elr` | 2 | 1.24 [1.24, 1.24] (n=2) | 1 [1, 1] (n=2 vs 2) | -5.0 +- 0.0 (n=2) |" in md
    assert "n/a" not in md.split("## Area")[1]


def test_a_run_killed_mid_task_is_named_and_left_out(tmp_path):
    """22.3a: a run killed in task 1 (its last evaluation mid-task) is listed; by default none of it is scored,
    with --include-incomplete only its complete task 0."""
    for seed in (0, 1):
        make_run(tmp_path, f"none_s{seed}", "none", seed, {0: [10, 20], 1: [5, 15]})
    make_run(tmp_path, "elr_s0", "elr", 0, {0: [10, 30], 1: [30, 50]})
    make_run(tmp_path, "elr_s1", "elr", 1, {0: [14, 26], 1: [999]}, total=2 * SWITCH)  # killed at step 150 of 200
    logged = []
    result = report.report([tmp_path], tmp_path / "out", by=["arm"], reps=20, scalars=False, log=logged.append)
    (entry,) = result["incomplete"]
    assert entry["path"].endswith("elr_s1") and entry["reached"] == 150 and entry["partial_tasks"] == [1] and not entry["included"]
    assert any("elr_s1" in line and "reached step 150 of 200" in line for line in logged)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Incomplete runs (1)" in md and "elr_s1" in md and "3 runs used" in md
    assert result["per_task"]["final"]["elr"] == {
        0: (30.0, pytest.approx(np.nan, nan_ok=True)),
        1: (50.0, pytest.approx(np.nan, nan_ok=True)),
    }
    result = report.report([tmp_path], tmp_path / "out", by=["arm"], reps=20, scalars=False, log=quiet, include_incomplete=True)
    assert result["per_task_seeds"]["auc"]["elr"] == {0: 2, 1: 1}  # its task 0 counts, its half of task 1 never
    assert 999 not in [v for g in result["per_task"]["final"].values() for v, _ in g.values()]
    assert result["tasks"] == [0, 1] and result["incomplete"][0]["included"]


def test_a_sweep_killed_during_one_arm_keeps_the_other_arms_tasks(tmp_path):
    """22.3b: the arm that was killed is listed and left out; the tables do not silently shrink to task 0."""
    for seed in (0, 1):
        make_run(tmp_path, f"none_s{seed}", "none", seed, {0: [10, 20], 1: [5, 15]})
        make_run(tmp_path, f"elr_s{seed}", "elr", seed, {0: [10, 30], 1: [40]}, total=2 * SWITCH)
    result = report.report([tmp_path], tmp_path / "out", by=["arm"], reps=20, scalars=False, log=quiet)
    assert result["tasks"] == [0, 1] and result["groups"] == ["none"] and len(result["incomplete"]) == 2
    result = report.report([tmp_path], tmp_path / "out", by=["arm"], reps=20, scalars=False, log=quiet, include_incomplete=True)
    assert result["tasks"] == [0] and result["left_out_tasks"]["auc"] == {1: ["elr"]}
    assert "Task 1 is left out of every table: no complete run of `elr` on it." in (tmp_path / "out" / "report.md").read_text()


def test_a_run_two_processes_wrote_is_refused_by_name(runs, tmp_path):
    """Its evaluations interleave (steps 50, 100, 75, ...): the report names it instead of averaging two runs as one."""
    path = runs / "elr_s1" / "evaluations.csv"
    rows = path.read_text().splitlines()
    path.write_text("\n".join([*rows, rows[1].replace("50,", "75,", 1)]) + "\n")  # a second writer, behind the first
    out = subprocess.run([sys.executable, "-m", "plastic_rl.report", str(runs), "--by", "arm", "--out", str(tmp_path / "r"),
                          "--reps", "50", "--no-scalars"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"error: {path}: an evaluation at step 75 follows one at step {SWITCH + 100:,}: two processes" in out.stderr


def test_a_run_killed_before_its_first_evaluation_is_named(tmp_path, capsys):
    """22.3c: a folder of two complete runs and one without evaluations.csv: the third is named, on stdout too."""
    make_run(tmp_path, "a", "none", 0, {0: [10, 20]})
    make_run(tmp_path, "b", "none", 1, {0: [12, 22]})
    (tmp_path / "c" / ".hydra").mkdir(parents=True)
    (tmp_path / "c" / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"arm": "none", "seed": 2, "total_timesteps": 100}))
    report.main([str(tmp_path), "--by", "arm", "--out", str(tmp_path / "out"), "--reps", "20", "--no-scalars"])
    stdout = capsys.readouterr().out
    assert f"incomplete run {tmp_path / 'c'}" in stdout and "reached step 0 of 100" in stdout
    md = (tmp_path / "out" / "report.md").read_text()
    assert "2 runs used" in md and f"`{tmp_path / 'c'}`" in md


def test_how_far_a_run_got_reads_final_model_and_checkpoints(tmp_path):
    """A run whose evaluations end before total_timesteps but that wrote final_model.zip is complete; a
    checkpoint past a switch shows the task before it complete."""
    done = make_run(tmp_path, "done", "none", 0, {0: [10, 20]}, total=120)
    (done / "final_model.zip").write_bytes(b"")
    run = report.load_run(done)
    assert run.complete and run.reached == 120 and run.segments[0].complete
    killed = make_run(tmp_path, "killed", "none", 0, {0: [10, 20]}, total=300)
    assert not report.load_run(killed).complete and report.load_run(killed).segments[0].complete  # step 100: task 0's end
    with (killed / "evaluations.csv").open("a") as f:
        f.write("180,1,1,7,0,1\n")
    run = report.load_run(killed)
    assert [(s.task, s.end, s.complete) for s in run.segments] == [(0, 100, True), (1, 200, False)]
    (killed / "checkpoints").mkdir()
    (killed / "checkpoints" / "step_0000000256.zip").write_bytes(b"")
    assert report.load_run(killed).segments[1].complete and report.load_run(killed).reached == 256


@pytest.mark.parametrize("group, family", [
    *[(a, "SB3 (constant lr)") for a in ("none", "none-2x", "none-4x", "none-8x", "fresh")],
    *[(a, "normalized (NaP)") for a in ("nap", "nap-2x", "nap-4x")],
    *[(a, "ELR") for a in ("elr", "elr-cusum", "elr-on-switch", "elr-decay", "elr-anything", "norm-rewarm", "norm-shrink")],
    *[(a, "interventions") for a in ("redo", "shrink-perturb", "reset")],
    *[(a, "fresh replay buffer at each switch (-fb)") for a in ("none-fb", "norm-rewarm-fb", "reset-fb")],
    ("elr,0.001", "ELR"), ("nonesuch", "other"),
])  # fmt: skip
def test_the_family_rule(group, family):
    assert report.family(group) == family


def runs_of_arms(arms, seeds=(0, 1, 2)):
    rng = np.random.default_rng(0)
    runs = []
    for i, arm in enumerate(arms):
        for seed in seeds:
            segments = [report.Segment(t, 50 + t * SWITCH, [t * SWITCH + 50 * k for k in (1, 2)], list(10 * i + rng.random(2) * 5))
                        for t in (0, 1)]  # fmt: skip
            run = report.Run(Path(f"{arm}_s{seed}"), {"seed": seed, "total_timesteps": 2 * SWITCH,
                                                              "env": None, "env.kwargs.switch_every": SWITCH}, segments, arm)  # fmt: skip
            runs.append(run)
    return runs


def test_curves_are_faceted_by_family_with_bands_and_the_switches(tmp_path):
    """22.5: thirteen arms in four panels; mean over seeds with a 95% band; a line at the switch."""
    from matplotlib.collections import PolyCollection

    arms = ["none", "none-2x", "none-4x", "none-8x", "nap", "nap-2x", "nap-4x", "elr", "elr-cusum", "elr-on-switch", "redo",
            "shrink-perturb", "reset"]  # fmt: skip
    fig = report_plots.curves_figure(runs_of_arms(arms))
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["SB3 (constant lr)", "normalized (NaP)", "ELR", "interventions"]
    elr = axes[2]
    assert [t.get_text() for t in elr.get_legend().get_texts()] == ["elr (n=3)", "elr-cusum (n=3)", "elr-on-switch (n=3)", "task switch"]
    # n counts seeds, not the values at one step: a run evaluated twice at a step (or one-task runs) does not add one
    runs = runs_of_arms(["elr"])
    runs[0].segments[0].steps.append(runs[0].segments[0].steps[-1])
    runs[0].segments[0].returns.append(1.0)
    fig = report_plots.curves_figure(runs)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][0] == "elr (n=3)"
    assert sum(isinstance(c, PolyCollection) for c in elr.collections) == 3  # a band per arm
    assert [line.get_xdata()[0] for line in elr.lines if line.get_linestyle() == ":"] == [SWITCH]
    fig.savefig(tmp_path / "curves.png", dpi=80)
    one_seed = report_plots.curves_figure(runs_of_arms(["elr"], seeds=(0,)))
    assert not any(isinstance(c, PolyCollection) for c in one_seed.axes[0].collections)  # no band for one seed


def test_single_points_are_drawn_and_ratios_on_a_fixed_axis():
    """22.4: a scalar logged once is a visible marker; the dormant ratio is not autoscaled."""
    (run,) = runs_of_arms(["none"], seeds=(0,))
    run.scalars = {"plasticity/dormant_ratio": [(150, 0.0)], "plasticity/srank": [(150, 28.0)]}
    fig = report_plots.plasticity_figure([run], ["plasticity/dormant_ratio", "plasticity/srank"])
    dormant, srank = fig.axes
    for ax in (dormant, srank):
        (line,) = [ln for ln in ax.lines if ln.get_linestyle() != ":"]
        assert line.get_marker() == "o" and len(line.get_xdata()) == 1
    assert dormant.get_ylim() == pytest.approx((-0.001, 0.05)) and "fixed axis 0-0.05" in dormant.get_ylabel()
    assert srank.get_ylim()[0] == 0
