"""The core demo and the core benchmark run, and fail cleanly on bad input."""

import subprocess
import sys

import pytest

from plastic_rl.tools import bench_core, core_demo


def test_core_demo_runs_and_reports(capsys):
    core_demo.main(["tasks=2", "steps_per_task=60", "log_every=60", "hidden=16", "cusum.burn_in=10", "cusum.warmup=5"])
    out = capsys.readouterr().out
    assert out.count(" adam ") == 2 and out.count(" elr ") == 2
    assert "teacher switched at steps 60; CUSUM re-warmed at steps" in out


def test_core_demo_bad_override_is_one_line_and_exit_2():
    run = subprocess.run([sys.executable, "-m", "plastic_rl.tools.core_demo", "no_such_key=1"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_key" in lines[0] and "Traceback" not in run.stderr


def test_bench_core_measures_both_models(capsys):
    rows = bench_core.main(["--steps", "3"])
    assert [r["model"] for r in rows] == ["mlp", "cnn"]
    for row in rows:
        assert row["adam_us"] > 0 and row["elr_us"] > 0 and row["elr/10_us"] > 0 and row["elr/log_us"] > 0 and row["default/log_us"] > 0
    assert rows[0]["params"] == 9_155  # SB3's CartPole PPO MLP (64x64 x2, heads); the agents' norms have no gains
    assert "ELR adds" in (out := capsys.readouterr().out) and "ELR/log adds" in out and "norm gains: none" in out
    rows = bench_core.main(["--steps", "3", "--models", "mlp", "--gains"])
    assert rows[0]["params"] == 9_155 + 4 * 2 * 64  # a gain and a bias per unit of the four normalized layers
    assert "norm gains: learnable, projected" in capsys.readouterr().out


def test_interleaved_calls_every_arm_once_a_round_each_after_every_other():
    calls: list[str] = []
    arms = {name: (lambda name=name: calls.append(name)) for name in "abcd"}
    befores: list[str] = []
    times = bench_core.interleaved(arms, 60, before=lambda name: befores.append(name))
    assert {name: len(t) for name, t in times.items()} == dict.fromkeys("abcd", 60)
    assert all(t >= 0 for ts in times.values() for t in ts)
    rounds = [calls[i : i + 4] for i in range(0, len(calls), 4)]
    assert all(sorted(r) == list("abcd") for r in rounds) and befores == calls  # each arm once a round, ``before`` first
    followed = {(r[i - 1], r[i]) for r in rounds for i in range(1, 4)}
    assert followed == {(a, b) for a in "abcd" for b in "abcd" if a != b}  # not a rotation: every arm after every other
    again: list[str] = []
    bench_core.interleaved({name: (lambda name=name: again.append(name)) for name in "abcd"}, 60)
    assert again == calls  # seeded: the same order every run


def test_bench_core_times_the_interventions(capsys):
    rows = bench_core.main(["--interventions", "--repeats", "2"])
    assert [r["model"] for r in rows] == ["mlp", "cnn"]
    for row in rows:
        assert all(row[k] > 0 for k in ("gradient step", "redo", "shrink_perturb", "reset heads"))
    assert "x step" in capsys.readouterr().out


def test_bench_core_bad_input():
    with pytest.raises(SystemExit) as exit_info:
        bench_core.main(["--steps", "-1"])
    assert exit_info.value.code == 2
