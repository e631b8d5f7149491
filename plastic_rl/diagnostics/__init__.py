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

import importlib
from typing import Any

# The submodules load on first use: ``diagnostics.table`` (read by diagnose's writers) needs no torch.
_HOME = {
    "Forward": "capture",
    **dict.fromkeys(("FeatureSnapshot", "compare", "dormant_units", "measure"), "measuring"),
    **dict.fromkeys(("SATURATION_LEVEL", "delta_a", "delta_c", "dormant_mask", "dormant_ratio", "effective_rank", "fau",
                     "saturated_ratio", "singular_values", "srank", "stable_rank"), "metrics"),
    **dict.fromkeys(("FAMILIES", "METRIC", "METRICS", "Metric"), "table"),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"plastic_rl.diagnostics.{_HOME[name]}"), name)
    raise AttributeError(f"module 'plastic_rl.diagnostics' has no attribute {name!r}")


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
    "Metric",
    "METRICS",
    "METRIC",
    "FAMILIES",
    "Forward",
    "SATURATION_LEVEL",
]
