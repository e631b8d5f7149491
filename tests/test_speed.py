"""The speed table (issue 24): per-round rows, ratios to SB3 with quartiles, the target, resume, bad input."""

import csv

import pytest

from plastic_rl.agents.config import DEFAULT_PRESET
from plastic_rl.tools import bench_agents, speed


def rounds_for(name, sb3, plastic, control, steps=100):
    out = []
    for arm, seconds in (("sb3", sb3), ("plastic", plastic), ("control", control)):
        for r, s in enumerate(seconds):
            out.append(
                {"row": name, "algo": "ppo", "settings": "default", "env": "E", "arm": arm, "round": r, "steps": steps, "seconds": s}
            )
    return out


def test_ratios_known_answer():
    # per round, rate = steps / seconds, ratio = rate / SB3's rate = SB3's seconds / the arm's seconds
    rows = rounds_for("a", sb3=[1.0, 1.0, 2.0, 1.0, 1.0], plastic=[2.0, 1.0, 2.0, 1.25, 0.5], control=[1.0] * 5)
    (t,) = speed.summary(rows)
    assert t["rounds"] == 5 and t["sb3_sps"] == pytest.approx(100.0)  # median of 100, 100, 50, 100, 100
    median, q1, q3 = t["plastic"]  # ratios 0.5, 1, 1, 0.8, 2 -> sorted 0.5, 0.8, 1, 1, 2
    assert median == pytest.approx(1.0)
    assert (q1, q3) == pytest.approx((0.65, 1.5))  # statistics.quantiles, exclusive method
    assert t["control"][0] == pytest.approx(1.0)


def test_a_round_some_arm_lacks_is_left_out():
    rows = rounds_for("a", sb3=[1.0, 1.0], plastic=[2.0, 1.0], control=[1.0, 1.0])
    rows = [r for r in rows if not (r["arm"] == "control" and r["round"] == 0)]  # killed mid-round
    (t,) = speed.summary(rows)
    assert t["rounds"] == 1 and t["plastic"][0] == pytest.approx(1.0)


def test_markdown_marks_the_target():
    slow = rounds_for("slow", sb3=[1.0] * 3, plastic=[1.1] * 3, control=[1.0] * 3)  # ratio 0.909
    fast = rounds_for("fast", sb3=[1.0] * 3, plastic=[1.01] * 3, control=[1.0] * 3)  # ratio 0.990
    lines = speed.markdown(speed.summary(slow + fast)).splitlines()[2:]
    assert "0.909" in lines[0] and lines[0].endswith("| **not met** |")
    assert "0.990" in lines[1] and lines[1].endswith("| met |")


def test_a_real_row_times_every_arm_and_resumes(tmp_path, capsys):
    rows = speed.time_row("a2c-default", rounds=2, round_steps=20)
    assert sorted((r["arm"], r["round"]) for r in rows) == sorted((a, k) for a in speed.ARMS for k in (0, 1))
    assert all(r["steps"] == 20 and r["seconds"] > 0 for r in rows)  # A2C's default: 5 steps x 1 env per update
    assert {r["arm"]: r["preset"] for r in rows} == {"sb3": "sb3", "plastic": DEFAULT_PRESET, "control": "none"}
    path = tmp_path / "speed.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=speed.FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    # the row is in the CSV: nothing is timed again, the table is read from the file
    table = bench_agents.main(["speed", "--rows", "a2c-default", "--csv", str(path)])
    assert [t["row"] for t in table] == ["a2c-default"] and table[0]["rounds"] == 2
    assert f"| a2c | default | CartPole-v1 | {table[0]['sb3_sps']:.0f} | {DEFAULT_PRESET} |" in capsys.readouterr().out
    assert len(speed.read(path)) == 6


def test_rows_timed_before_the_preset_column_read_as_unrecorded(tmp_path):
    path = tmp_path / "old.csv"
    old = [{k: v for k, v in r.items()} for r in rounds_for("a", sb3=[1.0], plastic=[1.0], control=[1.0])]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[k for k in speed.FIELDS if k != "preset"])
        writer.writeheader()
        writer.writerows(old)
    (t,) = speed.summary(speed.read(path))
    assert t["preset"] == "unrecorded" and "| unrecorded |" in speed.markdown([t])


def test_bad_rounds_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit:
        speed.main(["--rounds", "0"])
    assert exit.value.code == 2 and "--rounds=0 must be >= 1" in capsys.readouterr().err


def test_read_typed_converts_columns_and_skips_a_row_cut_short(tmp_path):
    from plastic_rl.tools.bench_rows import read_typed

    path = tmp_path / "rows.csv"
    path.write_text("a,b,c\n1,2.5,x\n3,oops,y\n4,5.0\n")  # an unparsable value, a row cut short by a kill
    assert read_typed(path, {"a": int, "b": float}) == [{"a": 1, "b": 2.5, "c": "x"}]
    assert read_typed(tmp_path / "absent.csv", {"a": int}) == []
