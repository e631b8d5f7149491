"""The loss tap (agents/loss_tap.py): the one replacement of ``torch.Tensor.backward``, held to its contract."""

from __future__ import annotations

import threading

import pytest
import torch
from stable_baselines3 import PPO

from plastic_rl import PlasticPPO
from plastic_rl.agents.loss_tap import tap_losses
from plastic_rl.elr import ELR

ORIGINAL = torch.Tensor.backward


def scalar(value: float) -> torch.Tensor:
    return (torch.tensor(value, requires_grad=True) * 1.0).sum()


def test_the_last_scalar_backpropagated_is_the_loss_and_other_calls_are_not():
    with tap_losses() as tap:
        assert tap.loss is None
        scalar(1.0).backward()
        scalar(2.0).backward()
        assert float(tap.loss) == 2.0 and not tap.loss.requires_grad
        torch.ones(3, requires_grad=True).mul(2).backward(torch.ones(3))  # not a loss: not recorded
        torch.autograd.backward(scalar(3.0))  # not through Tensor.backward: not seen (documented)
        x = torch.tensor(5.0, requires_grad=True)
        torch.autograd.grad(x * 1.0, [x])
        assert float(tap.loss) == 2.0
    assert torch.Tensor.backward is ORIGINAL


def test_the_original_backward_is_back_after_an_exception():
    with pytest.raises(RuntimeError, match="boom"):
        with tap_losses():
            assert torch.Tensor.backward is not ORIGINAL
            raise RuntimeError("boom")
    assert torch.Tensor.backward is ORIGINAL
    scalar(1.0).backward()  # and it still works


def test_nested_taps_record_innermost_and_restore_once_the_outermost_closes():
    with tap_losses() as outer:
        scalar(1.0).backward()
        with tap_losses() as inner:
            scalar(2.0).backward()
        assert float(inner.loss) == 2.0 and float(outer.loss) == 1.0
        assert torch.Tensor.backward is not ORIGINAL  # the outer tap is still open
        scalar(3.0).backward()
        assert float(outer.loss) == 3.0 and float(inner.loss) == 2.0
    assert torch.Tensor.backward is ORIGINAL


def test_another_threads_backward_passes_through_unrecorded():
    done = threading.Event()
    seen: list[torch.Tensor | None] = []

    def other() -> None:
        x = torch.tensor(7.0, requires_grad=True)
        (x * 2).backward()
        seen.append(x.grad)
        done.set()

    with tap_losses() as tap:
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=30)
        assert done.is_set() and float(seen[0]) == 2.0  # the gradient was computed
        assert tap.loss is None  # but it was not this thread's loss
    assert torch.Tensor.backward is ORIGINAL


def test_the_agent_feeds_sb3s_own_loss_to_the_elr(monkeypatch):
    losses: list[float | None] = []
    step = ELR.step

    def spy(self, loss=None):
        losses.append(None if loss is None else float(loss))
        return step(self, loss)

    monkeypatch.setattr(ELR, "step", spy)
    model = PlasticPPO("CartPole-v1", plasticity="elr-cusum", n_steps=64, batch_size=32, n_epochs=1, seed=0)
    model.learn(64)
    assert len(losses) == 2 and all(loss is not None for loss in losses)  # 64 / 32 minibatches, one epoch
    assert losses[-1] == pytest.approx(model.logger.name_to_value["train/loss"])  # SB3 logs its last loss
    assert torch.Tensor.backward is ORIGINAL and model.plasticity._tap is None


def test_an_exception_inside_train_leaves_backward_as_it_was(monkeypatch):
    model = PlasticPPO("CartPole-v1", plasticity="elr", n_steps=64, batch_size=32, n_epochs=1, seed=0)

    def failing_train(self) -> None:
        assert torch.Tensor.backward is not ORIGINAL  # the tap is open inside train()
        scalar(1.0).backward()
        raise RuntimeError("diverged")

    monkeypatch.setattr(PPO, "train", failing_train)
    with pytest.raises(RuntimeError, match="diverged"):
        model.learn(64)
    assert torch.Tensor.backward is ORIGINAL and model.plasticity._tap is None


def test_nested_training_of_one_agent_keeps_the_outer_tap():
    model = PlasticPPO("CartPole-v1", plasticity="elr", n_steps=64, batch_size=32, n_epochs=1, seed=0)
    controller = model.plasticity
    with controller.training():
        outer = controller._tap
        with controller.training():
            assert controller._tap is not outer
        assert controller._tap is outer
    assert controller._tap is None and torch.Tensor.backward is ORIGINAL


def test_learn_installs_the_tap_once_and_restores_backward(monkeypatch):
    from plastic_rl.agents import loss_tap

    installs = []
    real = loss_tap._install

    def counting() -> None:
        installs.append(loss_tap._open)  # taps open before this one
        real()

    monkeypatch.setattr(loss_tap, "_install", counting)
    model = PlasticPPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1, seed=0)
    model.learn(256)  # 4 train() calls, each with its own tap
    assert len(installs) == 5 and installs[0] == 0 and all(n >= 1 for n in installs[1:])  # the type is modified once
    assert torch.Tensor.backward is ORIGINAL  # and restored at the end
    with pytest.raises(ValueError):
        with loss_tap.installed():
            assert torch.Tensor.backward is not ORIGINAL
            raise ValueError("a failed learn()")
    assert torch.Tensor.backward is ORIGINAL
