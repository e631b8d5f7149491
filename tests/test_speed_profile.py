"""Where a speed row's time goes (issue 24): labels, buckets, per-arm profiles of a real row, the report, bad input."""

import pytest

from plastic_rl.tools import bench_agents, speed_profile


@pytest.mark.parametrize(
    "key,name,bucket",
    [
        (("~", 0, "<built-in method torch.layer_norm>"), "<built-in method torch.layer_norm>", "normalization"),
        (("/x/site-packages/torch/nn/functional.py", 2900, "layer_norm"), "torch/nn/functional.py:layer_norm", "normalization"),
        (("~", 0, "<built-in method torch._fused_adam_>"), "<built-in method torch._fused_adam_>", "optimizer"),
        (("/x/site-packages/torch/optim/adam.py", 400, "_single_tensor_adam"), "torch/optim/adam.py:_single_tensor_adam", "optimizer"),
        (("~", 0, "<method 'run_backward' of 'torch._C._EngineBase' objects>"), "<method 'run_backward' of 'torch._C._EngineBase' objects>", "autograd"),
        (("/w/plastic_rl/elr.py", 200, "step"), "plastic_rl/elr.py:step", "plastic_rl"),
        (("~", 0, "<built-in method torch._C._nn.linear>"), "<built-in method torch._C._nn.linear>", "torch ops"),
        (("~", 0, "<method 'mul_' of 'torch._C.TensorBase' objects>"), "<method 'mul_' of 'torch._C.TensorBase' objects>", "torch ops"),
        (("/x/site-packages/stable_baselines3/dqn/dqn.py", 180, "train"), "stable_baselines3/dqn/dqn.py:train", "sb3 and env"),
        (("~", 0, "<built-in method builtins.isinstance>"), "<built-in method builtins.isinstance>", "sb3 and env"),
    ],
)  # fmt: skip
def test_labels_and_buckets_known_answers(key, name, bucket):
    assert speed_profile.label(key) == name
    assert speed_profile.bucket(name) == bucket


def test_a_real_row_is_profiled_per_arm_and_reported(tmp_path, capsys):
    rows = speed_profile.profile_row("dqn-default", rounds=1, round_steps=40)
    totals = {r["arm"]: r["ms_per_1k"] for r in rows if r["kind"] == "total"}
    assert set(totals) == {"sb3", "plastic", "control"} and all(v > 0 for v in totals.values())
    for arm, total in totals.items():  # the buckets split the total, nothing lost or counted twice
        buckets = [r["ms_per_1k"] for r in rows if r["arm"] == arm and r["kind"] == "bucket"]
        assert len(buckets) == len(speed_profile.BUCKETS) and sum(buckets) == pytest.approx(total, rel=1e-3)
    plastic = {r["name"]: r["ms_per_1k"] for r in rows if r["arm"] == "plastic" and r["kind"] == "bucket"}
    sb3 = {r["name"]: r["ms_per_1k"] for r in rows if r["arm"] == "sb3" and r["kind"] == "bucket"}
    assert plastic["normalization"] > 0 and sb3["normalization"] == 0  # only the plastic default normalizes
    assert sb3["plastic_rl"] == 0 < plastic["plastic_rl"]
    path = tmp_path / "profile.csv"
    from plastic_rl.tools.bench_rows import append_row

    for r in rows:
        append_row(path, r, speed_profile.FIELDS)
    with open(path, "a") as f:
        f.write("dqn-default,plastic,bucket,optim")  # a row cut short by a kill: skipped
    read = bench_agents.main(["speed-profile", "--rows", "dqn-default", "--csv", str(path)])  # in the CSV: not profiled again
    assert len(read) == len(rows)
    out = capsys.readouterr().out
    assert "| dqn-default | plastic - sb3 |" in out and "| dqn-default | control - sb3 |" in out and "- dqn-default: `" in out


def test_bad_rounds_is_one_line(capsys):
    with pytest.raises(SystemExit):
        bench_agents.main(["speed-profile", "--rounds", "0"])
    assert "--rounds=0 must be >= 1" in capsys.readouterr().err


def test_a_built_in_op_is_charged_to_the_optimizer_that_called_it():
    import cProfile
    import pstats

    import torch

    params = [torch.zeros(64, requires_grad=True) for _ in range(4)]
    for p in params:
        p.grad = torch.ones(64)
    optimizer = torch.optim.Adam(params, foreach=False)  # _single_tensor_adam: lerp_, sqrt, addcdiv_ ... as built-ins
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(20):
        optimizer.step()
        torch.ones(64).mul_(2.0)  # a built-in called from here: not the optimizer's
    profile.disable()
    functions, buckets = speed_profile.own_times(pstats.Stats(profile))
    assert sum(buckets.values()) == pytest.approx(sum(functions.values()), rel=1e-6)  # split, not lost or doubled
    adam_builtins = sum(t for f, t in functions.items() if "lerp_" in f or "addcdiv_" in f or "sqrt" in f)
    assert adam_builtins > 0 and buckets["optimizer"] >= adam_builtins + functions["torch/optim/adam.py:_single_tensor_adam"] * 0.999
