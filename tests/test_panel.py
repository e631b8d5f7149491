"""The stationary panel (issue 20): per-run rows, normalization by SB3 and the random policy, verdicts, resume."""

import csv

import numpy as np
import pytest

from plastic_rl.tools import bench_agents, panel


def rows_for(sb3, default, random=0.0, algo="dqn", env="E"):
    out = []
    for arm, values, preset in (("sb3", sb3, "sb3"), ("default", default, panel.default_preset(panel.PLASTIC[algo]))):
        for seed, v in enumerate(values):
            out.append({"algo": algo, "env": env, "arm": arm, "preset": preset, "seed": seed, "auc": v, "final": v, "random": random})
    return out


def test_normalization_known_answer():
    # (x - random) / (mean SB3 - random): SB3's mean is 110, random 10 -> scale 100
    scores = panel.normalized(rows_for([100.0, 120.0], [60.0, 210.0], random=10.0), "auc")
    arms = scores[("dqn", "E")]
    assert arms["sb3"] == pytest.approx([0.9, 1.1])
    assert arms["default"] == pytest.approx([0.5, 2.0])


def test_verdicts_and_targets():
    assert panel.verdict(1.02, 1.3) == "win" and panel.verdict(0.5, 0.99) == "loss" and panel.verdict(0.9, 1.1) == "tie"
    assert panel.verdict(1.02, 1.3, n=2).startswith("n/a")  # a verdict needs 3 seeds (report.stats.MIN_SEEDS_VERDICT)
    good = rows_for([100, 100, 100, 100, 100], [98, 101, 99, 103, 100])
    bad = rows_for([100, 100, 100, 100, 100], [50, 52, 49, 55, 51], algo="ppo")
    text = panel.markdown(good + bad, panel.summary(good + bad, reps=500))
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| dqn") or line.startswith("| ppo")}
    assert "| met |" in lines["dqn"] and "**not met**" in lines["ppo"] and "| loss |" in lines["ppo"]
    assert "(n=5)" in lines["dqn"]


def test_a_row_with_sb3_no_better_than_random_is_left_out(capsys):
    assert panel.normalized(rows_for([5.0, 5.0], [7.0, 8.0], random=6.0), "auc") == {}
    assert "is not above the random policy's" in capsys.readouterr().out


def test_panel_runs_writes_the_issue_columns_and_resumes(tmp_path, capsys):
    path = tmp_path / "panel.csv"
    argv = ["panel", "--rows", "dqn-cartpole", "--seeds", "0", "1", "--timesteps", "300", "--episodes", "2", "--reps", "200",
            "--csv", str(path)]  # fmt: skip
    bench_agents.main(argv)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["algo", "env", "arm", "preset", "seed", "auc", "final", "random"]
        rows = list(reader)
    assert sorted((r["arm"], r["seed"]) for r in rows) == [("default", "0"), ("default", "1"), ("sb3", "0"), ("sb3", "1")]
    assert {r["preset"] for r in rows if r["arm"] == "default"} == {panel.default_preset("PlasticDQN")}
    assert len({r["random"] for r in rows}) == 1 and all(np.isfinite(float(r["auc"])) for r in rows)
    capsys.readouterr()
    bench_agents.main(argv)  # everything is in the CSV: nothing runs again
    assert "seed" not in "".join(line for line in capsys.readouterr().out.splitlines() if line.startswith("dqn-cartpole"))
    assert len(panel.read(path)) == 4


def test_a_cut_budget_needs_its_own_csv():
    with pytest.raises(SystemExit) as info:
        panel.main(["--timesteps", "100"])
    assert info.value.code == 2


def test_elr_rule_traces_show_the_decay_and_the_flat_projection(tmp_path):
    from plastic_rl import PlasticPPO
    from plastic_rl.tools import elr_rule

    rows = elr_rule.main(["--rows", "ppo-cartpole", "--seeds", "0", "--timesteps", "1024", "--csv", str(tmp_path / "t.csv"),
                          "--plot", str(tmp_path / "t.png")])  # fmt: skip
    assert (tmp_path / "t.png").stat().st_size > 0 and len(elr_rule.read(tmp_path / "t.csv")) == len(rows)
    by_arm = {arm: [r for r in rows if r["arm"] == arm] for arm in elr_rule.ARMS}
    assert all(len(points) >= 3 for points in by_arm.values())
    assert {r["lr_factor"] for r in by_arm["nap"]} == {1.0}
    # the rule's factor after n updates: 1 / sqrt(1 + rate n), rate from the agent's own network
    kwargs = panel.ROWS["ppo-cartpole"].hparams()
    kwargs.pop("n_envs")
    kwargs["batch_size"] = 32  # one env here: the rate depends on the lr and the network only
    rate = PlasticPPO("CartPole-v1", seed=0, plasticity="elr-decay", **kwargs).plasticity.elrs["policy"].schedule.rate
    for r in by_arm["elr-decay"]:
        assert r["lr_factor"] == pytest.approx((1 + rate * r["updates"]) ** -0.5, rel=1e-5)


def test_ablation_rows_are_reported_on_the_same_normalization(tmp_path, capsys):
    main = tmp_path / "panel.csv"
    extra = tmp_path / "ablation.csv"
    for path, rows in ((main, rows_for([100, 120, 110], [60, 70, 80], random=10.0)),
                       (extra, [{**r, "arm": "ablation", "preset": "nap:project=false"}
                                for r in rows_for([], [110, 110, 110], random=10.0)])):  # fmt: skip
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=panel.FIELDS)
            writer.writeheader()
            writer.writerows(rows)
    table = panel.main(["--report-only", "--csv", str(main), "--extra", str(extra), "--reps", "200"])
    ablation = next(t for t in table if t["arm"] == "ablation" and t["metric"] == "auc")
    assert ablation["iqm"] == pytest.approx(1.0) and ablation["n"] == 3  # (110 - 10) / (mean SB3 110 - 10)
    out = capsys.readouterr().out
    assert "- dqn E `nap:project=false`, auc: 1.00 [1.00, 1.00] (n=3)" in out
    panel_line = next(t for t in table if t["algo"] == "panel" and t["metric"] == "auc")
    assert panel_line["arm"] in ("sb3", "default")  # the panel line pools the two arms only


def write(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=panel.FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def test_default_rows_of_an_earlier_default_preset_are_reported_beside(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(panel, "default_preset", lambda plastic: "new")  # the library's default changed from elr-decay
    rows = rows_for([100, 120, 110], [110, 110, 110], random=10.0)  # default rows of preset "new"
    old = [{**r, "preset": "elr-decay", "auc": 60.0, "final": 60.0} for r in rows if r["arm"] == "default"]
    path = tmp_path / "panel.csv"
    write(path, rows + old)
    table = panel.main(["--report-only", "--csv", str(path), "--reps", "200"])
    auc = {t["arm"]: t for t in table if t["metric"] == "auc" and t["algo"] == "dqn"}
    assert auc["default"]["n"] == 3 and auc["default"]["iqm"] == pytest.approx(1.0)  # the new default's runs only
    assert auc["elr-decay"]["n"] == 3 and auc["elr-decay"]["iqm"] == pytest.approx(0.5)  # (60 - 10) / (110 - 10)
    out = capsys.readouterr().out
    assert "Default preset(s) measured: `new`." in out
    assert "- dqn E `elr-decay`, auc: 0.50 [0.50, 0.50] (n=3)" in out
    with open(path, newline="") as f:
        assert {r["arm"] for r in csv.DictReader(f)} == {"sb3", "default"}  # the CSV is left as it is


def test_a_seed_with_only_an_earlier_default_presets_run_runs_the_new_default(tmp_path, monkeypatch):
    monkeypatch.setattr(panel, "default_preset", lambda plastic: "new")
    ran = []

    def run(row, arm, seed, episodes=10):
        ran.append((arm, seed))
        return {"algo": row.algo, "env": row.env, "arm": arm, "preset": "new", "seed": seed, "auc": 1.0, "final": 1.0}

    monkeypatch.setattr(panel, "run", run)
    monkeypatch.setattr(panel, "random_return", lambda row: 0.0)
    path = tmp_path / "panel.csv"
    write(path, [{**r, "env": "CartPole-v1", "preset": "sb3" if r["arm"] == "sb3" else "elr-decay"} for r in rows_for([5.0], [5.0])])
    argv = ["--rows", "dqn-cartpole", "--seeds", "0", "--csv", str(path), "--reps", "200"]
    panel.main(argv)
    assert ran == [("default", 0)]  # sb3's seed 0 is done; the elr-decay run is not the default's any more
    panel.main(argv)
    assert ran == [("default", 0)]  # now it is done
    assert sorted((r["arm"], r["preset"]) for r in panel.read(path)) == [("default", "new"), ("elr-decay", "elr-decay"), ("sb3", "sb3")]
