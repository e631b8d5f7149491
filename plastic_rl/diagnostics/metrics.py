"""The metrics on activations and singular values, as the package docstring defines them (pure functions)."""

from __future__ import annotations

import math
from typing import Any

import torch

# |z| above this (z = h rescaled to [-1, 1]) counts as saturated: |tanh| > 0.99.
SATURATION_LEVEL = 0.99


# -- Validation ----------------------------------------


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


# -- Pure metrics on activations ----------------------------------------


def dormant_mask(h: Any, tau: float = 0.025) -> torch.Tensor:
    """Which units are tau-dormant: score_i = m_i / mean_j m_j <= tau, as a bool vector over units.

    The unit-by-unit form of ``dormant_ratio`` (every unit when nothing fires); ReDo
    (``interventions.redo``) resets exactly these units.

    :param h: one activation's output, ``(B, U)`` or ``(B, C, *spatial)`` (unit = channel); a tensor or array.
    :param tau: dormant threshold in [0, 1) on the unit's score m_i / mean_j m_j; 0: dead units only.
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

    :param h: one activation's output, ``(B, U)`` or ``(B, C, *spatial)`` (unit = channel, positions averaged like inputs).
    :param tau: dormant threshold in [0, 1) on the unit's score m_i / mean_j m_j.
    """
    count, units = _dormant_count(h, tau)
    return count / units


def fau(h: Any) -> float:
    """Fraction of active units: E_{x,i,p} [h > 0] (the part of the network on its linear piece).

    :param h: one activation's output, ``(B, U)`` or ``(B, C, *spatial)`` (unit = channel); a tensor or array.
    """
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

    :param h: one activation's output, ``(B, U)`` or ``(B, C, *spatial)`` (unit = channel); a tensor or array.
    :param low: the activation's lower bound (tanh: -1, sigmoid: 0; see ``layers.saturation_bounds``).
    :param high: its upper bound (> ``low``).
    """
    count, units = _saturated_count(h, low, high)
    return count / units


# -- Rank metrics on singular values ----------------------------------------


def _features(h: torch.Tensor) -> torch.Tensor:
    """Phi: ``(B, U)`` as is; ``(B, C, *spatial)`` averaged over positions to ``(B, C)``."""
    return _units_first(h).mean(dim=2)


def singular_values(phi: Any) -> torch.Tensor:
    """Singular values of the (uncentered) feature matrix Phi, float64, descending.

    :param phi: the ``(B, U)`` feature matrix (conv: average the positions first).
    """
    phi = _as_tensor(phi).detach()
    if phi.dim() != 2:
        raise ValueError(f"feature matrix of shape {tuple(phi.shape)}: expected (batch, units)")
    return torch.linalg.svdvals(phi.to(torch.float64))


def _sv(s: Any) -> torch.Tensor:
    s = _as_tensor(s).detach().to(torch.float64).reshape(-1)
    return torch.sort(s, descending=True).values


def srank(s: Any, delta: float = 0.01) -> int:
    """srank_delta: the fewest singular values carrying (1 - delta) of their sum (Kumar et al. 2021).

    :param s: singular values (any order; flattened); 0 when empty or all zero.
    :param delta: the share in (0, 1) of the singular values' sum that may be left out.
    """
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
    """exp(entropy(s / sum s)): a smooth count of the directions the features spread over.

    :param s: singular values (any order; flattened); 0 when empty or all zero.
    """
    s = _sv(s)
    total = s.sum()
    if s.numel() == 0 or total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * torch.log(p)).sum()))


def stable_rank(s: Any) -> float:
    """sum s_i^2 / s_max^2 = ||Phi||_F^2 / ||Phi||_2^2: rank that ignores tiny singular values.

    :param s: singular values (any order; flattened); 0 when empty or all zero.
    """
    s = _sv(s)
    if s.numel() == 0 or s[0] <= 0:
        return 0.0
    return float((s**2).sum() / s[0] ** 2)


# -- Feature change (Lyle et al. 2025) ----------------------------------------


def delta_c(phi_a: Any, phi_b: Any) -> float:
    """||C_b - C_a||_F / ||C_a||_F with C = Phi^T Phi / B: how much the feature second moment moved.

    :param phi_a: the reference ``(B, U)`` features (0 if both C are 0, inf if only C_a is).
    :param phi_b: the ``(B, U)`` features on the same inputs, of the same shape.
    """
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
    """Fraction of (input, unit, position) on/off entries [h > 0] that flipped between two patterns.

    :param pat_a: the first on/off pattern (nonzero = on), e.g. ``FeatureSnapshot.pattern[key]``.
    :param pat_b: the second, of the same shape; 0 when both are empty.
    """
    flips, total = _flip_count(pat_a, pat_b)
    return flips / total if total else 0.0
