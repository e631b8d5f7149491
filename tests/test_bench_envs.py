"""The environments benchmark runs end to end on a tiny budget (its numbers live in docs/envs.md)."""

import pytest

from plastic_rl.tools import bench_envs

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # gymnasium on envpool's bounds; PPO's batch > buffer


def test_bench_envs_reports_every_arm(capsys):
    pytest.importorskip("ale_py", reason="the sb3 arm needs ale-py")
    pytest.importorskip("cv2", reason="SB3's Atari wrappers need OpenCV")
    result = bench_envs.main(["--n-envs", "1", "--steps", "8", "--rounds", "1", "--ppo-steps", "128"])
    step, ppo = result["stepping"], result["ppo"]
    assert min(step["raw_sps"], step["adapter_sps"], step["sb3_sps"]) > 0 and step["adapter/raw"] > 0
    assert ppo["adapter_sps"] > 0 and ppo["sb3_sps"] > 0
    out = capsys.readouterr().out
    assert "Breakout-v5 vs BreakoutNoFrameskip-v4" in out and "adapter/sb3" in out


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--game", "NoSuchGame"], ["--ppo-steps", "-1"]])
def test_bad_input_exits_2(argv):
    with pytest.raises(SystemExit) as info:
        bench_envs.main(argv)
    assert info.value.code == 2
