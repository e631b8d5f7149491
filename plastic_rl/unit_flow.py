"""Where each unit's output goes: trace a forward pass into the Linear/Conv inputs that read it.

ReDo (``interventions.redo``) zeroes the outgoing weights of a recycled unit, so it must know which
input columns (Linear) or channels (Conv) of which layers read that unit. Module structure does not
say (SB3's PPO reads its last hidden layer from ``action_net`` and ``value_net``, SAC's critic reads
``cat([features, actions])``), so a ``TorchFunctionMode`` follows each traced activation's output
through views, flatten and concatenation into the layers that consume it. Its own module because it
is a forward-pass analysis, independent of how the edit is then made.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from plastic_rl.layers import WEIGHT_LAYERS

__all__ = ["Consumer", "Flow", "trace"]

Forward = Callable[[nn.Module, Any], Any]


@dataclass(frozen=True)
class Segment:
    """Features ``[start, start + units * positions)`` of a tensor's flattened dims 1.. come from ``source``."""

    source: str
    start: int
    units: int
    positions: int

    def shifted(self, by: int) -> Segment:
        return Segment(self.source, self.start + by, self.units, self.positions)


@dataclass(frozen=True)
class Consumer:
    """A weight layer reading a source's units: unit u feeds ``layer``'s input features/channels ``columns(u)``."""

    layer: nn.Module
    conv: bool
    start: int  # first input column (Linear) or channel (Conv) of unit 0
    positions: int  # input columns per unit (Linear after a flatten); 1 for a Conv

    def columns(self, units: torch.Tensor) -> torch.Tensor:
        base = self.start + units * self.positions
        return (base[:, None] + torch.arange(self.positions)).reshape(-1)


VIEWS = {torch.flatten, torch.Tensor.flatten, torch.Tensor.view, torch.Tensor.reshape, torch.reshape,
          torch.Tensor.contiguous, torch.Tensor.float, torch.Tensor.to, torch.Tensor.clone, F.dropout}  # fmt: skip
CONVS = {F.conv1d: 1, F.conv2d: 2, F.conv3d: 3}


class Flow(TorchFunctionMode):
    """Follows tracked activation outputs through the forward to the Linear/Conv layers that read them."""

    def __init__(self, params: dict[int, nn.Module]):
        super().__init__()
        self.params = params  # id(weight) -> its layer
        self.tracked: dict[int, tuple[torch.Tensor, list[Segment]]] = {}  # the tensor is kept: ids stay unique
        self.consumers: dict[str, list[Consumer]] = defaultdict(list)
        self.lost: dict[str, str] = {}  # source -> the operation its output went into

    def track(self, tensor: torch.Tensor, name: str) -> None:
        positions = tensor[0, 0].numel() if tensor.dim() > 2 else 1
        self.tracked[id(tensor)] = (tensor, [Segment(name, 0, tensor.shape[1], positions)])

    def _segments(self, value: Any) -> list[Segment] | None:
        entry = self.tracked.get(id(value)) if isinstance(value, torch.Tensor) else None
        return entry[1] if entry is not None else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if func is torch.cat or func is torch.concat:
            inputs = [t for t in (args[0] if args else kwargs["tensors"]) if isinstance(t, torch.Tensor)]
        flowing = [(t, segs) for t in inputs if (segs := self._segments(t)) is not None]
        if not flowing:
            return out
        if func is F.linear:
            self._consume(args[0] if args else kwargs["input"], args[1] if len(args) > 1 else kwargs["weight"], conv=False)
        elif func in CONVS:
            x, weight = args[0], args[1]
            groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
            if groups != 1:
                self._lose(flowing, f"a grouped {func.__name__}")
            else:
                self._consume(x, weight, conv=True)
        elif func in VIEWS and isinstance(out, torch.Tensor) and out.dim() >= 2 and out.shape[0] == flowing[0][0].shape[0]:
            self.tracked[id(out)] = (out, list(flowing[0][1]))
        elif func is torch.cat or func is torch.concat:
            self._cat(args, kwargs, out, flowing)
        elif isinstance(out, torch.Tensor):
            self._lose(flowing, getattr(func, "__name__", str(func)))
        return out  # sizes, dtypes and other non-tensor results carry no values onward

    def _lose(self, flowing, what: str) -> None:
        for _, segs in flowing:
            for seg in segs:
                self.lost.setdefault(seg.source, what)

    def _cat(self, args, kwargs, out, flowing) -> None:
        tensors = list(args[0] if args else kwargs["tensors"])
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        if not (dim in (1, -1) and all(t.dim() == 2 for t in tensors)) and not (dim == 1 and all(t.dim() >= 2 for t in tensors)):
            self._lose(flowing, f"torch.cat(dim={dim})")
            return
        segments, offset = [], 0
        for t in tensors:
            segments += [seg.shifted(offset) for seg in (self._segments(t) or [])]
            offset += t[0].numel()
        self.tracked[id(out)] = (out, segments)

    def _consume(self, x: torch.Tensor, weight: torch.Tensor, conv: bool) -> None:
        layer = self.params.get(id(weight))
        segments = self._segments(x) or []
        for seg in segments:
            if layer is None:
                self.lost.setdefault(seg.source, "a weight the model does not own")
            elif conv:
                per_channel = x[0, 0].numel()
                if seg.positions != per_channel or seg.start % per_channel:
                    self.lost.setdefault(seg.source, "a convolution over a reshaped input")
                else:
                    self.consumers[seg.source].append(Consumer(layer, True, seg.start // per_channel, 1))
            elif x.dim() != 2:
                self.lost.setdefault(seg.source, "a Linear over a >2-d input")
            else:
                self.consumers[seg.source].append(Consumer(layer, False, seg.start, seg.positions))


def trace(model: nn.Module, inputs: Any, forward: Forward | None, sources: dict[int, str]) -> Flow:
    """One no-grad eval forward that records where each source activation's output is read."""
    flow = Flow({id(m.weight): m for _, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)})
    calls: dict[int, int] = defaultdict(int)

    def hook(module, _inputs, output):
        calls[id(module)] += 1
        if calls[id(module)] == 1 and isinstance(output, torch.Tensor):
            flow.track(output, sources[id(module)])
        elif id(module) in sources:
            flow.lost.setdefault(sources[id(module)], "a second call of the same activation")

    handles = [m.register_forward_hook(hook) for m in model.modules() if id(m) in sources]
    modes = {m: m.training for m in model.modules()}
    try:
        for m in modes:
            m.training = False
        with torch.no_grad(), flow:
            (forward or (lambda m, x: m(x)))(model, inputs)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    return flow
