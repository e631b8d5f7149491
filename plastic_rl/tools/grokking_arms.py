"""The grokking validator's arms: their names, the lr each is matched at, its schedule, optimizer and ELR.

Its own module because this is what makes one arm differ from another (the training loop in
``plastic_rl.tools.grokking`` is the same for all), and the constants here are shared by the loop,
the reports, the plots and the command line. ``plastic_rl.tools.grokking`` re-exports every name.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from plastic_rl.elr import ELR, CyclicRewarm, OnDemandRewarm, projected_parameters
from plastic_rl.tools.grokking_model import Transformer

ARMS = ("baseline", "baseline+schedule", "nap", "elr", "late-elr")
SWEEP_ARMS = ("baseline", "baseline+schedule", "nap", "elr")
PLAIN = ("baseline", "baseline+schedule")  # no normalization, nothing projected
SCHEDULED = ("baseline+schedule", "elr", "late-elr")  # nominal lr: the schedule's peak
MODELS = ("mlp", "transformer")
THRESHOLDS = (0.5, 0.9, 0.95)
SWEEP_LRS = "1e-3,3e-3,1e-2,3e-2"
STOP_AT = 0.9  # a sweep run stops here: its schedule spans --steps regardless, so nothing before changes
WINDOW_AT = 0.5  # the ELR is averaged over the steps before test accuracy first reaches this
# (arm, reference, what is matched): the only speed-ups reported
COMPARISONS = (
    ("nap", "baseline", "same constant lr"),
    ("elr", "baseline+schedule", "same schedule"),
    ("baseline+schedule", "baseline", "schedule vs constant, plain"),
    ("elr", "nap", "schedule (+ per-step projection) vs constant, normalized"),
)


def hidden_layer(cfg: argparse.Namespace) -> str:
    """The layer whose ELR the sweep correlates with generalization: the MLP's hidden Linear."""
    return "blocks.0.mlp.0" if cfg.model == "transformer" else "net.0"


def nominal_lr(arm: str, cfg: argparse.Namespace) -> float:
    """What "the lr" of an arm is when arms are matched: the constant lr, or the schedule's peak."""
    return cfg.peak_lr if arm in SCHEDULED else cfg.lr


def at_lr(cfg: argparse.Namespace, arm: str, lr: float) -> argparse.Namespace:
    """``cfg`` with the arm's nominal lr set to ``lr``; a schedule keeps its shape (base, floor, low lr scale with it)."""
    out = argparse.Namespace(**vars(cfg))
    if arm in SCHEDULED:
        scale = lr / cfg.peak_lr  # exactly 1.0 at the default peak: the sweep's run is the default run
        out.lr, out.peak_lr, out.floor_lr, out.low_lr = cfg.lr * scale, lr, cfg.floor_lr * scale, cfg.low_lr * scale
    else:
        out.lr = lr
    return out


def make_schedule(arm: str, cfg: argparse.Namespace):
    """The arm's lr factor, relative to its optimizer's lr (``--lr``; ``--low-lr`` for late-elr); None: constant."""
    if arm in ("elr", "baseline+schedule"):
        return CyclicRewarm(period=cfg.steps, warmup=min(cfg.warmup, cfg.steps), peak=cfg.peak_lr / cfg.lr, floor=cfg.floor_lr / cfg.lr)
    if arm == "late-elr":  # idle (factor 1 = the low lr) until rewarm() at cfg.late
        decay = max(cfg.steps - cfg.late - cfg.warmup, 0)
        return OnDemandRewarm(warmup=cfg.warmup, decay=decay, peak=cfg.peak_lr / cfg.low_lr, floor=cfg.floor_lr / cfg.low_lr)
    return None


def make_optimizer_and_elr(arm: str, model: nn.Module, cfg: argparse.Namespace) -> tuple[torch.optim.Optimizer, ELR]:
    """AdamW with decay on what ELR does not project; ELR with the arm's projection and schedule.

    ELR measures every step (it does not change training): the sweep averages the per-step ELR.
    """
    betas = (0.9, 0.98)
    schedule = make_schedule(arm, cfg)
    if arm in PLAIN:
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.wd, betas=betas, foreach=True)
        return optimizer, ELR(model, optimizer, schedule=schedule, project=False)

    include = model.hidden_layers() if isinstance(model, Transformer) else None
    # The parameters ELR will project get no weight decay (projection pins their norm); the rest cfg.norm_wd.
    gains = "project" if cfg.gains == "project" else "none"
    projected = {id(p) for p in projected_parameters(model, include=include, gains=gains)}
    decayed = [p for p in model.parameters() if id(p) not in projected]
    free = [p for p in model.parameters() if id(p) in projected]
    lr = cfg.low_lr if arm == "late-elr" else cfg.lr
    optimizer = torch.optim.AdamW(
        [{"params": free, "weight_decay": 0.0}, {"params": decayed, "weight_decay": cfg.norm_wd}],
        lr=lr,
        betas=betas,
        foreach=True,
    )
    if arm == "nap":
        return optimizer, ELR(model, optimizer, project_every=100, include=include, gains=gains)
    return optimizer, ELR(model, optimizer, schedule=schedule, include=include, gains=gains)
