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
