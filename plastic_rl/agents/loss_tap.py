"""``tap_losses()``: the one place plastic_rl replaces ``torch.Tensor.backward``, to see SB3's own loss.

SB3 computes each loss inside ``train()`` and calls ``loss.backward()`` there; nothing in torch hands
the root of a backward pass to a hook (optimizer hooks see parameters, autograd hooks see gradients).
Rather than copy every algorithm's ``train()``, the agents read the loss off the ``backward()`` call.

Contract of ``with tap_losses() as tap:``

- **Which scalar is the step's loss**: the last one-element tensor on which ``Tensor.backward()`` was
  called, in this thread, inside the block; ``tap.loss`` holds it (detached), None before any. A
  ``backward(gradient)`` on a tensor of more elements is not recorded (it is not a loss).
- **Not seen**: ``torch.autograd.backward(tensors)`` and ``torch.autograd.grad(...)`` called directly
  (they do not go through ``Tensor.backward``). A ``train()`` that backpropagates that way leaves
  ``tap.loss`` at the last scalar that did go through ``Tensor.backward`` (None if none did), so the
  CUSUM re-warm and ELR's finite-loss check get no loss, or an earlier one, for those steps.
- **Scope**: the replacement is installed process-wide while any tap is open (in any thread), or an
  ``installed()`` block runs (a Plastic agent's ``learn()``), and
  records only for the thread that opened the tap; backward calls of other threads pass through
  unrecorded. Nested taps in one thread are safe: the innermost records, the outer one keeps its value
  until the inner block ends.
- **Restored**: when the last open tap or ``installed()`` block closes, normally or by an exception,
  ``torch.Tensor.backward`` is again the function it was when the first one opened.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["LossTap", "installed", "tap_losses"]


class LossTap:
    """What one ``tap_losses()`` block saw: ``loss``, the last scalar backpropagated in it (or None)."""

    def __init__(self) -> None:
        self.loss: torch.Tensor | None = None


_lock = threading.Lock()
_open = 0  # taps open in all threads; the replacement is installed while > 0
_original: Callable[..., Any] | None = None  # torch.Tensor.backward as it was when the first tap opened
_local = threading.local()  # .taps: this thread's open taps, innermost last


def _backward(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    taps = getattr(_local, "taps", None)
    if taps and tensor.numel() == 1:
        taps[-1].loss = tensor.detach()
    assert _original is not None  # installed only together with _original
    return _original(tensor, *args, **kwargs)


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Keep the replacement installed through the block, recording nothing by itself.

    An agent's ``learn()`` holds it so that the taps of its many ``train()`` calls find the replacement in
    place: installing and restoring ``torch.Tensor.backward`` modifies a type with many subclasses, which
    invalidates Python's attribute caches for every tensor (~11 us per ``train()`` of a CartPole DQN, ~0.7%).
    """
    _install()
    try:
        yield
    finally:
        _uninstall()


@contextlib.contextmanager
def tap_losses() -> Iterator[LossTap]:
    """Record the loss of every ``Tensor.backward()`` of this thread inside the block (module docstring)."""
    tap = LossTap()
    _install()
    taps: list[LossTap] = _local.__dict__.setdefault("taps", [])
    taps.append(tap)
    try:
        yield tap
    finally:
        taps.remove(tap)
        _uninstall()


def _install() -> None:
    global _open, _original
    with _lock:
        if _open == 0:
            _original = torch.Tensor.backward
            torch.Tensor.backward = _backward  # type: ignore[method-assign,assignment]
        _open += 1


def _uninstall() -> None:
    global _open
    with _lock:
        _open -= 1
        if _open == 0:
            torch.Tensor.backward = _original  # type: ignore[method-assign,assignment]
