"""The warm-starting validator's data: MNIST-1D generated in memory, or a local CIFAR-10 copy; the phase-1 subset.

Its own module because loading (and caching) the data is independent of the arms and the training
loop. ``plastic_rl.tools.warm_start`` re-exports every name (``_CACHE`` is the same dict).
"""

from __future__ import annotations

import argparse
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class Data:
    x: torch.Tensor  # (n_train, features) float32
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str


_CACHE: dict = {}


def mnist1d_data() -> Data:
    """MNIST-1D from ``mnist1d.data.make_dataset`` (procedural; no file, no network), 4000 / 1000."""
    if "mnist1d" not in _CACHE:
        import random

        from mnist1d.data import get_dataset_args, make_dataset

        # make_dataset seeds the global numpy and random generators: leave them as they were.
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            ds = make_dataset(get_dataset_args())
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        _CACHE["mnist1d"] = Data(
            torch.tensor(ds["x"], dtype=torch.float32),
            torch.tensor(ds["y"], dtype=torch.long),
            torch.tensor(ds["x_test"], dtype=torch.float32),
            torch.tensor(ds["y_test"], dtype=torch.long),
            "MNIST-1D",
        )
    return _CACHE["mnist1d"]


def cifar10_data(path: Path, n_train: int | None, n_test: int | None) -> Data:
    """CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``), flattened, standardized per channel."""

    def load(name):
        with open(path / name, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        return np.asarray(d[b"data"], dtype=np.float32), np.asarray(d[b"labels"], dtype=np.int64)

    parts = [load(f"data_batch_{i}") for i in range(1, 6) if (path / f"data_batch_{i}").is_file()]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    xt, yt = load("test_batch")
    x, y, xt, yt = x[:n_train], y[:n_train], xt[:n_test], yt[:n_test]
    mean = x.reshape(len(x), 3, -1).mean(axis=(0, 2)).repeat(1024)
    std = x.reshape(len(x), 3, -1).std(axis=(0, 2)).repeat(1024)
    norm = lambda a: torch.tensor((a - mean) / std)  # noqa: E731
    return Data(norm(x), torch.tensor(y), norm(xt), torch.tensor(yt), f"CIFAR-10 ({len(x)} / {len(xt)})")


def subset(n: int, fraction: float, seed: int) -> torch.Tensor:
    """The phase-1 indices: a random round(fraction * n) of range(n), sorted."""
    k = max(1, round(fraction * n))
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].sort().values


def load_data(args: argparse.Namespace) -> Data:
    if args.data is None:
        return mnist1d_data()
    return cifar10_data(Path(args.data), args.n_train, args.n_test)
