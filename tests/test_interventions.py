"""ReDo, Shrink & Perturb and resets: known answers, exact optimizer state, ELR on the same model, bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from plastic_rl import diagnostics
from plastic_rl.elr import ELR
from plastic_rl.interventions import redo, reset, shrink_perturb
from plastic_rl.norm import insert_norm

DEAD = {0: [1, 5], 2: [3]}  # layer index -> units made dead on purpose


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        for layer, units in DEAD.items():
            net[layer].bias.fill_(1.0)  # every other unit fires on every input
            net[layer].bias[units] = -100.0  # ReLU(Wx - 100) = 0 on every input of the batch
    return net


def trained(net: nn.Module, x: torch.Tensor, opt_class=torch.optim.Adam, steps: int = 3, **opt_kwargs):
    """A few optimizer steps on a regression, so that every optimizer state tensor is non-zero."""
    opt = opt_class(net.parameters(), lr=1e-3, **opt_kwargs)
    y = torch.randn(x.shape[0], 2 if net[-1].out_features == 2 else net[-1].out_features, generator=torch.Generator().manual_seed(2))
    for _ in range(steps):
        opt.zero_grad()
        (net(x) - y).pow(2).mean().backward()
        opt.step()
    return opt


def state_copy(opt) -> dict:
    return {id(p): {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()} for p, s in opt.state.items()}


def params_copy(net) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in net.named_parameters()}


X = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))


# -- ReDo ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opt_class, kwargs", [(torch.optim.Adam, {}), (torch.optim.AdamW, {"amsgrad": True}),
                                              (torch.optim.SGD, {"momentum": 0.9})], ids=["adam", "adamw-amsgrad", "sgd-momentum"])  # fmt: skip
def test_redo_resets_exactly_the_dormant_units_and_their_optimizer_entries(opt_class, kwargs):
    net = mlp()
    opt = trained(net, X, opt_class, **kwargs)
    before_state, before_params, before_out = state_copy(opt), params_copy(net), net(X).detach()

    report = redo(net, opt, X, tau=0.0)  # tau = 0: the dead units, exactly
    assert report == {"0": DEAD[0], "2": DEAD[2]}

    # which entries each parameter had reset: incoming rows, bias entries, outgoing columns
    touched = {name: torch.zeros_like(p, dtype=torch.bool) for name, p in net.named_parameters()}
    for layer, units in DEAD.items():
        touched[f"{layer}.weight"][units] = True
        touched[f"{layer}.bias"][units] = True
        touched[f"{layer + 2}.weight"][:, units] = True
    for name, p in net.named_parameters():
        mask = touched[name]
        assert torch.equal(p[~mask], before_params[name][~mask]), name  # untouched: bit-identical
        for key, value in opt.state[p].items():
            if isinstance(value, torch.Tensor) and value.shape == p.shape:
                assert torch.equal(value[mask], torch.zeros_like(value[mask])), (name, key)
                assert torch.equal(value[~mask], before_state[id(p)][key][~mask]), (name, key)
            else:
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(before_state[id(p)][key])), (name, key)  # step count kept
    for layer, units in DEAD.items():  # outgoing weights of reset units are zero
        assert not net[layer + 2].weight[:, units].any()
        assert not torch.equal(net[layer].weight[units], before_params[f"{layer}.weight"][units])  # fresh incoming
        assert (net[layer].bias[units].abs() < 1).all()  # the -100 biases are gone
    # the dead units contributed nothing before and their outgoing weights are zero now: same output
    assert torch.equal(net(X).detach(), before_out)
    assert diagnostics.measure(net, X)["dead_ratio/0"] < 2 / 8  # the reset units fire again


def test_redo_at_tau_removes_only_the_dormant_units_contributions():
    net = mlp()
    with torch.no_grad():  # unit 6 fires, weakly: dormant at tau = 0.3, not dead
        net[0].weight[6] *= 0.01
        net[0].bias[6] = 0.01
    opt = trained(net, X)
    masks = diagnostics.dormant_units(net, X, tau=0.3)
    expected_net = copy.deepcopy(net)
    with torch.no_grad():  # the known answer: the same network with the dormant units' outgoing weights zeroed
        for layer, mask in ((0, masks["0"]), (2, masks["2"])):
            expected_net[layer + 2].weight[:, mask] = 0
    report = redo(net, opt, X, tau=0.3)
    assert report == {"0": torch.nonzero(masks["0"]).reshape(-1).tolist(), "2": torch.nonzero(masks["2"]).reshape(-1).tolist()}
    assert report["0"] == [1, 5, 6] and report["2"] == DEAD[2]  # tau > 0: the weak unit too
    assert torch.allclose(net(X), expected_net(X), atol=1e-6)


def test_redo_on_a_cnn_resets_channels_through_flatten_and_mirrors_the_target():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    with torch.no_grad():
        net[0].bias.fill_(1.0)
        net[0].bias[2] = -100.0
    target = copy.deepcopy(net)
    with torch.no_grad():
        for p in target.parameters():
            p.add_(0.01)  # a lagging target: different values everywhere
    lagged = params_copy(target)
    x = torch.rand(16, 1, 6, 6)
    opt = trained(net, x)
    before = net(x).detach()
    assert redo(net, opt, x, tau=0.0, mirrors=[target]) == {"0": [2]}
    columns = torch.arange(2 * 16, 3 * 16)  # channel 2's 4x4 positions in the flattened input
    assert not net[3].weight[:, columns].any() and not opt.state[net[3].weight]["exp_avg"][:, columns].any()
    assert torch.equal(net(x).detach(), before)
    # the target got the same fresh channel and the same zero columns; everything else kept its lag
    assert torch.equal(target[0].weight[2], net[0].weight[2]) and not target[3].weight[:, columns].any()
    keep = torch.ones(4, dtype=torch.bool)
    keep[2] = False
    assert torch.equal(target[0].weight[keep], lagged["0.weight"][keep])


def test_redo_through_normalization_with_elr_keeps_the_initial_norms():
    torch.manual_seed(0)
    net = insert_norm(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)), affine=True)
    with torch.no_grad():  # a zero gain and a negative bias: the unit's normalized output is dead
        net[1].weight[[3, 7]] = 0.0
        net[1].bias[[3, 7]] = -1.0
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    elr = ELR(net, opt)
    init = dict(zip(elr.projected_names, elr.init_norms.tolist()))
    for _ in range(3):
        opt.zero_grad()
        net(X).pow(2).mean().backward()
        opt.step()
        elr.step()
    report = redo(net, opt, X, tau=0.0)
    assert report["0"] == [3, 7]
    assert net[1].weight[[3, 7]].tolist() == [1.0, 1.0] and net[1].bias[[3, 7]].tolist() == [0.0, 0.0]  # the norm's fresh gain
    assert not opt.state[net[1].weight]["exp_avg"][[3, 7]].any()
    for _ in range(2):  # training goes on: measured, projected back to the initial norms
        opt.zero_grad()
        net(X).pow(2).mean().backward()
        opt.step()
        elr.step()
    norms = dict(zip(elr._flat.names, elr._norms(elr._flat.views).tolist()))
    for name, value in init.items():
        assert norms[name] == pytest.approx(value, rel=1e-5), name
    metrics = elr.metrics()
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()) and metrics["elr/0"] > 0


def test_elr_measures_the_norm_an_intervention_left_not_the_projected_one():
    torch.manual_seed(0)
    net = insert_norm(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)), affine=False)
    opt = torch.optim.SGD(net.parameters(), lr=1e-2)
    elr = ELR(net, opt)
    opt.zero_grad()
    net(X).pow(2).mean().backward()
    opt.step()
    elr.step()  # projected: ELR knows the norms are the initial ones...
    shrink_perturb(net, opt, shrink=0.5, perturb=0.0, layers=["0"])  # ...until an intervention halves them
    opt.zero_grad()
    net(X).pow(2).mean().backward()
    opt.step()
    elr.step()
    assert elr.metrics()["param_norm/0"] == pytest.approx(0.5 * elr.init_norms[0].item(), rel=1e-5)


# -- Shrink & Perturb and reset ----------------------------------------------------------------------
def fresh_init(net: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    clone = copy.deepcopy(net)
    for m in clone.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return params_copy(clone)


def test_shrink_perturb_known_answer_and_cleared_state():
    net = mlp()
    opt = trained(net, X)
    target = copy.deepcopy(net)
    old, old_target = params_copy(net), params_copy(target)
    fresh = fresh_init(net, seed=5)  # what the same RNG draws give, module by module in order
    torch.manual_seed(5)
    report = shrink_perturb(net, opt, shrink=0.4, perturb=0.1, mirrors=[target])
    assert report == {"0": 40, "2": 72, "4": 18}
    for name, p in net.named_parameters():
        assert torch.allclose(p, 0.4 * old[name] + 0.1 * fresh[name], atol=1e-7), name
        assert torch.allclose(dict(target.named_parameters())[name], 0.4 * old_target[name] + 0.1 * fresh[name], atol=1e-7)
        assert p not in opt.state  # moments and the step count cleared: Adam starts these afresh
    opt.zero_grad()
    net(X).pow(2).mean().backward()
    opt.step()  # and it does
    assert all(opt.state[p]["step"].item() == 1 for p in net.parameters())


def test_reset_reinitializes_only_the_named_layers():
    net = mlp()
    opt = trained(net, X)
    before_state, old = state_copy(opt), params_copy(net)
    torch.manual_seed(9)
    expected = nn.Linear(8, 2)  # the layer's own initializer, from the same random draws
    torch.manual_seed(9)
    assert reset(net, opt, ["4"]) == {"4": 18}
    assert torch.equal(net[4].weight, expected.weight) and torch.equal(net[4].bias, expected.bias)
    for name, p in net.named_parameters():
        if name.startswith("4."):
            assert p not in opt.state
        else:
            assert torch.equal(p, old[name])
            for key, value in opt.state[p].items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(before_state[id(p)][key]))
    assert set(reset(net, opt, ["*"])) == {"0", "2", "4"}  # fnmatch patterns


# -- bad input ---------------------------------------------------------------------------------------
def test_bad_input_is_one_clear_error():
    net = mlp()
    opt = trained(net, X)
    with pytest.raises(ValueError, match=r"tau=1.0 is outside \[0, 1\)"):
        redo(net, opt, X, tau=1.0)
    with pytest.raises(ValueError, match="inputs has batch size 0"):
        redo(net, opt, X[:0])
    with pytest.raises(ValueError, match=r"unknown layer names \['q_net.9'\]; layers with parameters: \['0', '2', '4'\]"):
        reset(net, opt, ["q_net.9"])
    with pytest.raises(ValueError, match="give a non-empty list of layer names"):
        reset(net, opt, "4")
    other = torch.optim.Adam(nn.Linear(2, 2).parameters())
    with pytest.raises(ValueError, match=r"the optimizer does not own \['0.weight', '0.bias'"):
        redo(net, other, X, tau=0.0)
    with pytest.raises(ValueError, match="the optimizer does not own"):
        shrink_perturb(net, other)
    with pytest.raises(ValueError, match="shrink=-1 must be a number >= 0"):
        shrink_perturb(net, opt, shrink=-1)
    with pytest.raises(ValueError, match="mirror Sequential does not have the parameters"):
        redo(net, opt, X, tau=0.0, mirrors=[nn.Sequential(nn.Linear(4, 3))])
    with pytest.raises(ValueError, match="no Linear/Conv followed by an activation"):
        redo(nn.Sequential(nn.Linear(4, 2)), None, X)
