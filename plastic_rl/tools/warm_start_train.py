"""The warm-starting validator's arms and one run: each arm's recipe, the model, the two-phase training loop.

Its own module because this is the experiment itself: what every arm does at the data change
(intervention, new optimizer state, re-warm) and what is logged each epoch. The constants here are
shared by the reports, the plots and the command line. ``plastic_rl.tools.warm_start`` re-exports
every name.
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn
from torch.nn import functional as F

from plastic_rl import diagnostics, interventions
from plastic_rl.elr import ELR, OnDemandRewarm
from plastic_rl.norm import insert_norm
from plastic_rl.tools._validate import IntervalMean, Timer
from plastic_rl.tools.warm_start_data import Data, subset

ARMS = ("fresh", "warm", "warm+shrink-perturb", "warm+redo", "warm+elr", "warm+project", "warm+rewarm", "fresh+elr")
# arm -> (warm-started, projected, re-warmed, intervention at the data change)
RECIPES = {
    "fresh": (False, False, False, None),
    "warm": (True, False, False, None),
    "warm+shrink-perturb": (True, False, False, "shrink-perturb"),
    "warm+redo": (True, False, False, "redo"),
    "warm+elr": (True, True, True, None),
    "warm+project": (True, True, False, None),
    "warm+rewarm": (True, False, True, None),
    "fresh+elr": (False, True, True, None),
}
REDO_TAU, REDO_BATCH = 0.1, 1024
SWEEP_ARMS = ("fresh", "warm", "warm+elr", "fresh+elr")
SWEEP_LRS = "3e-4,1e-3,3e-3,1e-2,3e-2"


def build_model(features: int, classes: int, hidden: int = 256) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    return insert_norm(net, kind="layer")  # type: ignore[return-value]  # Linear -> LayerNorm -> ReLU; the read-out stays linear


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    acc = float((model(x).argmax(1) == y).float().mean())
    model.train()
    return acc


def run(arm: str, seed: int, data: Data, cfg: argparse.Namespace, log=print) -> tuple[list[dict], dict]:
    warm, project, rewarm, intervention = RECIPES[arm]
    n = len(data.x)
    steps_per_epoch = math.ceil(n / cfg.batch)
    phase_steps = cfg.epochs * steps_per_epoch
    torch.manual_seed(seed)
    model = build_model(data.x.shape[1], int(data.y.max()) + 1, cfg.hidden)
    if cfg.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.wd, foreach=True)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.wd, foreach=True)  # type: ignore[assignment]
    warmup = round(cfg.warmup * phase_steps)
    schedule = None
    if rewarm:
        schedule = OnDemandRewarm(warmup=warmup, decay=phase_steps - warmup, peak=cfg.peak, floor=cfg.floor)
    elr = ELR(model, optimizer, schedule=schedule, project=project)  # measures every step: per-epoch means
    means = IntervalMean()
    probe = data.x_test[:512]
    gen = torch.Generator().manual_seed(seed + 1)
    timer = Timer()
    rows: list[dict] = []
    phases = [("phase1", subset(n, cfg.fraction, seed)), ("phase2", None)] if warm else [("phase2", None)]
    step = 0
    phase1_train_acc = None
    previous = None
    at_change = None
    for phase, idx in phases:
        if phase == "phase2":
            torch.manual_seed(10_000 + seed)  # the fresh values an intervention draws
            if intervention == "shrink-perturb":  # clears the optimizer state of what it touches (everything)
                interventions.shrink_perturb(model, optimizer, shrink=0.4, perturb=0.1)
            elif intervention == "redo":  # zeroes the optimizer state of the recycled units' entries
                inputs = data.x[torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:REDO_BATCH]]
                redone = interventions.redo(model, optimizer, inputs, tau=REDO_TAU)
                log(f"  {arm} seed {seed}: redo recycled " + ", ".join(f"{len(u)} of {layer}" for layer, u in redone.items()))
            if not cfg.keep_optimizer_state:  # phase 2 is a new training run from the old weights
                optimizer.state.clear()
            if rewarm:
                elr.rewarm()
            at_change = diagnostics.FeatureSnapshot(model, probe)
        x_all = data.x if idx is None else data.x[idx]
        y_all = data.y if idx is None else data.y[idx]
        for epoch_step in range(phase_steps):
            i = torch.randint(len(x_all), (cfg.batch,), generator=gen)
            loss = F.cross_entropy(model(x_all[i]), y_all[i])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            elr.step(loss=loss.detach())
            means.add(elr.metrics())
            step += 1
            if (epoch_step + 1) % steps_per_epoch == 0:
                snap = diagnostics.FeatureSnapshot(model, probe)
                row = {
                    "arm": arm,
                    "base_lr": cfg.lr,
                    "seed": seed,
                    "phase": phase,
                    "step": step,
                    "phase_step": epoch_step + 1,
                    "train_acc": accuracy(model, x_all, y_all),
                    "full_train_acc": accuracy(model, data.x, data.y),
                    "test_acc": accuracy(model, data.x_test, data.y_test),
                    "lr": cfg.lr * elr.metrics()["lr_factor"],
                }
                if previous is not None:  # feature change over the last epoch (across the change too)
                    d = diagnostics.compare(previous, snap)
                    row["delta_c_epoch"], row["delta_a_epoch"] = d["delta_c"], d["delta_a"]
                if at_change is not None:  # feature change since the data change
                    d = diagnostics.compare(at_change, snap)
                    row["delta_c"], row["delta_a"] = d["delta_c"], d["delta_a"]
                previous = snap
                row.update({k: v for k, v in elr.metrics().items() if k != "lr_factor"})  # this step's own
                row.update(means.pop())  # elr_mean/<layer>: the mean over the epoch
                rows.append(row)
        if phase == "phase1":
            phase1_train_acc = rows[-1]["train_acc"]
    elr.remove()
    last = rows[-1]
    summary = {
        "arm": arm,
        "base_lr": cfg.lr,
        "seed": seed,
        "final_test_acc": last["test_acc"],
        "final_train_acc": last["full_train_acc"],
        "phase1_train_acc": phase1_train_acc,
        "wall_s": round(timer(), 1),
    }
    return rows, summary
