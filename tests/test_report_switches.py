"""The plasticity diagnostics at each task switch (``report.switches``): known answers, the CSV round trip,
and the report writing them from TensorBoard scalars."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report import SWITCH, make_run

from plastic_rl import report
from plastic_rl.report.runs import Run
from plastic_rl.report.switches import marks, read_switch_rows, switch_rows, switch_section, write_switch_rows


def run(group, seed, total, first_task=0, points=()):
    config = {"seed": seed, "total_timesteps": total, "env.kwargs.switch_every": 100, "env.kwargs.first_task": first_task}
    return Run(Path(group), config, [], group=group, scalars={"plasticity/elr": list(points)})


def test_the_value_before_each_switch_and_at_the_end():
    # a point logged on the step of a switch may hold an intervention made there: neither task's value
    sequence = run("none", 0, 300, points=[(s, float(s)) for s in (0, 50, 99, 100, 150, 200, 250, 300)])
    fresh = run("fresh", 3, 100, first_task=1, points=[(50, 5.0), (100, 7.0)])  # task 1 alone: its steps sit at 100..200
    assert marks(sequence) == [(100, False), (200, False), (300, True)] and marks(fresh) == [(200, True)]
    rows = switch_rows([sequence, fresh])
    assert [(r["arm"], r["step"], r["value"]) for r in rows] == [("fresh", 200, 7.0), ("none", 100, 99.0), ("none", 200, 150.0),
                                                                 ("none", 300, 300.0)]  # fmt: skip
    assert rows[0]["seed"] == 3 and {r["tag"] for r in rows} == {"plasticity/elr"}
    # no point on a task: no row for it; a stationary run (no switches): no row
    assert [r["step"] for r in switch_rows([run("none", 0, 300, points=[(250, 1.0)])])] == [300]
    assert switch_rows([Run(Path("x"), {"total_timesteps": 100}, [], group="none", scalars={"plasticity/elr": [(50, 1.0)]})]) == []


def test_the_section_is_mean_and_spread_over_seeds(tmp_path):
    runs = [run("none", s, 200, points=[(90, 1.0 + s), (190, 10.0)]) for s in (0, 1, 2)] + [run("elr", 0, 200, points=[(90, 4.0)])]
    rows = switch_rows(runs)
    write_switch_rows(tmp_path / "s.csv", rows)
    assert read_switch_rows(tmp_path / "s.csv") == rows  # the round trip
    text = "\n".join(switch_section(rows, arms=["none", "elr"]))
    assert "| arm | step 100 | step 200 |" in text
    assert "| `none` | 2 +- 1 (n=3) | 10 +- 0 (n=3) |" in text and "| `elr` | 4 +- n/a (1 seed) | – |" in text
    assert switch_section([]) == [] and switch_section(rows, arms=["reset"]) == []
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv: columns"):
        read_switch_rows(tmp_path / "bad.csv")


def test_the_report_writes_them_from_tensorboard(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    for seed in (0, 1):
        folder = make_run(tmp_path, f"none_s{seed}", "none", seed, {0: [1, 2], 1: [3, 4]})
        with SummaryWriter(str(folder / "tb" / "DQN_1")) as writer:
            for step in (40, 90, 140, 190, 200):
                writer.add_scalar("plasticity/srank", step / 10 + seed, step)
    result = report.report([tmp_path], tmp_path / "out", by=["arm"], reps=20, log=lambda *_: None)
    assert [(r["seed"], r["step"], r["value"]) for r in result["switches"]] == [(0, SWITCH, 9.0), (1, SWITCH, 10.0),
                                                                                (0, 2 * SWITCH, 20.0), (1, 2 * SWITCH, 21.0)]  # fmt: skip
    assert read_switch_rows(tmp_path / "out" / "switches.csv") == result["switches"]
    assert "## Plasticity at each switch" in (tmp_path / "out" / "report.md").read_text()


def test_the_plasticity_plot_bins_steps_so_seeds_that_log_apart_share_points():
    from plastic_rl.report.plots import binned, mean_band

    a = run("none", 0, 300, points=[(10, 1.0), (45, 2.0), (290, 5.0)])  # bins of 300 / 6 = 50: edges 50, ..., 300
    b = run("none", 1, 300, points=[(30, 4.0), (300, 7.0)])
    fresh = run("fresh", 0, 100, first_task=2, points=[(20, 9.0)])  # task 2 alone: its step 20 is the sequence's 220
    assert binned([a, b], "plasticity/elr", bins=6) == {50: [2.0, 4.0], 300: [5.0, 7.0]}  # each run's last value per bin
    assert binned([fresh], "plasticity/elr", bins=6) == {222: [9.0]}  # at 220: bins of ceil(220 / 6) = 37, right edge 6 x 37
    xs, mean, low, high = mean_band({1.0: [1e-3, 3e-3]}, positive=True)
    assert mean[0] == 2e-3 and low[0] == 1e-3 and high[0] > 3e-3  # a log axis: the band stops at the smallest value
