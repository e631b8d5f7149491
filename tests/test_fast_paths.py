"""Issue 24's speed paths compute what the slow ones did: unchecked distributions give the same values,
measuring the ELR once per log write logs a fresh measurement at every write, and the projection between
measurements moves the parameters exactly as the measured one, and A2C's foreach RMSprop steps as SB3's does."""

from __future__ import annotations

import copy
import csv

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.distributions import make_proba_distribution
from stable_baselines3.common.logger import configure
from torch import distributions as td
from torch import nn

from plastic_rl.agents import PlasticA2C, PlasticDQN, PlasticPPO, PlasticSAC
from plastic_rl.agents.distributions import UNCHECKED, unchecked
from plastic_rl.elr import ELR
from plastic_rl.flat_params import DOT_ABOVE, GRAIN, Rescale, padded_groups, strided_batches
from plastic_rl.norm import insert_norm

SPACES = {
    "Discrete": gym.spaces.Discrete(4),
    "MultiDiscrete": gym.spaces.MultiDiscrete([3, 2]),
    "MultiBinary": gym.spaces.MultiBinary(3),
    "Box": gym.spaces.Box(-1, 1, (2,)),
}


@pytest.mark.parametrize("space", SPACES)
def test_unchecked_distributions_give_the_same_values(space):
    default = td.Distribution._validate_args
    checked = make_proba_distribution(SPACES[space])
    fast = unchecked(make_proba_distribution(SPACES[space]))
    assert type(fast) is UNCHECKED[type(checked)]
    generator = torch.Generator().manual_seed(0)
    params = torch.randn(5, sum(SPACES[space].nvec) if space == "MultiDiscrete" else int(np.prod(SPACES[space].shape or (4,))),
                         generator=generator)  # fmt: skip
    args = (params, torch.zeros(2)) if space == "Box" else (params,)  # DiagGaussian: mean and log std
    checked.proba_distribution(*args)
    fast.proba_distribution(*args)
    torch.manual_seed(1)
    actions = checked.sample()
    torch.manual_seed(1)
    assert torch.equal(fast.sample(), actions)
    assert torch.equal(fast.log_prob(actions), checked.log_prob(actions))
    assert torch.equal(fast.entropy(), checked.entropy()) and torch.equal(fast.mode(), checked.mode())
    inner = fast.distribution if isinstance(fast.distribution, list) else [fast.distribution]
    assert all(d._validate_args is False for d in inner)
    assert td.Distribution._validate_args is default  # torch's global default is back


def test_normalized_policies_skip_the_checks_and_none_keeps_sb3s():
    assert type(PlasticPPO("CartPole-v1").policy.action_dist).__name__ == "UncheckedCategorical"
    assert type(PlasticPPO("CartPole-v1", plasticity="none").policy.action_dist).__name__ == "CategoricalDistribution"
    assert type(PlasticSAC("Pendulum-v1").actor.action_dist).__name__ == "UncheckedSquashedDiagGaussian"


def test_a_diverged_policy_still_stops_with_an_error():
    """Without torch's checks a NaN still stops training: sampling refuses NaN probabilities."""
    model = PlasticPPO("CartPole-v1", n_steps=64, batch_size=64, seed=0)
    with torch.no_grad():
        model.policy.action_net.weight.fill_(float("nan"))
    with pytest.raises(RuntimeError, match="probability tensor contains either `inf`, `nan` or element < 0"):
        model.learn(64)


def test_every_log_write_shows_a_fresh_elr_measured_once_per_write(tmp_path):
    model = PlasticDQN("CartPole-v1", learning_starts=100, train_freq=1, seed=0)
    primary = model.plasticity.elrs[model.plasticity.primary]
    calls = {"measure": 0, "train": 0}
    measure_next, train = primary.measure_next, model.train

    def counted_measure() -> None:
        calls["measure"] += 1
        measure_next()

    def counted_train(*args, **kwargs) -> None:
        calls["train"] += 1
        train(*args, **kwargs)

    primary.measure_next, model.train = counted_measure, counted_train  # type: ignore[method-assign]
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(1500, log_interval=1)
    rows = list(csv.DictReader((tmp_path / "progress.csv").open()))
    trained = [r for r in rows if r.get("train/n_updates")]  # the writes after training started
    assert len(trained) >= 5 and all(r["plasticity/elr"] for r in trained)
    values = [float(r["plasticity/elr"]) for r in trained]
    assert len(set(values)) == len(values)  # a new measurement at every write, not a stale one
    # one measurement per write (the first train() after it), not one per train() call
    assert calls["measure"] <= len(rows) + 1 < calls["train"] // 5


def _mlp(widths: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


NETS = {
    "plain": lambda: _mlp((5, 32, 32, 2)),  # two projected groups unalike: padded to one length, one batch
    "wide": lambda: _mlp((5, 16, 2100, 2)),  # the second group over a grain: not padded, each rescaled alone
    "large": lambda: _mlp((5, 600, 512, 2)),  # the second group over DOT_ABOVE: its norm by dot
    "towers": lambda: nn.ModuleDict({"pi": _mlp((5, 32, 32, 2)), "vf": _mlp((5, 32, 32, 1))}),  # SB3's twin towers: batched
    "stack": lambda: _mlp((5, 32, 32, 32, 32, 2)),  # equal hidden layers side by side: batched
}


def _trained_twins(dtype: torch.dtype, affine: bool, net_kind: str = "plain", steps: int = 40) -> tuple[nn.Module, nn.Module, ELR]:
    """Two copies of one normalized MLP trained by Adam on the same gradients: one measured at every step
    (projection from the measuring pass's norms), one never measured (``ELR._project_views``); halfway, both are moved."""
    torch.manual_seed(0)
    net = insert_norm(NETS[net_kind](), affine=affine).to(dtype)
    twins, elrs = [copy.deepcopy(net) for _ in range(2)], []
    for model, every in zip(twins, (1, 0)):
        opt = torch.optim.Adam(model.parameters(), lr=3e-2)
        elrs.append((opt, ELR(model, opt, measure_every=every)))
    generator = torch.Generator().manual_seed(1)
    for step in range(steps):
        if step == steps // 2:  # re-point every parameter (new storage, same Parameter objects): ELR rebuilds its buffer
            for model in twins:
                model.to(torch.float16).to(dtype)
        grads = [torch.randn(p.shape, generator=generator, dtype=dtype) for p in net.parameters()]
        for model, (opt, elr) in zip(twins, elrs):
            for p, g in zip(model.parameters(), grads):
                p.grad = g.clone()
            opt.step()
            elr.step(loss=0.5)
    return twins[0], twins[1], elrs[1][1]


@pytest.mark.parametrize(
    "dtype,affine,net_kind",
    [(torch.float32, False, "plain"), (torch.float32, True, "plain"), (torch.float64, False, "plain"), (torch.float64, True, "plain"),
     (torch.float32, False, "towers"), (torch.float32, True, "towers"), (torch.float32, False, "stack"), (torch.float32, False, "wide"),
     (torch.float32, False, "large"), (torch.float64, False, "large")],
)  # fmt: skip
def test_projection_between_measurements_is_the_measured_projection(dtype, affine, net_kind):
    measured, unmeasured, elr = _trained_twins(dtype, affine, net_kind)
    if dtype == torch.float32:  # the batched rows were taken, except where padding would not pay
        assert elr._rescale is not None and any(rows.dim() == 2 for rows in elr._rescale._rows) is (net_kind not in ("wide", "large"))
        assert any(elr._rescale._dots) is (net_kind == "large") and (net_kind != "large" or 600 * 512 > DOT_ABOVE)
    assert (elr._rescale is not None) is (dtype == torch.float32)  # both paths are taken
    for a, b in zip(measured.parameters(), unmeasured.parameters()):
        assert torch.equal(a, b)  # bit for bit: the same norms and factors, kept as 0-d tensors
    norms = torch.stack([torch.linalg.vector_norm(v.double()) for v in elr._flat.views[elr._first_projected :]])
    torch.testing.assert_close(norms, elr.init_norms.double(), rtol=1e-5, atol=0)  # and it still projects


def test_strided_batches_join_equal_views_at_one_spacing_only():
    buffer = torch.zeros(1000)
    views = [buffer[0:10], buffer[10:50], buffer[100:110], buffer[110:150], buffer[200:210], buffer[300:310], buffer[310:311]]
    # 0, 2, 4 are 10 long at spacing 100; 5 is 10 long at spacing 100 from 4 too; 1, 3 40 long at spacing 100
    assert strided_batches(views) == [[0, 2, 4, 5], [1, 3], [6]]
    uneven = [buffer[0:10], buffer[20:30], buffer[50:60]]  # spacings 20 then 30: a new batch at the break
    assert strided_batches(uneven) == [[0, 1], [2]]
    overlapping = [buffer[0:10], buffer[5:15]]  # rows may not overlap
    assert strided_batches(overlapping) == [[0], [1]]
    big = [buffer[0:100], buffer[100:200]]
    assert strided_batches(big, most=99) == [[0], [1]]  # over a thread's grain: alone
    assert strided_batches(big, most=100) == [[0, 1]]


def test_padded_groups_take_the_small_groups_while_the_zeros_stay_within_a_grain():
    # the first two groups are not rescaled; the rest are padded to the longest small one
    assert padded_groups([130, 65, 320, 4160, 320, 4160], first=2) == ([2, 3, 4, 5], 4160)
    assert padded_groups([10, 100, 100], 0, most=100) == ([0, 1, 2], 100)  # 90 zeros: within the grain
    assert padded_groups([10, 100, 100], 0, most=50) == ([], 0)  # a group over the grain is never padded
    assert padded_groups([5, 50, 50, 40], 0, most=50) == ([1, 2, 3], 50)  # 45 more zeros would pass the grain
    assert padded_groups([200, 50], 0, most=100) == ([], 0)  # one small group: nothing to batch
    assert padded_groups([50, 50], 2) == ([], 0)


def test_sb3s_mlp_projects_in_one_batch_and_computes_what_the_unpadded_layout_does():
    """SB3's PPO MLP: 4 projected groups of 320 and 4,160 elements become 4 padded rows of one view (one norm op and one
    scaling op); training on the padded layout and on the unpadded one moves the parameters alike, the pads stay zero."""
    from plastic_rl.tools.bench_core import sb3_policy

    policy = sb3_policy("mlp")
    twins, elrs = [copy.deepcopy(policy) for _ in range(2)], []
    for model in twins:
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        elrs.append((opt, ELR(model, opt, measure_every=0)))
    flat = elrs[1][1]._flat
    flat.pad_from = len(flat.names)  # the unpadded layout
    flat.build()
    padded = elrs[0][1]._flat
    lengths = [b - a for a, b in padded.bounds[elrs[0][1]._first_projected :]]
    assert lengths == [4160] * 4 and padded.flat.numel() > flat.flat.numel()
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        grads = [torch.randn(p.shape, generator=generator) for p in policy.parameters()]
        for model, (opt, elr) in zip(twins, elrs):
            for p, g in zip(model.parameters(), grads):
                p.grad = g.clone()
            opt.step()
            elr.step(loss=0.5)
    assert [rows.shape for rows in elrs[0][1]._rescale._rows] == [(4, 4160)]
    assert len(elrs[1][1]._rescale._rows) == 2  # unpadded: a batch per length
    for a, b in zip(*(model.parameters() for model in twins)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    used = torch.zeros(padded.flat.numel(), dtype=torch.bool)
    for p in twins[0].parameters():
        start = (p.data_ptr() - padded.flat.data_ptr()) // padded.flat.element_size()
        used[start : start + p.numel()] = True
    assert (~used).sum() > 2 * (4160 - 320) and torch.all(padded.flat[~used] == 0)  # the pads hold zeros after training
    assert GRAIN >= 4160


def test_rescale_batched_is_each_view_scaled_alone():
    generator = torch.Generator().manual_seed(0)
    buffer = torch.randn(1000, generator=generator)
    bounds = [(0, 10), (10, 50), (100, 110), (110, 150), (200, 210), (300, 310), (310, 311)]
    views = [buffer[a:b] for a, b in bounds]
    targets = torch.rand(len(views), generator=generator) + 0.5
    expected = buffer.clone()
    for (a, b), target in zip(bounds, targets):
        expected[a:b] *= target / torch.linalg.vector_norm(expected[a:b])
    rescale = Rescale([buffer[:0], *views], 1, targets)
    assert rescale() is True
    assert torch.equal(buffer, expected)  # bit for bit, gaps untouched
    buffer[110:150] = 0.0  # a zero norm: nothing scaled
    before = buffer.clone()
    assert rescale() is False
    assert torch.equal(buffer, before)


def test_a2cs_foreach_rmsprop_takes_sb3s_steps_exactly():
    """PlasticA2C's normalized policy builds RMSprop with foreach=True: bit-identical to the single-tensor one."""
    model = PlasticA2C("CartPole-v1", seed=0)
    assert (
        model.policy.optimizer.defaults["foreach"] is True
        and PlasticA2C("CartPole-v1", plasticity="none").policy.optimizer.defaults["foreach"] is None
    )
    twins = [copy.deepcopy(model.policy) for _ in range(2)]
    opts = [torch.optim.RMSprop(p.parameters(), **{**model.policy.optimizer.defaults, "foreach": f}) for p, f in zip(twins, (True, False))]
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        grads = [torch.randn(p.shape, generator=generator) for p in twins[0].parameters()]
        for policy, opt in zip(twins, opts):
            for p, g in zip(policy.parameters(), grads):
                p.grad = g.clone()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(twins[0].parameters(), twins[1].parameters()))


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_the_fused_adam_computes_sb3s_values_and_gradients(algo):
    """The normalized policies' default Adam (``fused=True``, one kernel per tensor) against SB3's single-tensor Adam, both
    under ELR's projection: over 25 real gradient steps (loss, backward, step) the losses, every gradient and the
    parameters agree to float tolerance; the two paths drift apart only by rounding."""
    if algo == "ppo":
        model = PlasticPPO("CartPole-v1", plasticity="elr", seed=0)
        obs = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))

        def loss_of(policy):
            values, log_prob, entropy = policy.evaluate_actions(obs, torch.arange(64) % 2)
            return -log_prob.mean() + values.pow(2).mean() - 0.01 * entropy.mean()

        net = model.policy
    else:
        model = PlasticSAC("Pendulum-v1", plasticity="elr", seed=0)
        obs = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))

        def loss_of(actor):
            return actor(obs).pow(2).mean() + actor.action_log_prob(obs)[1].mean()

        net = model.actor
    optimizer = net.optimizer
    assert optimizer.defaults["fused"] is True
    twins = [copy.deepcopy(net) for _ in range(2)]
    runs = []
    for policy, fused in zip(twins, (True, False)):
        opt = type(optimizer)(policy.parameters(), **{**optimizer.defaults, "fused": fused, "lr": 3e-3})
        elr = ELR(policy, opt, measure_every=0)
        losses, grads = [], []
        for _ in range(25):
            torch.manual_seed(1)  # SAC's sampled actions: the same noise in both
            loss = loss_of(policy)
            opt.zero_grad()
            loss.backward()
            losses.append(loss.item())
            grads.append([p.grad.clone() for p in policy.parameters()])
            opt.step()
            elr.step(loss.item())
        runs.append((losses, grads))
    (fused_losses, fused_grads), (losses, grads) = runs
    assert fused_losses == pytest.approx(losses, rel=1e-4, abs=1e-6)
    assert losses[0] == fused_losses[0] and losses[-1] != losses[0]  # the same start; it trained
    for a_step, b_step in zip(fused_grads, grads):
        for a, b in zip(a_step, b_step):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
    for a, b in zip(twins[0].parameters(), twins[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert not all(torch.equal(a, b) for a, b in zip(twins[0].parameters(), twins[1].parameters()))  # two implementations
