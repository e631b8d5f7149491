"""``measure`` (every metric per layer and aggregated, by the metric table), ``dormant_units``,
``FeatureSnapshot`` and ``compare``."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from plastic_rl import layers
from plastic_rl.diagnostics.capture import Forward, _capture, _fingerprint, _joint_norm
from plastic_rl.diagnostics.metrics import (
    _check_delta,
    _check_tau,
    _dormant_count,
    _features,
    _flip_count,
    _saturated_count,
    delta_c,
    dormant_mask,
    effective_rank,
    fau,
    singular_values,
    srank,
    stable_rank,
)
from plastic_rl.diagnostics.table import METRIC, METRICS

# -- measure ----------------------------------------


def measure(model: nn.Module, inputs: Any, tau: float = 0.025, delta: float = 0.01, *, forward: Forward | None = None) -> dict[str, float]:
    """Every diagnostic of the module docstring, per layer (``"<metric>/<layer>"``) and aggregated.

    One forward pass in eval mode under no_grad; parameters, grads, train/eval modes and hooks are left exactly as they were.

    :param model: the network; it needs a Linear/Conv layer and an activation module.
    :param inputs: the batch: a tensor or array (or a dict of them), moved to the model's device (floats to its dtype).
    :param tau: dormant threshold in [0, 1): a unit is dormant when m_i / mean_j m_j <= tau.
    :param delta: srank's delta in (0, 1): srank counts the singular values carrying (1 - delta) of their sum.
    :param forward: callable ``forward(model, inputs)`` running the layers to diagnose; None: ``model(inputs)``.
    """
    tau = _check_tau(tau)
    delta = _check_delta(delta)
    captures, _ = _capture(model, inputs, forward)

    out: dict[str, float] = {}
    units_sums: dict[str, list[float]] = {}  # "units" metrics: [sum of weighted values, sum of units]
    values: dict[str, list[float]] = {}  # "mean" and "rss" metrics: every layer's value
    for c in captures:
        for name, (value, weighted, units) in _layer_values(c, tau, delta).items():
            out[f"{name}/{c.key}"] = value
            if METRIC[name].aggregate == "units":
                sums = units_sums.setdefault(name, [0.0, 0.0])
                sums[0] += weighted
                sums[1] += units
            else:
                values.setdefault(name, []).append(value)
    for kind in ("units", "mean", "rss"):  # aggregates grouped by kind, in table order
        for metric in (m for m in METRICS if m.aggregate == kind):
            if kind == "units" and units_sums.get(metric.name, [0, 0])[1]:
                out[metric.name] = units_sums[metric.name][0] / units_sums[metric.name][1]
            elif kind == "mean" and values.get(metric.name):
                out[metric.name] = sum(values[metric.name]) / len(values[metric.name])
            elif kind == "rss" and values.get(metric.name):
                out[metric.name] = math.sqrt(sum(v * v for v in values[metric.name]))
    return out


def _layer_values(c, tau: float, delta: float) -> dict[str, tuple[float, float, float]]:
    """metric -> (layer value, value x units, units) of one captured activation, for the metrics of the
    table that apply to its activation family (weight and grad norms: where a weight layer feeds it)."""
    h, units = c.h, c.h.shape[1]
    applies = lambda name: METRIC[name].applies_to(c.family)  # noqa: E731
    out: dict[str, tuple[float, float, float]] = {}
    n, _ = _dormant_count(h, tau)
    out["dormant_ratio"] = (n / units, n, units)
    if applies("dead_ratio"):
        n, _ = _dormant_count(h, 0.0)
        out["dead_ratio"] = (n / units, n, units)
    if applies("fau"):
        r = fau(h)
        out["fau"] = (r, r * units, units)
    if applies("saturated_ratio"):
        low, high = layers.saturation_bounds(c.module)
        n, _ = _saturated_count(h, low, high)
        out["saturated_ratio"] = (n / units, n, units)
    s = singular_values(_features(h))
    out["srank"] = (float(srank(s, delta)), 0.0, 0.0)
    out["effective_rank"] = (effective_rank(s), 0.0, 0.0)
    out["stable_rank"] = (stable_rank(s), 0.0, 0.0)
    out["feature_norm"] = (float(h.reshape(h.shape[0], -1).double().norm(dim=1).mean()), 0.0, 0.0)
    if c.layer is not None and c.first:
        params = layers.layer_params(c.layer)
        out["weight_norm"] = (_joint_norm(list(params)), 0.0, 0.0)
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            out["grad_norm"] = (_joint_norm(grads), 0.0, 0.0)
    return out


def dormant_units(model: nn.Module, inputs: Any, tau: float = 0.025, *, forward: Forward | None = None) -> dict[str, torch.Tensor]:
    """Per hidden layer, the bool mask of its tau-dormant units on ``inputs`` (CPU), keyed like ``measure``.

    Only activations fed by a weight layer (a unit there has incoming weights to reset), first call.

    :param model: the network (left unchanged).
    :param inputs: the batch, as for :func:`measure`.
    :param tau: dormant threshold in [0, 1) (see :func:`dormant_mask`); 0: dead units only.
    :param forward: callable ``forward(model, inputs)``; None: ``model(inputs)``.
    """
    tau = _check_tau(tau)
    captures, _ = _capture(model, inputs, forward)
    return {c.key: dormant_mask(c.h, tau).cpu() for c in captures if c.layer is not None and c.first}


# -- FeatureSnapshot / compare ----------------------------------------


class FeatureSnapshot:
    """Features Phi and on/off patterns [h > 0] per layer, on fixed inputs, for Delta_C / Delta_A.

    Attributes: ``phi[key]`` (B, U) float64 on CPU (conv: spatial mean); ``pattern[key]`` (B, U * P)
    bool on CPU (conv: every position); ``family[key]``; ``fingerprint`` (shape, dtype, sha256 per
    input tensor). Same hooks and keys as :func:`measure`; the model is left unchanged.

    :param model: the network.
    :param inputs: the batch, as for :func:`measure` (take both snapshots of a comparison on the same one).
    :param forward: callable ``forward(model, inputs)``; None: ``model(inputs)``.
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
    """Per layer ``delta_c/<layer>``, ``delta_a/<layer>`` and the aggregates ``delta_c``, ``delta_a``.

    :param before: the earlier snapshot (Delta_C's reference C).
    :param after: the later snapshot, on the same inputs and with the same layers (else ``ValueError``).
    """
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
