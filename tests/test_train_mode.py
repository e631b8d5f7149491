"""The normalized networks set their training mode from a remembered module list (``agents/train_mode.py``): every
module's flag ends as SB3's ``set_training_mode`` with ``nn.Module.train`` leaves it, over every agent."""

from __future__ import annotations

import copy

import pytest
from torch import nn

from plastic_rl.agents import PlasticDQN
from plastic_rl.agents.train_mode import CachedTrainMode, modules_of
from tests.helpers import AGENT_CASES


def flags(model: nn.Module) -> list[tuple[str, bool]]:
    return [(name, module.training) for name, module in model.named_modules(remove_duplicate=False)]


def _refuse(*_args, **_kwargs):
    raise AssertionError("nn.Module.train's recursion ran")


@pytest.mark.parametrize("case", AGENT_CASES, ids=lambda c: c.id)
def test_every_flag_ends_as_sb3s_set_training_mode_leaves_it(case, monkeypatch):
    policy = case.make("elr").policy
    twin = copy.deepcopy(policy)
    modes = [False, False, True, True, False, True, False, False]
    got = []
    for mode in modes:
        policy.set_training_mode(mode)
        got.append(flags(policy))
    with monkeypatch.context() as patch:  # the reference: nn.Module.train everywhere
        patch.setattr(CachedTrainMode, "train", lambda self, mode=True: nn.Module.train(self, mode))
        want = []
        for mode in modes:
            twin.set_training_mode(mode)
            want.append(flags(twin))
    assert got == want
    assert any(not f for _, f in want[-1]) and any(f for _, f in want[2])  # both modes were reached
    remembered = [m for m in policy.modules() if m.__dict__.get("_train_modules")]
    assert remembered  # the normalized networks remembered their modules: later calls took the short path
    with monkeypatch.context() as patch:
        patch.setattr(nn.Module, "children", _refuse)  # nn.Module.train recurses through children(): it must not run
        policy.set_training_mode(True)
        policy.set_training_mode(False)
    assert flags(policy) == want[-1]


def test_a_changed_tree_or_a_module_with_its_own_train_takes_the_full_call(monkeypatch):
    policy = PlasticDQN("CartPole-v1", seed=0).policy
    q_net = policy.q_net
    policy.set_training_mode(True)
    assert q_net.__dict__["_train_modules"] == modules_of(q_net)
    q_net.q_net[0].eval()  # a user's edit of one flag: the next call sets it back, as nn.Module.train would
    policy.set_training_mode(True)
    assert q_net.q_net[0].training
    q_net.q_net.append(nn.Dropout())  # a new module, in training mode
    policy.set_training_mode(False)
    assert not q_net.q_net[-1].training and q_net.__dict__["_train_modules"] == modules_of(q_net)

    class Counting(nn.Module):
        calls = 0

        def train(self, mode: bool = True):
            Counting.calls += 1
            return super().train(mode)

    class EqualToAll(nn.Module):
        def __eq__(self, other):  # a list compare by == would take it for the module it replaces
            return True

        __hash__ = nn.Module.__hash__

    q_net.q_net[-1] = EqualToAll()  # replaces the Dropout, in training mode
    policy.set_training_mode(False)
    assert not q_net.q_net[-1].training

    q_net.extra = Counting()
    for _ in range(3):
        policy.set_training_mode(False)
    assert Counting.calls == 3 and q_net.__dict__["_train_modules"] is None  # its train() runs at every call
    with pytest.raises(ValueError, match="boolean"):
        q_net.train("yes")  # nn.Module's own check


def test_a_copy_keeps_its_own_modes_and_none_keeps_nn_modules_train():
    policy = PlasticDQN("CartPole-v1", seed=0).policy
    policy.set_training_mode(False)
    twin = copy.deepcopy(policy)
    twin.set_training_mode(True)
    assert not any(m.training for m in policy.q_net.modules()) and all(m.training for m in twin.q_net.modules())
    assert twin.q_net.__dict__["_train_modules"] == modules_of(twin.q_net)  # the copy's own modules
    none = PlasticDQN("CartPole-v1", plasticity="none", seed=0).policy
    for mode in (True, False, False):
        none.set_training_mode(mode)
    assert not any("_train_modules" in m.__dict__ for m in none.modules())  # SB3's network: SB3's path
