"""Capturing the activations of a model on a batch: one hook per activation module, named like ELR's layers."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from plastic_rl import layers
from plastic_rl.diagnostics.metrics import _units_first

Forward = Callable[[nn.Module, Any], Any]


# -- Capturing activations from a model ----------------------------------------


@dataclass
class _Capture:
    """One call of one activation module during the forward."""

    key: str
    module: nn.Module
    family: str
    layer: nn.Module | None  # the weight layer feeding it, when the structure shows one
    first: bool  # the first call under this layer (norms of the weight layer are reported once)
    h: torch.Tensor  # (B, U, *positions), units at dim 1


def _param_device_dtype(model: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    for p in model.parameters():
        return p.device, p.dtype
    return None, None


def _convert_inputs(inputs: Any, device, dtype) -> Any:
    """Tensors/arrays to tensors on the model's device; floating ones to its dtype. Dicts recurse."""
    if isinstance(inputs, Mapping):
        return {k: _convert_inputs(v, device, dtype) for k, v in inputs.items()}
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        t = torch.as_tensor(inputs)
        if device is not None:
            t = t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
        return t
    return inputs


def _tensor_leaves(inputs: Any) -> list[tuple[str, torch.Tensor]]:
    if isinstance(inputs, Mapping):
        return [
            (f"{k}.{n}" if n else str(k), t) for k, v in sorted(inputs.items(), key=lambda kv: str(kv[0])) for n, t in _tensor_leaves(v)
        ]
    if isinstance(inputs, (list, tuple)):
        return [(f"{i}.{n}" if n else str(i), t) for i, v in enumerate(inputs) for n, t in _tensor_leaves(v)]
    return [("", inputs)] if isinstance(inputs, torch.Tensor) else []


def _check_batch(inputs: Any) -> None:
    for name, t in _tensor_leaves(inputs):
        if t.dim() >= 1 and t.shape[0] == 0:
            where = f"inputs[{name!r}]" if name else "inputs"
            raise ValueError(f"{where} has batch size 0 (shape {tuple(t.shape)}); need at least one input")


def _fingerprint(inputs: Any) -> tuple:
    """(name, shape, dtype, sha256 of the bytes) per tensor: identifies the inputs a snapshot saw."""
    out = []
    for name, t in _tensor_leaves(inputs):
        flat = t.detach().cpu().contiguous().reshape(-1)
        digest = hashlib.sha256(flat.view(torch.uint8).numpy().tobytes()).hexdigest()
        out.append((name, tuple(t.shape), str(t.dtype), digest))
    return tuple(out)


def _check_model(model: nn.Module) -> None:
    name = type(model).__name__
    if not any(True for _ in layers.iter_weight_layers(model)):
        raise ValueError(f"model {name} has no Linear/Conv layer to diagnose")
    if not any(isinstance(m, layers.ACTIVATIONS) for m in model.modules()):
        known = ", ".join(c.__name__ for c in layers.ACTIVATIONS)
        raise ValueError(f"model {name} has no activation module to diagnose (accepted: {known})")


def _units_layout(h: torch.Tensor, layer: nn.Module | None) -> torch.Tensor:
    """Put units at dim 1: after a Linear they are the last dim, otherwise (conv, unknown) dim 1."""
    if isinstance(layer, nn.Linear) and h.dim() > 2:
        h = h.movedim(-1, 1)
    return h


def _capture(model: nn.Module, inputs: Any, forward: Forward | None) -> tuple[list[_Capture], Any]:
    """Run one no-grad eval forward with hooks on every activation; leave the model as found."""
    _check_model(model)
    device, dtype = _param_device_dtype(model)
    inputs = _convert_inputs(inputs, device, dtype)
    _check_batch(inputs)
    forward = forward if forward is not None else (lambda m, x: m(x))

    # Activation -> the block it ends: the block's weight layer names it (a later call of it gets "#k").
    blocks: dict[int, layers.Block] = {}
    for block in layers.iter_blocks(model):
        if block.activation is not None:
            blocks.setdefault(id(block.activation), block)

    calls: dict[int, list[torch.Tensor]] = {}
    order: list[tuple[str, nn.Module]] = []

    def hook(module, _inp, out, *, _name):
        if not isinstance(out, torch.Tensor):
            return
        if id(module) not in calls:
            calls[id(module)] = []
            order.append((_name, module))
        # Clone: a later in-place op must not change what was recorded.
        calls[id(module)].append(out.detach().clone())

    modes = {m: m.training for m in model.modules()}
    handles = []
    try:
        for name, module in model.named_modules():
            if isinstance(module, layers.ACTIVATIONS):
                handles.append(module.register_forward_hook(lambda m, i, o, _n=name: hook(m, i, o, _name=_n)))
        for m in modes:
            m.training = False
        with torch.no_grad():
            forward(model, inputs)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training

    if not order:
        raise ValueError(
            f"no activation module fired during the forward of model {type(model).__name__}; "
            "pass forward=callable(model, inputs) that runs the layers to diagnose"
        )

    captures: list[_Capture] = []
    for name, module in order:
        outs = calls[id(module)]
        owner = blocks.get(id(module))
        family = layers.activation_family(module)
        base = owner.name if owner is not None else name
        layer = owner.layer if owner is not None else None
        for k, out in enumerate(outs):
            key = base if k == 0 else f"{base}#{k}"
            captures.append(_Capture(key, module, family, layer, k == 0, _units_layout(out, layer)))
    for c in captures:
        _units_first(c.h)  # shape/batch errors name the problem before any metric runs
    return captures, inputs


def _joint_norm(tensors: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(t.detach().double().pow(2).sum()) for t in tensors))
