r"""Plasticity diagnostics: the exact metric definitions for the whole project (one source of truth).

Notation. ``h`` is the output of one activation module on a batch of ``B`` inputs, laid out as
``(B, U)`` for a fully connected layer or ``(B, C, *spatial)`` for a convolution. For a convolution
the *unit* is the channel (``U = C``) and the ``P = prod(spatial)`` positions are extra samples of it:

    m_i          = E_{x, p} |h_i(x, p)|                      mean |activation| of unit i (batch and positions)
    Phi          = h                      (B, U)              fully connected
    Phi          = mean_p h[:, :, p]      (B, C)              convolution (spatial mean; uncentered)
    s            = svdvals(Phi) in float64, sorted descending

Metrics (per layer; ``[.]`` is the indicator):

    dormant_ratio   = (1/U) sum_i [ m_i / ((1/U) sum_j m_j) <= tau ]      (Sokar et al. 2023)
                      every unit dormant (1.0) when sum_j m_j = 0
    dead_ratio      = dormant_ratio with tau = 0 = (1/U) sum_i [ h_i(x, p) = 0 for every x, p ]
    fau             = E_{x, i, p} [ h_i(x, p) > 0 ]                       fraction of active units
    saturated_ratio = (1/U) sum_i [ E_{x, p} [ |z_i(x, p)| > 0.99 ] > 1/2 ],
                      z = 2 (h - low) / (high - low) - 1 in [-1, 1]        (tanh: |h| > 0.99)
    srank_delta     = min { k : sum_{i<=k} s_i >= (1 - delta) sum_i s_i }  (Kumar et al. 2021), 0 if s = 0
    effective_rank  = exp(-sum_i p_i log p_i),  p = s / sum_i s_i (0 log 0 = 0), 0 if s = 0
    stable_rank     = sum_i s_i^2 / s_1^2 = ||Phi||_F^2 / ||Phi||_2^2, 0 if s = 0
    feature_norm    = E_x ||vec h(x)||_2                                   (whole per-sample activation)
    weight_norm     = ||(W, b)||_F    of the weight layer feeding the activation (weight and bias jointly)
    grad_norm       = ||(dW, db)||_F  of the same parameters' ``.grad`` (only those that have one)

Which metrics apply depends on the activation family (``layers.activation_family``):
``relu`` -> dead_ratio and fau; ``smooth`` (GELU, SiLU, ELU, ...) -> fau only (no exact zeros, so
"dead" means nothing); ``saturating`` (tanh, sigmoid, ...) -> saturated_ratio only. dormant_ratio,
the ranks and the norms apply to all. A metric that does not apply is omitted, never NaN.

Aggregates over layers (keys without ``/<layer>``): dormant_ratio, dead_ratio, fau, saturated_ratio are
unit-weighted over the layers where they apply (sum_l U_l r_l / sum_l U_l); srank, effective_rank,
stable_rank, feature_norm are the mean over layers; weight_norm, grad_norm are sqrt(sum_l n_l^2).

Effective learning rate of layer l at step t (measured by ``elr.ELR``, defined here with the rest):

    elr_t = ||u_t||_F / ||W_{t-1}||_F,  u_t = W_t' - W_{t-1}  the optimizer's own step (before projection),
    W = (weight, bias) jointly. For a scale-invariant layer this is the paper's eta / ||W||^2 (SGD,
    whose gradient shrinks as 1/||W||) and eta / ||W|| (Adam, whose step size does not depend on ||W||).

Feature change between two :class:`FeatureSnapshot` s on the same inputs (Lyle et al. 2025):

    C       = Phi^T Phi / B                                   (U x U, uncentered second moment)
    Delta_C = ||C_after - C_before||_F / ||C_before||_F        0 if both are 0, inf if only C_before is 0
    Delta_A = E_{x, i, p} [ [h_after > 0] != [h_before > 0] ]   fraction of on/off patterns that flipped

Delta_A is meaningful for relu and smooth activations; for saturating ones it is reported anyway but
measures sign flips. Aggregates: Delta_C is the mean over layers, Delta_A is weighted by U_l * P_l.

Layer keys: an activation that follows a weight layer (optionally through a normalization) in an
``nn.Sequential`` is named after that weight layer (``layers.iter_blocks``), so ELR metrics and
diagnostics share names; any other activation is named after itself. A module that fires more than
once in the forward gets ``#1``, ``#2``, ... on its later calls.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from plastic_rl import layers

__all__ = [
    "measure",
    "FeatureSnapshot",
    "compare",
    "dormant_ratio",
    "dormant_mask",
    "dormant_units",
    "fau",
    "saturated_ratio",
    "singular_values",
    "srank",
    "effective_rank",
    "stable_rank",
    "delta_c",
    "delta_a",
]

Forward = Callable[[nn.Module, Any], Any]

# |z| above this (z = h rescaled to [-1, 1]) counts as saturated: |tanh| > 0.99.
SATURATION_LEVEL = 0.99


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _check_tau(tau: float) -> float:
    tau = float(tau)
    if not 0.0 <= tau < 1.0:
        raise ValueError(f"tau={tau:g} is outside [0, 1)")
    return tau


def _check_delta(delta: float) -> float:
    delta = float(delta)
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta={delta:g} is outside (0, 1)")
    return delta


def _as_tensor(x: Any) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x)


def _units_first(h: Any) -> torch.Tensor:
    """``h`` as ``(B, U, P)``: batch, units (dim 1), positions (1 for a fully connected layer)."""
    h = _as_tensor(h).detach()
    if h.dim() < 2:
        raise ValueError(f"activation of shape {tuple(h.shape)} has no unit dimension; expected (batch, units, ...)")
    if h.shape[0] == 0:
        raise ValueError("batch size 0: need at least one input")
    return h.reshape(h.shape[0], h.shape[1], -1)


# --------------------------------------------------------------------------------------------
# Pure metrics on activations
# --------------------------------------------------------------------------------------------


def dormant_mask(h: Any, tau: float = 0.025) -> torch.Tensor:
    """Which units are tau-dormant: score_i = m_i / mean_j m_j <= tau, as a bool vector over units.

    The unit-by-unit form of ``dormant_ratio`` (every unit when nothing fires); ReDo
    (``interventions.redo``) resets exactly these units.
    """
    tau = _check_tau(tau)
    m = _units_first(h).abs().double().mean(dim=(0, 2))  # m_i = E_{x,p} |h_i|
    mean = m.mean()
    if mean <= 0:  # nothing fires anywhere: every unit is dormant
        return torch.ones(m.numel(), dtype=torch.bool, device=m.device)
    return (m / mean) <= tau


def _dormant_count(h: Any, tau: float) -> tuple[int, int]:
    """(number of tau-dormant units, number of units); shared by the ratio and the aggregate."""
    mask = dormant_mask(h, tau)
    return int(mask.sum()), mask.numel()


def dormant_ratio(h: Any, tau: float = 0.025) -> float:
    """Fraction of tau-dormant units: score_i = m_i / mean_j m_j <= tau (tau = 0: dead units).

    Sokar et al. 2023: a unit whose output is small relative to its layer has stopped contributing.
    ``h`` is ``(B, U)`` or ``(B, C, *spatial)`` (unit = channel, positions averaged like inputs).
    """
    count, units = _dormant_count(h, tau)
    return count / units


def fau(h: Any) -> float:
    """Fraction of active units: E_{x,i,p} [h > 0] (the part of the network on its linear piece)."""
    return float((_units_first(h) > 0).double().mean())


def _saturated_count(h: Any, low: float, high: float) -> tuple[int, int]:
    """(units saturated on more than half of the inputs/positions, units)."""
    low, high = float(low), float(high)
    if not high > low:
        raise ValueError(f"saturation bounds low={low:g}, high={high:g}: need high > low")
    z = 2.0 * (_units_first(h).double() - low) / (high - low) - 1.0
    frac = (z.abs() > SATURATION_LEVEL).double().mean(dim=(0, 2))
    return int((frac > 0.5).sum()), frac.numel()


def saturated_ratio(h: Any, low: float = -1.0, high: float = 1.0) -> float:
    """Fraction of units saturated (|z| > 0.99, z = h rescaled to [-1, 1]) on more than half the inputs.

    A saturated unit passes (almost) no gradient: the bounded activations' analogue of a dead unit.
    """
    count, units = _saturated_count(h, low, high)
    return count / units


# --------------------------------------------------------------------------------------------
# Rank metrics on singular values
# --------------------------------------------------------------------------------------------


def _features(h: torch.Tensor) -> torch.Tensor:
    """Phi: ``(B, U)`` as is; ``(B, C, *spatial)`` averaged over positions to ``(B, C)``."""
    return _units_first(h).mean(dim=2)


def singular_values(phi: Any) -> torch.Tensor:
    """Singular values of the (uncentered) feature matrix Phi, float64, descending."""
    phi = _as_tensor(phi).detach()
    if phi.dim() != 2:
        raise ValueError(f"feature matrix of shape {tuple(phi.shape)}: expected (batch, units)")
    return torch.linalg.svdvals(phi.to(torch.float64))


def _sv(s: Any) -> torch.Tensor:
    s = _as_tensor(s).detach().to(torch.float64).reshape(-1)
    return torch.sort(s, descending=True).values


def srank(s: Any, delta: float = 0.01) -> int:
    """srank_delta: the fewest singular values carrying (1 - delta) of their sum (Kumar et al. 2021)."""
    delta = _check_delta(delta)
    s = _sv(s)
    if s.numel() == 0:
        return 0
    cum = torch.cumsum(s, 0)
    total = cum[-1]  # the same summation order as the cumsum, so k = n is always reached
    if total <= 0:
        return 0
    return int(torch.searchsorted(cum, (1.0 - delta) * total, side="left")) + 1


def effective_rank(s: Any) -> float:
    """exp(entropy(s / sum s)): a smooth count of the directions the features spread over."""
    s = _sv(s)
    total = s.sum()
    if s.numel() == 0 or total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * torch.log(p)).sum()))


def stable_rank(s: Any) -> float:
    """sum s_i^2 / s_max^2 = ||Phi||_F^2 / ||Phi||_2^2: rank that ignores tiny singular values."""
    s = _sv(s)
    if s.numel() == 0 or s[0] <= 0:
        return 0.0
    return float((s**2).sum() / s[0] ** 2)


# --------------------------------------------------------------------------------------------
# Feature change (Lyle et al. 2025)
# --------------------------------------------------------------------------------------------


def delta_c(phi_a: Any, phi_b: Any) -> float:
    """||C_b - C_a||_F / ||C_a||_F with C = Phi^T Phi / B: how much the feature second moment moved."""
    a = _as_tensor(phi_a).detach().to(torch.float64)
    b = _as_tensor(phi_b).detach().to(torch.float64)
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"feature matrices of shapes {tuple(a.shape)} and {tuple(b.shape)}: need equal (batch, units)")
    if a.shape[0] == 0:
        raise ValueError("batch size 0: need at least one input")
    ca = a.T @ a / a.shape[0]
    cb = b.T @ b / b.shape[0]
    diff = float(torch.linalg.matrix_norm(cb - ca))
    base = float(torch.linalg.matrix_norm(ca))
    if base == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / base


def _flip_count(pat_a: Any, pat_b: Any) -> tuple[int, int]:
    a, b = _as_tensor(pat_a).bool(), _as_tensor(pat_b).bool()
    if a.shape != b.shape:
        raise ValueError(f"on/off patterns of shapes {tuple(a.shape)} and {tuple(b.shape)}: need equal shapes")
    return int((a != b).sum()), a.numel()


def delta_a(pat_a: Any, pat_b: Any) -> float:
    """Fraction of (input, unit, position) on/off entries [h > 0] that flipped between two patterns."""
    flips, total = _flip_count(pat_a, pat_b)
    return flips / total if total else 0.0


# --------------------------------------------------------------------------------------------
# Capturing activations from a model
# --------------------------------------------------------------------------------------------


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
        return [(f"{k}.{n}" if n else str(k), t) for k, v in sorted(inputs.items(), key=lambda kv: str(kv[0]))
                for n, t in _tensor_leaves(v)]
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
        raise ValueError(f"no activation module fired during the forward of model {type(model).__name__}; "
                         "pass forward=callable(model, inputs) that runs the layers to diagnose")

    captures: list[_Capture] = []
    for name, module in order:
        outs = calls[id(module)]
        block = blocks.get(id(module))
        family = layers.activation_family(module)
        base = block.name if block is not None else name
        layer = block.layer if block is not None else None
        for k, out in enumerate(outs):
            key = base if k == 0 else f"{base}#{k}"
            captures.append(_Capture(key, module, family, layer, k == 0, _units_layout(out, layer)))
    for c in captures:
        _units_first(c.h)  # shape/batch errors name the problem before any metric runs
    return captures, inputs


def _joint_norm(tensors: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(t.detach().double().pow(2).sum()) for t in tensors))


# --------------------------------------------------------------------------------------------
# measure
# --------------------------------------------------------------------------------------------


def measure(model: nn.Module, inputs: Any, tau: float = 0.025, delta: float = 0.01, *,
            forward: Forward | None = None) -> dict[str, float]:
    """Every diagnostic of the module docstring, per layer (``"<metric>/<layer>"``) and aggregated.

    One forward pass ``forward(model, inputs)`` (default ``model(inputs)``) in eval mode under no_grad;
    parameters, grads, train/eval modes and hooks are left exactly as they were.
    """
    tau = _check_tau(tau)
    delta = _check_delta(delta)
    captures, _ = _capture(model, inputs, forward)

    out: dict[str, float] = {}
    counts: dict[str, list[float]] = {k: [0.0, 0.0] for k in ("dormant_ratio", "dead_ratio", "fau", "saturated_ratio")}
    means: dict[str, list[float]] = {k: [] for k in ("srank", "effective_rank", "stable_rank", "feature_norm")}
    squares: dict[str, list[float]] = {"weight_norm": [], "grad_norm": []}

    for c in captures:
        h, key = c.h, c.key
        units = h.shape[1]

        n, _ = _dormant_count(h, tau)
        out[f"dormant_ratio/{key}"] = n / units
        counts["dormant_ratio"][0] += n
        counts["dormant_ratio"][1] += units

        if c.family == "relu":
            n, _ = _dormant_count(h, 0.0)
            out[f"dead_ratio/{key}"] = n / units
            counts["dead_ratio"][0] += n
            counts["dead_ratio"][1] += units
        if c.family in ("relu", "smooth"):
            r = fau(h)
            out[f"fau/{key}"] = r
            counts["fau"][0] += r * units
            counts["fau"][1] += units
        if c.family == "saturating":
            low, high = layers.saturation_bounds(c.module)
            n, _ = _saturated_count(h, low, high)
            out[f"saturated_ratio/{key}"] = n / units
            counts["saturated_ratio"][0] += n
            counts["saturated_ratio"][1] += units

        s = singular_values(_features(h))
        values = {
            "srank": float(srank(s, delta)),
            "effective_rank": effective_rank(s),
            "stable_rank": stable_rank(s),
            "feature_norm": float(h.reshape(h.shape[0], -1).double().norm(dim=1).mean()),
        }
        for k, v in values.items():
            out[f"{k}/{key}"] = v
            means[k].append(v)

        if c.layer is not None and c.first:
            params = layers.layer_params(c.layer)
            w = _joint_norm(list(params))
            out[f"weight_norm/{key}"] = w
            squares["weight_norm"].append(w)
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                g = _joint_norm(grads)
                out[f"grad_norm/{key}"] = g
                squares["grad_norm"].append(g)

    for k, (num, den) in counts.items():
        if den:
            out[k] = num / den
    for k, vals in means.items():
        if vals:
            out[k] = sum(vals) / len(vals)
    for k, vals in squares.items():
        if vals:
            out[k] = math.sqrt(sum(v * v for v in vals))
    return out


def dormant_units(model: nn.Module, inputs: Any, tau: float = 0.025, *, forward: Forward | None = None) -> dict[str, torch.Tensor]:
    """Per hidden layer, the bool mask of its tau-dormant units on ``inputs`` (CPU), keyed like ``measure``.

    Only activations fed by a weight layer (a unit there has incoming weights to reset), first call.
    """
    tau = _check_tau(tau)
    captures, _ = _capture(model, inputs, forward)
    return {c.key: dormant_mask(c.h, tau).cpu() for c in captures if c.layer is not None and c.first}


# --------------------------------------------------------------------------------------------
# FeatureSnapshot / compare
# --------------------------------------------------------------------------------------------


class FeatureSnapshot:
    """Features Phi and on/off patterns [h > 0] per layer, on fixed inputs, for Delta_C / Delta_A.

    Attributes: ``phi[key]`` (B, U) float64 on CPU (conv: spatial mean); ``pattern[key]`` (B, U * P)
    bool on CPU (conv: every position); ``family[key]``; ``fingerprint`` (shape, dtype, sha256 per
    input tensor). Same hooks and keys as :func:`measure`; the model is left unchanged.
    """

    def __init__(self, model: nn.Module, inputs: Any, *, forward: Forward | None = None):
        captures, converted = _capture(model, inputs, forward)
        self.fingerprint: tuple = _fingerprint(converted)
        self.phi: dict[str, torch.Tensor] = {}
        self.pattern: dict[str, torch.Tensor] = {}
        self.family: dict[str, str] = {}
        for c in captures:
            self.phi[c.key] = _features(c.h).double().cpu()
            self.pattern[c.key] = (c.h > 0).reshape(c.h.shape[0], -1).cpu()
            self.family[c.key] = c.family

    @property
    def layers(self) -> list[str]:
        return list(self.phi)

    def __repr__(self) -> str:
        return f"FeatureSnapshot(layers={self.layers})"


def compare(before: FeatureSnapshot, after: FeatureSnapshot) -> dict[str, float]:
    """Per layer ``delta_c/<layer>``, ``delta_a/<layer>`` and the aggregates ``delta_c``, ``delta_a``."""
    if before.fingerprint != after.fingerprint:
        raise ValueError("snapshots were taken on different inputs; take both on the same batch")
    if set(before.phi) != set(after.phi):
        only_b = sorted(set(before.phi) - set(after.phi))
        only_a = sorted(set(after.phi) - set(before.phi))
        raise ValueError(f"snapshots have different layers: only before {only_b}, only after {only_a}")
    out: dict[str, float] = {}
    dcs: list[float] = []
    flips = total = 0
    for key in before.phi:
        dc = delta_c(before.phi[key], after.phi[key])
        f, t = _flip_count(before.pattern[key], after.pattern[key])
        out[f"delta_c/{key}"] = dc
        out[f"delta_a/{key}"] = f / t if t else 0.0
        dcs.append(dc)
        flips += f
        total += t
    if dcs:
        out["delta_c"] = sum(dcs) / len(dcs)
        out["delta_a"] = flips / total if total else 0.0
    return out
