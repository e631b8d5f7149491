"""The grokking validator's task: every pair (x, y) in [0, p)^2 labelled (x + y) mod p, split by seed.

Its own module because the split is the one thing every arm of a seed shares: it can be read and
tested without the models or the training loop. ``plastic_rl.tools.grokking`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Split:
    train_x: torch.Tensor  # (n_train, 2) long
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    train_idx: torch.Tensor  # indices into the p^2 pairs, pair index = x * p + y
    test_idx: torch.Tensor


def make_split(p: int, rho: float, seed: int) -> Split:
    """All p^2 pairs, shuffled with ``seed``; the first round(rho p^2) train, the rest test."""
    if p < 3:
        raise ValueError(f"p={p} must be >= 3")
    if not 0 < rho < 1:
        raise ValueError(f"rho={rho} must be in (0, 1)")
    n = p * p
    n_train = round(rho * n)
    if not 1 <= n_train < n:
        raise ValueError(f"rho={rho} leaves {n_train} of {n} pairs for training; need 1 .. {n - 1}")
    a = torch.arange(p)
    pairs = torch.cartesian_prod(a, a)  # row i is (i // p, i % p)
    labels = pairs.sum(1) % p
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:n_train], perm[n_train:]
    return Split(pairs[tr], labels[tr], pairs[te], labels[te], tr, te)
