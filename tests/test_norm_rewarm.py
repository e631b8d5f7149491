"""``project="on-rewarm"``/``"from-rewarm"`` (preset ``norm-rewarm``): the norm grows while the task holds; a
re-warm shrinks it back with the optimizer state and target networks, leaving the function unchanged, and with
``"from-rewarm"`` projection holds it there from then on."""

import copy

import numpy as np
import pytest
import torch
from test_elr import batch, joint_norm, make_net, train
from torch import nn

from plastic_rl.elr import ELR, CusumRewarm, CyclicRewarm
from plastic_rl.rescale import STATE_POWERS, rescale_state, state_powers


def grown(opt_cls=torch.optim.Adam, steps=60, lr=3e-2, **kwargs):
    """A normalized net trained ``steps`` without projection: its hidden layers' norms have grown."""
    net = make_net(affine=False)
    opt = opt_cls(net.parameters(), lr=lr, **kwargs)
    elr = ELR(net, opt, project="on-rewarm")
    train(net, opt, elr, steps=steps)
    return net, opt, elr


def one_step(net, opt, seed=999):
    """The change one optimizer step makes to every parameter (same batch for every caller)."""
    before = [p.detach().clone() for p in net.parameters()]
    x, y = batch(seed=seed)
    loss = nn.functional.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return [p.detach() - b for p, b in zip(net.parameters(), before)]


def test_norms_grow_while_the_task_holds_and_a_rewarm_shrinks_them_back():
    net, opt, elr = grown()
    names = elr.projected_names
    modules = dict(net.named_modules())
    before = [joint_norm(modules[n]) for n in names]
    init = elr.init_norms.tolist()
    assert all(b > 1.1 * i for b, i in zip(before, init)), (before, init)  # not projected while training
    x, _ = batch(seed=5)
    out = net(x).detach()
    factors = elr.restore_norms()
    assert list(factors) == names
    assert [joint_norm(modules[n]) for n in names] == pytest.approx(init, rel=1e-5)
    assert [factors[n] for n in names] == pytest.approx([i / b for i, b in zip(init, before)], rel=1e-5)
    torch.testing.assert_close(net(x).detach(), out, rtol=1e-3, atol=1e-4)  # scale-invariant: same function


@pytest.mark.parametrize(
    "opt_cls, kwargs",
    [(torch.optim.Adam, {}), (torch.optim.RMSprop, {"centered": True}), (torch.optim.AdamW, {"amsgrad": True, "weight_decay": 0.0})],
)
def test_after_a_rewarm_an_adaptive_optimizer_takes_the_step_it_took_before(opt_cls, kwargs):
    """Rescaled state: the next Adam/RMSprop step is the same step (in weight units) as without the shrink,
    so each layer's ELR rises by exactly 1/factor; without rescaling the state it would be larger still."""
    net, opt, elr = grown(opt_cls, **kwargs)
    twin = copy.deepcopy(net)
    twin_opt = opt_cls(twin.parameters(), lr=opt.param_groups[0]["lr"], **kwargs)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # its own tensors: load_state_dict may share them
    factors = elr.restore_norms()
    mine, theirs = one_step(net, opt), one_step(twin, twin_opt)
    for (name, _), u, v in zip(net.named_parameters(), mine, theirs):
        torch.testing.assert_close(u, v, rtol=2e-2, atol=1e-6, msg=name)
    assert min(factors.values()) < 0.9  # the shrink was real


def test_after_a_rewarm_sgd_steps_one_over_factor_larger():
    """SGD's step is lr x gradient, and a shrunk scale-invariant layer's gradient is 1/factor larger."""
    net, opt, elr = grown(torch.optim.SGD, lr=0.5, momentum=0.9)
    twin = copy.deepcopy(net)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.5, momentum=0.9)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    factors = elr.restore_norms()
    mine, theirs = one_step(net, opt), one_step(twin, twin_opt)
    params = dict(zip([n for n, _ in net.named_parameters()], zip(mine, theirs)))
    for layer, factor in factors.items():
        for kind in ("weight", "bias"):
            u, v = params[f"{layer}.{kind}"]
            torch.testing.assert_close(u, v / factor, rtol=1e-3, atol=1e-7)


def test_mirrors_get_the_same_factors_and_a_mismatched_mirror_is_refused():
    net = make_net(affine=False)
    target = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=3e-2)
    elr = ELR(net, opt, project="on-rewarm", mirrors=[target])
    train(net, opt, elr, steps=40)
    with torch.no_grad():  # a target lagging behind the online net
        for p, q in zip(net.parameters(), target.parameters()):
            q.copy_(0.5 * p + 0.5 * q)
    mirrored = {n: joint_norm(m) for n, m in target.named_modules() if n in elr.projected_names}
    head = target[-1].weight.detach().clone()
    factors = elr.restore_norms()
    for name, module in target.named_modules():
        if name in factors:
            assert joint_norm(module) == pytest.approx(mirrored[name] * factors[name], rel=1e-5)
    torch.testing.assert_close(target[-1].weight, head)  # the head is not scale-invariant: left alone
    with pytest.raises(ValueError, match="mirror Sequential has no layer"):
        ELR(net, opt, project="on-rewarm", mirrors=[nn.Sequential(nn.Linear(8, 5))])


def test_schedule_restarts_shrink_the_norms_back():
    net = make_net(affine=False)
    opt = torch.optim.Adam(net.parameters(), lr=3e-2)
    elr = ELR(net, opt, project="on-rewarm", schedule=CyclicRewarm(period=25, warmup=0, peak=1.0, floor=1.0))
    modules = dict(net.named_modules())
    init = elr.init_norms.tolist()
    train(net, opt, elr, steps=24)
    assert joint_norm(modules[elr.projected_names[0]]) > 1.05 * init[0]
    assert elr.rewarms == 0
    train(net, opt, elr, steps=1)  # the 25th step ends the cycle
    assert [joint_norm(modules[n]) for n in elr.projected_names] == pytest.approx(init, rel=1e-5)
    assert elr.rewarms == 1
    cusum = CusumRewarm(warmup=0, decay=0, burn_in=2)
    elr2 = ELR(net, opt, project="on-rewarm", schedule=cusum)
    train(net, opt, elr2, steps=10)
    grown_norm = joint_norm(modules[elr2.projected_names[0]])
    cusum.alarms.append(cusum.steps)  # what an alarm records (the detector itself is tested in test_schedules)
    elr2.step(loss=1.0)
    assert joint_norm(modules[elr2.projected_names[0]]) == pytest.approx(elr2.init_norms[0].item(), rel=1e-5) != grown_norm


def test_rewarm_without_a_schedule_restores_and_without_either_is_refused():
    net, opt, elr = grown()
    elr.rewarm()
    assert elr.rewarms == 1
    modules = dict(net.named_modules())
    assert [joint_norm(modules[n]) for n in elr.projected_names] == pytest.approx(elr.init_norms.tolist(), rel=1e-5)
    plain = ELR(make_net(), torch.optim.Adam(make_net().parameters()), project=True)
    with pytest.raises(RuntimeError, match=r"nothing to re-warm: schedule=None, project=True; give a Schedule or project in"):
        plain.rewarm()


@pytest.mark.parametrize("how", ["rewarm", "cyclic restart"])
def test_from_rewarm_grows_until_the_first_rewarm_and_projects_every_step_after_it(how):
    net = make_net(affine=False)
    opt = torch.optim.Adam(net.parameters(), lr=3e-2)
    schedule = CyclicRewarm(period=40, warmup=0, peak=1.0, floor=1.0) if how == "cyclic restart" else None
    elr = ELR(net, opt, project="from-rewarm", schedule=schedule)
    modules = dict(net.named_modules())
    norms = lambda: [joint_norm(modules[n]) for n in elr.projected_names]  # noqa: E731
    init = elr.init_norms.tolist()
    train(net, opt, elr, steps=39)
    assert not elr.projecting and elr.rewarms == 0
    assert all(n > 1.1 * i for n, i in zip(norms(), init))  # not projected while the task holds
    x, _ = batch(seed=5)
    out = net(x).detach()
    if how == "rewarm":
        elr.rewarm()
    else:
        train(net, opt, elr, steps=1)  # the 40th step ends the cycle
    assert elr.projecting and elr.rewarms == 1
    assert norms() == pytest.approx(init, rel=1e-5)
    if how == "rewarm":
        torch.testing.assert_close(net(x).detach(), out, rtol=1e-3, atol=1e-4)  # the shrink changed no output
    train(net, opt, elr, steps=30)
    assert norms() == pytest.approx(init, rel=1e-5)  # held there at every step since
    state = elr.state_dict()
    assert state["project"] == "from-rewarm" and state["projecting"] is True
    twin = ELR(copy.deepcopy(net), torch.optim.Adam(net.parameters()), project="from-rewarm", schedule=copy.deepcopy(schedule))
    assert not twin.projecting
    twin.load_state_dict(state)
    assert twin.projecting and twin.project == "from-rewarm"
    legacy = {k: v for k, v in state.items() if k != "projecting"}  # a state saved before the flag: never re-warmed
    twin.load_state_dict({**legacy, "project": "on-rewarm"})
    assert not twin.projecting


def test_on_rewarm_leaves_gains_to_the_optimizer():
    net = make_net(affine=True)
    elr = ELR(net, torch.optim.Adam(net.parameters()), project="on-rewarm", gains="project")
    assert not any(name.endswith(".gain") for name in elr.projected_names)
    assert elr.projected_names  # the hidden layers still are


def test_bad_project_is_refused_and_an_unknown_optimizers_state_restarts():
    net = make_net()
    with pytest.raises(ValueError, match=r"project='sometimes' is not accepted; accepted: True, False, 'on-rewarm', 'from-rewarm'"):
        ELR(net, torch.optim.Adam(net.parameters()), project="sometimes")
    from plastic_rl.agents.config import PlasticityConfig

    with pytest.raises(ValueError, match=r"project='from_rewarm' is not accepted; accepted: True, False, 'on-rewarm', 'from-rewarm'"):
        PlasticityConfig(project="from_rewarm")
    with pytest.raises(ValueError, match=r"project='from-rewarm' needs norm='layer' or 'rms'"):
        PlasticityConfig(norm=None, project="from-rewarm")

    class Mine(torch.optim.Optimizer):  # none of the optimizers rescale.STATE_POWERS knows
        def __init__(self, params):
            super().__init__(params, {"lr": 0.01})

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    state = self.state[p]
                    state["avg"] = state.get("avg", torch.zeros_like(p)) * 0.9 + p.grad
                    p.sub_(group["lr"] * state["avg"])

    with pytest.warns(UserWarning, match="optimizer Mine: the units of its state are unknown, so a re-warm restarts"):
        elr = ELR(net, opt := Mine(net.parameters()), project="on-rewarm")
    train(net, opt, elr, steps=3)
    factors = elr.restore_norms()
    modules = dict(net.named_modules())
    for layer in factors:
        assert all(p not in opt.state for p in modules[layer].parameters())  # restarted
    assert net[-1].weight in opt.state  # the head was not rescaled: its state stays
    train(net, opt, elr, steps=1)  # and it trains on

    class MyAdam(torch.optim.Adam):
        pass

    assert state_powers(MyAdam(net.parameters())) == STATE_POWERS[torch.optim.Adam]


def test_rescale_state_units():
    p = nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.full((3,), 2.0)
    opt.step()
    m, v = opt.state[p]["exp_avg"].clone(), opt.state[p]["exp_avg_sq"].clone()
    step = opt.state[p]["step"].clone()
    rescale_state(opt, [p], 0.5)
    torch.testing.assert_close(opt.state[p]["exp_avg"], m * 2)
    torch.testing.assert_close(opt.state[p]["exp_avg_sq"], v * 4)
    torch.testing.assert_close(opt.state[p]["step"], step)
    fresh = nn.Parameter(torch.ones(2))
    rescale_state(torch.optim.Adam([fresh]), [fresh], 0.5)  # no state yet: nothing to do, no error


def test_state_dict_round_trip_keeps_the_mode_and_the_restart_count():
    net, opt, elr = grown()
    elr.schedule = None
    state = elr.state_dict()
    assert state["project"] == "on-rewarm"
    other = ELR(copy.deepcopy(net), torch.optim.Adam(net.parameters()), project="on-rewarm")
    other.load_state_dict(state)
    assert other.project == "on-rewarm" and other.init_norms.tolist() == elr.init_norms.tolist()
    cyc = ELR(net, opt, project="on-rewarm", schedule=CyclicRewarm(period=10, warmup=0))
    train(net, opt, cyc, steps=25)
    again = ELR(copy.deepcopy(net), torch.optim.Adam(net.parameters()), project="on-rewarm", schedule=CyclicRewarm(period=10, warmup=0))
    again.load_state_dict(cyc.state_dict())
    assert again._restarts == cyc.schedule.restarts() == 2  # a reload is not a restart


def test_between_rewarms_the_default_trains_the_unprojected_normalized_network():
    """What docs/elr_rule.md's traces and the panel's ablation rely on: same seed, same parameters."""
    from plastic_rl.agents import PlasticDQN

    from helpers import same_parameters

    kwargs = dict(learning_starts=100, learning_rate=3e-3, seed=0, buffer_size=2000)
    default = PlasticDQN("CartPole-v1", **kwargs).learn(600)
    unprojected = PlasticDQN("CartPole-v1", plasticity={"preset": "nap", "project": False}, **kwargs).learn(600)
    assert same_parameters(default, unprojected)
    assert not same_parameters(default, PlasticDQN("CartPole-v1", plasticity="nap", **kwargs).learn(600))  # projection would differ


def test_the_default_agent_rewarms_by_shrinking_with_its_target_network():
    """PlasticDQN's default: norms grow while training; model.plasticity.rewarm() shrinks q_net and
    q_net_target by the same factors, and the Q-values do not change."""
    from plastic_rl.agents import PlasticDQN
    from plastic_rl.agents.config import DEFAULT_PRESET

    assert DEFAULT_PRESET == "norm-rewarm"
    model = PlasticDQN("CartPole-v1", learning_starts=100, learning_rate=3e-3, target_update_interval=1, seed=0, buffer_size=2000)
    model.learn(1200)
    elr = model.plasticity.elrs[model.plasticity.primary]
    q, target = model.policy.q_net, model.policy.q_net_target
    names = elr.projected_names
    norms = lambda net: [joint_norm(dict(net.named_modules())[n]) for n in names]  # noqa: E731
    grown_q, grown_t = norms(q), norms(target)
    assert all(g > 1.02 * i for g, i in zip(grown_q, elr.init_norms.tolist()))
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(16, 4)), dtype=torch.float32)
    with torch.no_grad():
        before, before_t = q(obs), target(obs)
    model.plasticity.rewarm()
    assert norms(q) == pytest.approx(elr.init_norms.tolist(), rel=1e-5)
    assert norms(target) == pytest.approx([t * i / g for t, i, g in zip(grown_t, elr.init_norms.tolist(), grown_q)], rel=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(q(obs), before, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(target(obs), before_t, rtol=1e-3, atol=1e-4)
    model.learn(600, reset_num_timesteps=False)  # trains on from there: projected at every step, the lr untouched
    assert norms(q) == pytest.approx(elr.init_norms.tolist(), rel=1e-5)
    assert elr.projecting and model.plasticity.lr_factor == 1.0
