"""The agents benchmark runs end to end on tiny budgets (its numbers live in the README)."""

import pytest

from plastic_rl.tools import bench_agents


def test_overhead_reports_a_ratio(capsys):
    (row,) = bench_agents.main(["overhead", "--envs", "CartPole-v1", "--steps", "256", "--rounds", "2"])
    assert row["sb3_sps"] > 0 and row["plastic_sps"] > 0 and row["none_ratio"] > 0 and row["rounds"] == 2
    assert row["ratio_q1"] <= row["ratio"] <= row["ratio_q3"]
    assert "CartPole-v1" in capsys.readouterr().out


def test_atari_sized_env_is_image_shaped():
    env = bench_agents.AtariSizedEnv()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (84, 84, 4) and obs.dtype.name == "uint8"


def test_learning_reports_every_seed(capsys):
    rows = bench_agents.main(["learning", "--seeds", "0", "--timesteps", "512", "--eval-freq", "256", "--episodes", "1"])
    assert [r["algo"] for r in rows] == ["PlasticPPO", "PPO"]
    assert all(r["final"] > 0 for r in rows)
    assert "reached 475 in" in capsys.readouterr().out


def test_gradstep_breakdown_has_every_arm():
    rows = bench_agents.main(["gradstep", "--steps", "3"])
    assert [r["arm"] for r in rows] == [
        "SB3", "+LayerNorm (affine)", "+LayerNorm", "+LayerNorm +ELR", "+LayerNorm +ELR, fused Adam", "SB3, fused Adam"
    ]  # fmt: skip
    assert rows[0]["ratio"] == 1.0 and all(r["us"] > 0 for r in rows)


@pytest.mark.parametrize("argv", [["learning", "--timesteps", "0"], ["overhead", "--rounds", "-1"]])
def test_bad_input_exits_2(argv):
    with pytest.raises(SystemExit) as info:
        bench_agents.main(argv)
    assert info.value.code == 2


def compare_argv(path, *, algos=("dqn", "sac"), seeds=("0", "1"), arms=None):
    argv = ["compare", "--algos", *algos, "--seeds", *seeds, "--timesteps", "120", "--eval-freq", "60",
            "--episodes", "1", "--csv", str(path), "--reps", "100"]  # fmt: skip
    return argv + (["--arms", *arms] if arms else [])


def test_compare_writes_csv_and_iqm_table_and_resumes(tmp_path, capsys):
    pytest.importorskip("rliable", reason="compare reports rliable's IQM and bootstrap CIs")
    path = tmp_path / "runs.csv"
    summary = bench_agents.main(compare_argv(path))
    assert [(r["algo"], r["arm"]) for r in summary] == [(a, arm) for a in ("dqn", "sac") for arm in ("sb3", "elr", "none")]
    for row in summary:
        assert row["n"] == 2 and row["seeds"] == [0, 1]
        assert row["ci_low"] <= row["iqm"] <= row["ci_high"]
        assert min(row["finals"]) <= row["iqm"] <= max(row["finals"])
        assert row["curve"][0][0] == 60 and len(row["curve"]) == 2  # one evaluation on the way, then the final one
    rows = bench_agents.read_rows(path)
    assert len(rows) == 12 and {r["env"] for r in rows} == {"CartPole-v1", "Pendulum-v1"}
    out = capsys.readouterr().out
    assert "12 to run" in out and "[12/12] sac Pendulum-v1 none seed 1" in out
    assert "95% stratified-bootstrap CI" in out and "SB3's CI" in out
    # plasticity="none" is SB3's algorithm: the same seed gives the same run
    assert "dqn: none reproduced SB3's run exactly (same curve) in 2 of 2 seeds" in out
    assert "sac: none reproduced SB3's run exactly (same curve) in 2 of 2 seeds" in out

    # a second call finds every run in the CSV and only reports, with the same numbers
    again = bench_agents.main(compare_argv(path))
    assert "12 already in" in capsys.readouterr().out and len(bench_agents.read_rows(path)) == 12
    assert [(r["iqm"], r["ci_low"], r["ci_high"]) for r in again] == [(r["iqm"], r["ci_low"], r["ci_high"]) for r in summary]
    # an interruption mid-write leaves a cut row: it is ignored, and the next row starts a fresh line
    with open(path, "a") as f:
        f.write("dqn,CartPole-v1,elr,2,120")
    bench_agents.main(compare_argv(path, algos=["dqn"], seeds=["0", "2"], arms=["elr"]))
    out = capsys.readouterr().out
    assert "1 already in" in out and "1 to run" in out and "[1/1] dqn CartPole-v1 elr seed 2" in out
    assert len(bench_agents.read_rows(path)) == 13


def test_compare_arm_overrides(tmp_path):
    pytest.importorskip("rliable", reason="compare reports rliable's IQM and bootstrap CIs")
    assert bench_agents.parse_arm("sb3") == (None, {})
    assert bench_agents.parse_arm("none") == ("none", {})
    assert bench_agents.parse_arm("sb3:learning_rate=1e-3") == (None, {"learning_rate": 1e-3})
    assert bench_agents.parse_arm("elr:peak=1.0,fused=false,learning_rate=0.001") == (
        {"preset": "elr", "peak": 1.0}, {"policy_kwargs": {"optimizer_kwargs": {"fused": False}}, "learning_rate": 1e-3}
    )  # fmt: skip
    (row,) = bench_agents.main(compare_argv(tmp_path / "runs.csv", algos=["dqn"], seeds=["0"], arms=["elr:schedule=null"]))
    assert row["arm"] == "elr:schedule=null" and row["n"] == 1


@pytest.mark.parametrize("arm", ["elr:nope=1", "sb3:peak=2", "adam", "elr:peak"])
def test_compare_bad_arm_exits_2(arm, tmp_path):
    with pytest.raises(SystemExit) as info:
        bench_agents.main(compare_argv(tmp_path / "runs.csv", arms=[arm]))
    assert info.value.code == 2


def test_compare_skips_a_run_another_process_holds(tmp_path, capsys):
    pytest.importorskip("rliable", reason="compare reports rliable's IQM and bootstrap CIs")
    path = tmp_path / "runs.csv"
    held = ("dqn", "CartPole-v1", "elr", 0, 120, 60, 1)  # bench_agents.RUN_KEY of the elr run below
    with bench_agents.claim(path, held) as mine:
        assert mine
        with bench_agents.claim(path, held) as again:  # a second claim (another process's) is refused
            assert not again
        (row,) = bench_agents.main(compare_argv(path, algos=["dqn"], seeds=["0"], arms=["sb3", "elr"]))
    out = capsys.readouterr().out
    assert "dqn elr seed 0: running in another process, skipped" in out and "partial report" in out
    assert row["arm"] == "sb3" and [r["arm"] for r in bench_agents.read_rows(path)] == ["sb3"]


def test_compare_intervals_are_rliable_iqm_and_repeatable():
    metrics = pytest.importorskip("rliable.metrics", reason="compare reports rliable's IQM and bootstrap CIs")
    scores = {"sb3": [19.8, 500.0, 500.0, 186.1, 500.0], "elr": [34.6, 140.9, 32.2, 500.0, 500.0]}
    first = bench_agents.iqm_with_ci(scores, reps=2000)
    assert first == bench_agents.iqm_with_ci(scores, reps=2000)  # the same CSV gives the same CIs
    for arm, values in scores.items():
        iqm, low, high = first[arm]
        assert iqm == pytest.approx(metrics.aggregate_iqm(values)) and low <= iqm <= high


def test_elr_trace_shows_projection_holding_the_norm(capsys):
    """nap projects its normalized hidden layers back to their initial norm; none lets them grow."""
    rows = bench_agents.main(["elr-trace", "--algos", "dqn", "--arms", "none", "nap", "--timesteps", "3000"])
    out = capsys.readouterr().out
    assert "param_norm" not in out and "ELR" in out
    for arm in ("none", "nap"):
        hidden = [r for r in rows if r["arm"] == arm and r["layer"] == "q_net.2" and r["algo"] == "dqn"]
        assert len(hidden) >= 2 and all(r["elr"] > 0 for r in hidden)
        first, last = hidden[0]["param_norm"], hidden[-1]["param_norm"]
        if arm == "nap":
            assert last == pytest.approx(first, rel=1e-4)
        else:
            assert last > first * 1.05


def test_elr_trace_refuses_sb3_arm():
    with pytest.raises(SystemExit) as info:
        bench_agents.main(["elr-trace", "--arms", "sb3"])
    assert info.value.code == 2
