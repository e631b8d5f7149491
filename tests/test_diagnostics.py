"""Known-answer tests for plastic_rl.diagnostics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from plastic_rl import diagnostics as D


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------


def test_dead_and_dormant_on_constructed_matrix():
    torch.manual_seed(0)
    h = torch.rand(64, 10) + 0.5
    h[:, [1, 4, 7]] = 0.0  # 3 dead columns
    h[:, 9] *= 1e-3  # tiny but alive: dormant at tau=0.025, not dead
    assert D.dormant_ratio(h, 0.0) == pytest.approx(0.3)
    assert D.dormant_ratio(h, 0.025) == pytest.approx(0.4)


def test_dormant_score_is_relative_to_layer_mean():
    # mean_j m_j = (1+1+1+0.01)/4; unit 3 scores 0.01/0.7525 = 0.0133 <= 0.025 but > 0.01
    h = torch.tensor([[1.0, 1.0, 1.0, 0.01], [-1.0, 1.0, 1.0, -0.01]])
    assert D.dormant_ratio(h, 0.025) == pytest.approx(0.25)
    assert D.dormant_ratio(h, 0.01) == 0.0
    assert D.dormant_ratio(h, 0.0) == 0.0


def test_all_zero_activation_is_all_dormant():
    h = torch.zeros(8, 5)
    assert D.dormant_ratio(h, 0.0) == 1.0
    assert D.dormant_ratio(h, 0.025) == 1.0


def test_dormant_conv_averages_over_batch_and_positions():
    h = torch.ones(4, 3, 5, 5)
    h[:, 1] = 0.0
    h[0, 2, 0, 0] = 0.0  # one zero position does not kill channel 2
    assert D.dormant_ratio(h, 0.0) == pytest.approx(1 / 3)


def test_fau_on_relu_output():
    x = torch.tensor([[1.0, -1.0, 2.0, -3.0], [-1.0, -1.0, 1.0, 1.0]])
    assert D.fau(torch.relu(x)) == pytest.approx(4 / 8)
    assert D.fau(np.array([[0.0, 1.0]])) == pytest.approx(0.5)


def test_saturated_ratio_tanh():
    torch.manual_seed(0)
    x = torch.randn(100, 10) * 0.1
    x[:, :4] = 10.0 * torch.sign(torch.randn(100, 4))  # 4 units saturated on every input
    x[:30, 5] = 10.0  # saturated on 30% of inputs only: not counted
    assert D.saturated_ratio(torch.tanh(x), -1.0, 1.0) == pytest.approx(0.4)
    # sigmoid bounds: z = 2h - 1
    assert D.saturated_ratio(torch.sigmoid(x), 0.0, 1.0) == pytest.approx(0.4)


def test_saturation_threshold_is_0_99_for_tanh():
    h = torch.tensor([[0.989, 0.991, -0.995]])
    assert D.saturated_ratio(h, -1.0, 1.0) == pytest.approx(2 / 3)


def test_ranks_on_singular_values():
    s = torch.tensor([5.0, 0.0, 0.0])
    assert D.srank(s) == 1 and D.effective_rank(s) == pytest.approx(1.0) and D.stable_rank(s) == pytest.approx(1.0)
    s = torch.ones(7)
    assert D.srank(s) == 7 and D.effective_rank(s) == pytest.approx(7.0) and D.stable_rank(s) == pytest.approx(7.0)
    z = torch.zeros(4)
    assert D.srank(z) == 0 and D.effective_rank(z) == 0.0 and D.stable_rank(z) == 0.0
    # srank: 10 + 5 = 15 of 16 -> need (1-delta) * 16
    s = torch.tensor([1.0, 10.0, 5.0])  # unsorted on purpose
    assert D.srank(s, delta=0.1) == 2  # 15 >= 14.4
    assert D.srank(s, delta=0.01) == 3  # 15 < 15.84
    assert D.stable_rank(s) == pytest.approx((100 + 25 + 1) / 100)
    p = np.array([10, 5, 1]) / 16
    assert D.effective_rank(s) == pytest.approx(math.exp(-(p * np.log(p)).sum()))


def test_ranks_on_matrices_of_known_rank():
    torch.manual_seed(0)
    a = torch.randn(50, 3) @ torch.randn(3, 20)
    s = D.singular_values(a)
    assert s.dtype == torch.float64
    assert D.srank(s) == 3
    eye = torch.eye(6)
    s = D.singular_values(eye)
    assert D.srank(s) == 6
    assert D.effective_rank(s) == pytest.approx(6.0)
    assert D.stable_rank(s) == pytest.approx(6.0)


def test_delta_c_and_delta_a_pure():
    phi = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    assert D.delta_c(phi, phi) == 0.0
    assert D.delta_c(phi, 2 * phi) == pytest.approx(3.0)  # C scales by 4
    assert D.delta_c(torch.zeros(3, 2), torch.zeros(3, 2)) == 0.0
    assert D.delta_c(torch.zeros(3, 2), torch.ones(3, 2)) == math.inf
    a = torch.tensor([[True, False], [True, True]])
    b = torch.tensor([[True, True], [False, True]])
    assert D.delta_a(a, a) == 0.0
    assert D.delta_a(a, b) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------
# measure
# ---------------------------------------------------------------------------------------------


def _relu_mlp_with_dead_units():
    net = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        net[0].weight[:3] = 0.0
        net[0].bias[:3] = -1.0  # units 0..2 of layer "0" are dead on every input
        net[0].bias[3:] = 5.0  # the others alive on standard normal inputs (bias dominates)
        net[0].weight[3:] = 0.1
        net[2].weight[:2] = 0.0
        net[2].bias[:2] = -1.0  # 2 of 6 dead in layer "2"
        net[2].weight[2:] = 0.1
        net[2].bias[2:] = 1.0
    return net


def test_measure_known_dead_counts_and_keys():
    net = _relu_mlp_with_dead_units()
    x = torch.randn(128, 4, generator=torch.Generator().manual_seed(0))
    m = D.measure(net, x)
    assert m["dead_ratio/0"] == pytest.approx(0.3)
    assert m["dead_ratio/2"] == pytest.approx(2 / 6)
    assert m["dormant_ratio/0"] == pytest.approx(0.3)
    assert m["dead_ratio"] == pytest.approx(5 / 16)  # unit-weighted
    assert m["fau/0"] == pytest.approx(0.7)
    layers_seen = {k.split("/", 1)[1] for k in m if "/" in k}
    assert layers_seen == {"0", "2"}  # weight layer names, not the ReLU's "1"/"3"
    for metric in ("srank", "effective_rank", "stable_rank", "feature_norm", "weight_norm"):
        assert f"{metric}/0" in m and metric in m
    assert "grad_norm" not in m and "saturated_ratio" not in m
    w0 = math.sqrt(float(net[0].weight.detach().pow(2).sum() + net[0].bias.detach().pow(2).sum()))
    assert m["weight_norm/0"] == pytest.approx(w0)
    assert m["weight_norm"] == pytest.approx(math.hypot(m["weight_norm/0"], m["weight_norm/2"]))
    assert m["srank"] == pytest.approx((m["srank/0"] + m["srank/2"]) / 2)
    assert all(isinstance(v, float) for v in m.values())


def test_measure_grad_norm_when_grads_exist():
    net = _relu_mlp_with_dead_units()
    x = torch.randn(16, 4)
    net(x).sum().backward()
    m = D.measure(net, x)
    g0 = math.sqrt(float(net[0].weight.grad.pow(2).sum() + net[0].bias.grad.pow(2).sum()))
    assert m["grad_norm/0"] == pytest.approx(g0)
    assert "grad_norm" in m


def test_measure_tanh_reports_saturation_not_dead_or_fau():
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    with torch.no_grad():
        net[0].weight.mul_(100.0)
    m = D.measure(net, torch.randn(64, 3))
    assert "saturated_ratio/0" in m and "saturated_ratio" in m
    assert m["saturated_ratio"] > 0.3
    assert not any(k.startswith(("dead_ratio", "fau")) for k in m)


def test_measure_smooth_reports_fau_not_dead():
    net = nn.Sequential(nn.Linear(3, 8), nn.GELU(), nn.Linear(8, 1))
    m = D.measure(net, torch.randn(32, 3))
    assert "fau/0" in m and "dead_ratio/0" not in m and "saturated_ratio/0" not in m


def test_healthy_networks_read_healthy():
    # PyTorch default init, standard normal inputs, SB3-like 2 hidden layers. (Deeper default-init ReLU
    # MLPs do have a few units that fire on < 1/512 inputs at init: the network's doing, not the metric's.)
    for act in (nn.ReLU, nn.Tanh, nn.GELU):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(32, 256), act(), nn.Linear(256, 256), act(), nn.Linear(256, 4))
        m = D.measure(net, torch.randn(2048, 32))
        assert m["dormant_ratio"] < 0.05, act
        if act is nn.ReLU:
            assert m["dead_ratio"] == 0.0
        if act is nn.Tanh:
            assert m["saturated_ratio"] < 0.05
        else:
            assert 0.4 < m["fau"] < 0.6
        assert m["srank"] > 200 and m["effective_rank"] > 50 and m["stable_rank"] > 1


def test_conv_model():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 3 * 3, 32),
        nn.ReLU(),
        nn.Linear(32, 4),
    )
    with torch.no_grad():
        net[0].weight[:2] = 0.0
        net[0].bias[:2] = -1.0  # 2 of 8 channels dead
    x = np.random.default_rng(0).standard_normal((20, 3, 16, 16))  # float64 numpy -> float32 tensor
    m = D.measure(net, x)
    assert {k.split("/", 1)[1] for k in m if "/" in k} == {"0", "2", "5"}
    assert m["dead_ratio/0"] == pytest.approx(0.25)
    assert m["srank/0"] <= 8 and m["srank/2"] <= 16
    assert m["feature_norm/0"] > 0


def test_uint8_and_dict_inputs():
    class DictNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, 8), nn.ReLU())

        def forward(self, obs):
            return self.body(torch.cat([obs["a"].float(), obs["b"]], dim=1))

    obs = {"a": np.ones((5, 2), dtype=np.uint8), "b": np.random.default_rng(0).standard_normal((5, 4))}
    m = D.measure(DictNet(), obs)
    assert "dormant_ratio/body.0" in m


def test_custom_forward_and_repeated_calls():
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    m = D.measure(net, torch.randn(10, 4), forward=lambda mod, x: mod(mod(x)))
    assert "dormant_ratio/0" in m and "dormant_ratio/0#1" in m
    assert "weight_norm/0" in m and "weight_norm/0#1" not in m


def test_activation_outside_block_uses_own_name():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 5)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.fc(x))

    m = D.measure(Net(), torch.randn(7, 3))
    assert "dormant_ratio/act" in m and "weight_norm/act" not in m and "weight_norm" not in m


def test_shared_activation_instance_and_inplace():
    act = nn.ReLU(inplace=True)  # one instance after two layers; in-place must not corrupt records
    net = nn.Sequential(nn.Linear(3, 5), act, nn.Linear(5, 4), act, nn.Linear(4, 1))
    with torch.no_grad():
        net[0].weight.fill_(0.1)
        net[0].bias.fill_(1.0)
        net[2].weight[:1] = 0.0
        net[2].bias[:1] = -1.0
        net[2].weight[1:] = 0.1
        net[2].bias[1:] = 1.0
    m = D.measure(net, torch.randn(20, 3))
    # nn.Module.named_children lists a shared instance once, so the second call is "0#1", not "2"
    assert {k.split("/", 1)[1] for k in m if "/" in k} == {"0", "0#1"}
    assert m["dead_ratio/0#1"] == pytest.approx(0.25)
    assert m["dead_ratio/0"] == 0.0


def test_linear_on_sequences_units_are_last_dim():
    net = nn.Sequential(nn.Linear(3, 6), nn.ReLU())
    with torch.no_grad():
        net[0].weight[:2] = 0.0
        net[0].bias[:2] = -1.0
        net[0].weight[2:] = 0.1
        net[0].bias[2:] = 1.0
    m = D.measure(net, torch.randn(4, 7, 3))  # (batch, time, features)
    assert m["dead_ratio/0"] == pytest.approx(2 / 6)
    assert m["srank/0"] <= 6


def test_norm_between_layer_and_activation():
    net = nn.Sequential(nn.Linear(3, 6), nn.LayerNorm(6), nn.ReLU(), nn.Linear(6, 1))
    m = D.measure(net, torch.randn(9, 3))
    assert "dormant_ratio/0" in m and "weight_norm/0" in m


def _state(net):
    return (
        {k: v.clone() for k, v in net.state_dict().items()},
        {n: (None if p.grad is None else p.grad.clone()) for n, p in net.named_parameters()},
        {n: m.training for n, m in net.named_modules()},
    )


def _assert_unchanged(net, before):
    params, grads, modes = before
    for k, v in net.state_dict().items():
        assert torch.equal(v, params[k]), k
    for n, p in net.named_parameters():
        if grads[n] is None:
            assert p.grad is None, n
        else:
            assert torch.equal(p.grad, grads[n]), n
    assert {n: m.training for n, m in net.named_modules()} == modes
    for m in net.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def test_model_left_unchanged():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Sequential(nn.Linear(8, 8), nn.Tanh()), nn.Linear(8, 2)
    )
    net(torch.randn(16, 4) * 3 + 1).sum().backward()  # running stats move away from init; grads exist
    net[4][0].weight.grad = None  # mixed: some grads None
    net[4][0].bias.grad = None
    net.eval()
    net[4].train()  # submodule in train while parent in eval
    before = _state(net)
    x = torch.randn(32, 4)
    rng = torch.get_rng_state()
    m1 = D.measure(net, x)
    _assert_unchanged(net, before)
    assert torch.equal(torch.get_rng_state(), rng)
    D.FeatureSnapshot(net, x)
    _assert_unchanged(net, before)
    assert D.measure(net, x) == m1  # deterministic: dropout off, BN in eval
    assert "grad_norm/0" in m1 and "grad_norm/4.0" not in m1


def test_hooks_removed_when_forward_raises():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    net.train()
    before = _state(net)

    def bad_forward(model, x):
        model[0:2](x)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        D.measure(net, torch.randn(3, 4), forward=bad_forward)
    _assert_unchanged(net, before)


# ---------------------------------------------------------------------------------------------
# FeatureSnapshot / compare
# ---------------------------------------------------------------------------------------------


def test_snapshot_compare():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(10, 1, 8, 8)
    a = D.FeatureSnapshot(net, x)
    assert set(a.layers) == {"0", "3"}
    assert a.phi["0"].shape == (10, 4) and a.pattern["0"].shape == (10, 4 * 36) and a.pattern["0"].dtype == torch.bool
    same = D.compare(a, D.FeatureSnapshot(net, x.clone()))
    assert same["delta_c"] == 0.0 and same["delta_a"] == 0.0
    assert same["delta_c/0"] == 0.0 and same["delta_a/3"] == 0.0
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    changed = D.compare(a, D.FeatureSnapshot(net, x))
    assert changed["delta_c"] > 0 and changed["delta_a"] > 0
    assert changed["delta_c"] == pytest.approx((changed["delta_c/0"] + changed["delta_c/3"]) / 2)
    n0, n3 = 4 * 36, 8
    want = (changed["delta_a/0"] * n0 + changed["delta_a/3"] * n3) / (n0 + n3)
    assert changed["delta_a"] == pytest.approx(want)


def test_compare_rejects_different_inputs_and_layers():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    x = torch.randn(5, 3)
    a = D.FeatureSnapshot(net, x)
    with pytest.raises(ValueError, match="snapshots were taken on different inputs"):
        D.compare(a, D.FeatureSnapshot(net, x + 1))
    other = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU())
    with pytest.raises(ValueError, match="different layers"):
        D.compare(a, D.FeatureSnapshot(other, x))


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_errors():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match=r"tau=1\.5 is outside \[0, 1\)"):
        D.measure(net, x, tau=1.5)
    with pytest.raises(ValueError, match=r"tau=-0\.1 is outside"):
        D.dormant_ratio(torch.ones(2, 2), -0.1)
    with pytest.raises(ValueError, match=r"delta=0 is outside \(0, 1\)"):
        D.measure(net, x, delta=0)
    with pytest.raises(ValueError, match=r"delta=1 is outside"):
        D.srank(torch.ones(3), delta=1.0)
    with pytest.raises(ValueError, match="batch size 0"):
        D.measure(net, torch.zeros(0, 3))
    with pytest.raises(ValueError, match="batch size 0"):
        D.FeatureSnapshot(net, {"x": np.zeros((0, 3))})
    with pytest.raises(ValueError, match="model Sequential has no Linear/Conv layer to diagnose"):
        D.measure(nn.Sequential(nn.ReLU()), x)
    with pytest.raises(ValueError, match="model Sequential has no activation module"):
        D.measure(nn.Sequential(nn.Linear(3, 4)), x)

    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 4)
            self.act = nn.ReLU()

        def forward(self, x):
            return torch.relu(self.fc(x))  # functional: the module never fires

    with pytest.raises(ValueError, match="no activation module fired"):
        D.measure(Skip(), x)
