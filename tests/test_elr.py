import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from plastic_rl.elr import ELR, CusumRewarm, CyclicRewarm, projected_parameters
from plastic_rl.norm import insert_norm


def make_net(seed=0, act=nn.ReLU, affine=True):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(8, 32), act(), nn.Linear(32, 32), act(), nn.Linear(32, 3))
    return insert_norm(net, affine=affine)


def batch(seed=1, n=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def train(net, opt, elr=None, steps=20, lr_by_step=None):
    losses = []
    for t in range(steps):
        x, y = batch(seed=t)
        if lr_by_step is not None:
            for g in opt.param_groups:
                g["lr"] = lr_by_step(t)
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if elr is not None:
            elr.step(loss=loss.item())
        losses.append(loss.item())
    return losses


def joint_norm(layer):
    return torch.sqrt(layer.weight.detach().pow(2).sum() + layer.bias.detach().pow(2).sum()).item()


def test_finds_scale_invariant_layers_and_excludes_the_head():
    net = make_net()
    elr = ELR(net, torch.optim.Adam(net.parameters()))
    assert elr.layer_names == ["0", "2", "4"]
    assert elr.projected_names == ["0", "2", "0.gain", "2.gain"]
    assert ELR(net, torch.optim.Adam(net.parameters()), exclude=["2"], gains="none").projected_names == ["0"]
    assert ELR(net, torch.optim.Adam(net.parameters()), include=["4"]).projected_names == ["4"]


def test_projected_parameters_are_what_elr_projects_before_any_optimizer_exists():
    net = make_net()

    def ids(params):
        return [id(p) for p in params]

    assert ids(projected_parameters(net)) == ids([net[0].weight, net[0].bias, net[3].weight, net[3].bias, net[1].weight, net[4].weight])
    assert ids(projected_parameters(net, exclude=["2"], gains="none")) == ids([net[0].weight, net[0].bias])
    assert ids(projected_parameters(net, include=["4"])) == ids([net[6].weight, net[6].bias])
    weights = {id(p): p.detach().clone() for p in net.parameters()}
    decay = torch.optim.AdamW(
        [{"params": projected_parameters(net), "weight_decay": 0.0},
         {"params": [p for p in net.parameters() if id(p) not in set(ids(projected_parameters(net)))]}], lr=0.01
    )  # fmt: skip
    elr = ELR(net, decay)  # the same parameters, in the same order, as ELR's own choice
    assert [n for n in elr.projected_names] == ["0", "2", "0.gain", "2.gain"]
    assert all(torch.equal(p, weights[id(p)]) for p in net.parameters())  # asking changed nothing
    with pytest.raises(ValueError, match="no scale-invariant layer"):
        projected_parameters(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    with pytest.raises(ValueError, match="gains='all' is not accepted"):
        projected_parameters(net, gains="all")


def test_projection_restores_initial_norms():
    net = make_net()
    init = {i: joint_norm(net[i]) for i in (0, 3)}
    init_gain = {i: net[i + 1].weight.norm().item() for i in (0, 3)}
    head = joint_norm(net[6])
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    elr = ELR(net, opt)
    train(net, opt, elr, steps=30)
    for i in (0, 3):
        assert abs(joint_norm(net[i]) - init[i]) / init[i] < 1e-5
        assert abs(net[i + 1].weight.norm().item() - init_gain[i]) / init_gain[i] < 1e-5
    assert joint_norm(net[6]) != pytest.approx(head, rel=1e-3)  # the output layer is free


def test_every_parameter_starts_on_a_64_byte_boundary_and_the_gaps_stay_zero():
    net = make_net()  # the free head (32*3 + 3 floats) comes first in the buffer: 396 bytes, not a multiple of 64
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    elr = ELR(net, opt)
    assert {name: p.data_ptr() % 64 for name, p in net.named_parameters()} == {name: 0 for name in before}
    assert all(torch.equal(p, before[name]) for name, p in net.named_parameters())
    train(net, opt, elr, steps=5)
    flat = elr._flat.flat
    used = torch.zeros(flat.numel(), dtype=torch.bool)
    for p in net.parameters():
        start = (p.data_ptr() - flat.data_ptr()) // flat.element_size()
        used[start : start + p.numel()] = True
    assert (~used).any() and torch.all(flat[~used] == 0)  # gaps exist, and hold zeros after training
    norms = dict(zip(elr._flat.names, elr._norms(elr._flat.views).tolist()))  # a group's view spans its gaps
    assert norms["4"] == pytest.approx(joint_norm(net[6]), rel=1e-6) and norms["0"] == pytest.approx(joint_norm(net[0]), rel=1e-6)


def test_project_every():
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    elr = ELR(net, opt, project_every=3)
    init = joint_norm(net[0])
    norms = []
    for _ in range(6):
        train(net, opt, elr, steps=1)
        norms.append(abs(joint_norm(net[0]) - init) / init < 1e-5)
    assert norms == [False, False, True, False, False, True]


def test_rescaling_a_normalized_layer_does_not_change_the_output():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16, bias=False), nn.LayerNorm(16, elementwise_affine=False), nn.ReLU(), nn.Linear(16, 2))
    x = torch.randn(10, 8)
    before = net(x)
    with torch.no_grad():
        net[0].weight.mul_(3.7)
    torch.testing.assert_close(net(x), before, rtol=1e-4, atol=1e-4)  # LayerNorm's eps


def test_update_measurement_is_the_optimizer_step():
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    elr = ELR(net, opt, project=False)
    x, y = batch()
    before = copy.deepcopy(net)
    loss = nn.functional.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    grads = {i: torch.cat([net[i].weight.grad.flatten(), net[i].bias.grad.flatten()]) for i in (0, 3, 6)}
    opt.step()
    elr.step(loss)
    m = elr.metrics()
    for i, name in ((0, "0"), (3, "2"), (6, "4")):
        u = 0.1 * grads[i].norm().item()
        w = joint_norm(before[i])
        assert m[f"update_norm/{name}"] == pytest.approx(u, rel=1e-4)
        assert m[f"param_norm/{name}"] == pytest.approx(w, rel=1e-5)
        assert m[f"elr/{name}"] == pytest.approx(u / w, rel=1e-4)
    assert m["lr_factor"] == 1.0


def test_update_is_measured_before_projection():
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    elr = ELR(net, opt)
    x, y = batch()
    snapshot = torch.cat([net[0].weight.detach().flatten(), net[0].bias.detach().flatten()]).clone()
    loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    stepped = torch.cat([net[0].weight.detach().flatten(), net[0].bias.detach().flatten()]).clone()
    elr.step(loss)
    assert elr.metrics()["update_norm/0"] == pytest.approx((stepped - snapshot).norm().item(), rel=1e-4)


def test_param_norm_is_the_norm_the_step_started_from():
    net = make_net()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for project_every in (1, 2):
        elr = ELR(net, opt, project_every=project_every)
        for _t in range(4):
            start = {name: joint_norm(net[i]) for name, i in (("0", 0), ("2", 3), ("4", 6))}
            train(net, opt, elr, steps=1)
            m = elr.metrics()
            for name, value in start.items():
                assert m[f"param_norm/{name}"] == pytest.approx(value, rel=1e-5)
        elr.remove()


def test_measure_every():
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    elr = ELR(net, opt, measure_every=3)
    seen = []
    for _t in range(6):
        train(net, opt, elr, steps=1)
        seen.append(elr.metrics()["update_norm/0"])
    assert seen[0] == seen[1] == 0.0 and seen[2] > 0 and seen[3] == seen[4] == seen[2] and seen[5] not in (0.0, seen[2])


def test_measure_next_with_measure_every_zero():
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    elr = ELR(net, opt, measure_every=0)
    train(net, opt, elr, steps=2)
    assert elr.metrics()["update_norm/0"] == 0.0  # never measured
    elr.measure_next()
    train(net, opt, elr, steps=1)
    measured = elr.metrics()["update_norm/0"]
    train(net, opt, elr, steps=2)
    assert measured > 0 and elr.metrics()["update_norm/0"] == measured  # only the requested step


def test_measuring_alone_does_not_change_training():
    a, b = make_net(), make_net()
    opt_a, opt_b = torch.optim.Adam(a.parameters(), lr=1e-2), torch.optim.Adam(b.parameters(), lr=1e-2)
    elr = ELR(b, opt_b, project=False)
    assert train(a, opt_a, steps=15) == train(b, opt_b, elr, steps=15)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_doubling_the_weight_norm_halves_the_adam_elr():
    # Same function, twice the parameter norm in the scale-invariant layers, Adam, no projection.
    net = make_net(affine=False)
    big = copy.deepcopy(net)
    with torch.no_grad():
        for i in (0, 3):
            big[i].weight.mul_(2)
            big[i].bias.mul_(2)
    runs = []
    for model in (net, big):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        elr = ELR(model, opt, project=False)
        ratios = []
        for _t in range(10):
            train(model, opt, elr, steps=1)
            ratios.append([elr.metrics()["elr/0"], elr.metrics()["elr/2"]])
        runs.append(np.array(ratios))
    ratio = runs[1] / runs[0]
    assert np.all(np.abs(ratio - 0.5) < 0.05), ratio


def test_with_projection_the_elr_follows_the_schedule():
    # A stationary stream (fresh random batches, random labels) so Adam's normalized step is steady;
    # then with projection ELR / lr_factor is the same in every cycle: the lr alone sets the ELR.
    net = make_net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.99))
    elr = ELR(net, opt, schedule=CyclicRewarm(period=100, warmup=20, peak=3.0, floor=0.3))
    g = torch.Generator().manual_seed(0)
    measured, factors = [], []
    for _t in range(600):
        x, y = torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        elr.step(loss)
        measured.append(elr.metrics()["elr/2"])
        factors.append(elr.metrics()["lr_factor"])
    measured, factors = np.array(measured[100:]), np.array(factors[100:])  # skip Adam's first cycle
    assert np.corrcoef(measured, factors)[0, 1] > 0.95
    per_cycle = (measured / factors).reshape(5, 100).mean(axis=1)
    assert per_cycle.max() / per_cycle.min() < 1.25, per_cycle


def test_lr_factor_multiplies_the_owners_lr_and_never_replaces_it():
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    schedule = CyclicRewarm(period=10, warmup=4, peak=2.0, floor=0.5)
    elr = ELR(net, opt, schedule=schedule, project=False)
    seen = []
    opt.register_step_pre_hook(lambda o, a, k: seen.append(o.param_groups[0]["lr"]))
    owner = [0.1, 0.1, 0.05, 0.05, 0.2]
    expected = []
    for _t, lr in enumerate(owner):
        opt.param_groups[0]["lr"] = lr  # what SB3 does at every train()
        expected.append(lr * schedule.factor())
        train(net, opt, elr, steps=1)
        assert opt.param_groups[0]["lr"] == lr  # the owner's value is back after the step
    assert seen == pytest.approx(expected)
    assert [e / o for e, o in zip(expected, owner)] == pytest.approx([0.875, 1.25, 1.625, 2.0, 2.0])


def test_rewarm_restarts_the_schedule():
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    elr = ELR(net, opt, schedule=CyclicRewarm(period=100, warmup=10, peak=2.0, floor=0.5))
    first = elr.lr_factor
    train(net, opt, elr, steps=40)
    assert elr.lr_factor != first
    elr.rewarm()
    assert elr.lr_factor == first
    with pytest.raises(RuntimeError, match="nothing to re-warm"):
        ELR(net, torch.optim.SGD(net.parameters(), lr=0.1)).rewarm()


def test_cusum_schedule_sees_the_loss():
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    schedule = CusumRewarm(burn_in=10)
    elr = ELR(net, opt, schedule=schedule)
    train(net, opt, elr, steps=12)
    assert schedule.n == 10 and schedule.steps == 12


def test_state_dict_round_trip_continues_identically():
    def setup():
        net = make_net()
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        return net, opt, ELR(net, opt, schedule=CusumRewarm(warmup=5, decay=20, burn_in=5))

    net, opt, elr = setup()
    train(net, opt, elr, steps=10)
    state = copy.deepcopy((net.state_dict(), opt.state_dict(), elr.state_dict()))
    tail = train(net, opt, elr, steps=10)

    net2, opt2, elr2 = setup()
    with torch.no_grad():  # a different initial norm: load must restore the recorded one
        net2[0].weight.mul_(3)
    net2.load_state_dict(state[0])
    opt2.load_state_dict(state[1])
    elr2.load_state_dict(state[2])
    assert elr2.state_dict() == state[2]
    assert train(net2, opt2, elr2, steps=10) == tail
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.equal(a, b)


def test_load_state_dict_rejects_a_different_model():
    net = make_net()
    elr = ELR(net, torch.optim.Adam(net.parameters()))
    other = ELR(net, torch.optim.Adam(net.parameters()), exclude=["2"])
    with pytest.raises(ValueError, match="projects"):
        other.load_state_dict(elr.state_dict())


def test_follows_parameters_re_pointed_by_model_to():
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    elr = ELR(net, opt)
    init = elr.init_norms[0].item()
    net.to(torch.float64).to(torch.float32)  # sets every param.data to a new tensor
    train(net, opt, elr, steps=3)
    assert abs(joint_norm(net[0]) - init) / init < 1e-5
    assert elr.metrics()["update_norm/0"] > 0


def test_follows_parameters_replaced_by_load_state_dict_assign():
    net = make_net()
    elr = ELR(net, torch.optim.SGD(net.parameters(), lr=0.5))
    init = elr.init_norms[0].item()
    net.load_state_dict(make_net(seed=5).state_dict(), assign=True)  # new Parameter objects
    elr.remove()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    elr2 = ELR(net, opt)
    elr2.load_state_dict(elr.state_dict())
    train(net, opt, elr2, steps=2)
    assert abs(joint_norm(net[0]) - init) / init < 1e-5
    # and the original ELR, driven by hand, projects the new parameters too
    with torch.no_grad():
        net[0].weight.mul_(2)
    elr.step()
    assert abs(joint_norm(net[0]) - init) / init < 1e-5


def test_non_finite_loss_is_an_error():
    net = make_net()
    elr = ELR(net, torch.optim.SGD(net.parameters(), lr=0.1))
    with pytest.raises(FloatingPointError, match="non-finite loss \\(nan\\)"):
        elr.step(loss=float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite loss \\(inf\\)"):
        elr.step(loss=torch.tensor(float("inf")))


def test_non_finite_weight_at_projection_names_the_layer():
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    elr = ELR(net, opt)
    with torch.no_grad():
        net[3].weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="layer '2' has a non-finite parameter norm"):
        elr.step()
    with torch.no_grad():
        net[3].weight.zero_()
        net[3].bias.zero_()
    with pytest.raises(FloatingPointError, match="layer '2' has a zero parameter norm"):
        elr.step()


def test_bad_construction():
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="has no Linear/Conv layer"):
        ELR(nn.Sequential(nn.ReLU()), opt)
    with pytest.raises(ValueError, match="no scale-invariant layer"):
        ELR(nn.Sequential(nn.Linear(3, 3), nn.ReLU()), opt)
    with pytest.raises(ValueError, match="project_every=0"):
        ELR(net, opt, project_every=0)
    with pytest.raises(ValueError, match="gains='decay' is not accepted; accepted: project, none"):
        ELR(net, opt, gains="decay")
    with pytest.raises(ValueError, match=r"include names unknown layers \['nope'\]"):
        ELR(net, opt, include=["nope"])
    with pytest.raises(TypeError, match="schedule must be"):
        ELR(net, opt, schedule="cyclic")
    # a plain model can still be measured
    plain = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    ELR(plain, torch.optim.SGD(plain.parameters(), lr=0.1), project=False)


def test_metrics_are_finite_and_named_after_layers():
    net = make_net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    elr = ELR(net, opt, schedule=CyclicRewarm(period=50))
    train(net, opt, elr, steps=3)
    m = elr.metrics()
    assert set(m) == {"lr_factor"} | {f"{k}/{n}" for k in ("elr", "param_norm", "update_norm") for n in ("0", "2", "4")}
    assert all(math.isfinite(v) and v >= 0 for v in m.values())
