"""Grokking on modular addition: does raising the effective learning rate make a network generalize sooner?

    python -m plastic_rl.tools.grokking [--p 97] [--rho 0.3] [--model mlp|transformer] [--steps N]
                                        [--arms baseline,baseline+schedule,nap,elr,late-elr] [--seeds 0-2] [--out DIR]
    python -m plastic_rl.tools.grokking --sweep [--lrs 1e-3,3e-3,1e-2,3e-2]     # every arm at every lr

Task: every pair (x, y) in [0, p)^2 labelled (x + y) mod p; a random fraction ``rho`` of the p^2 pairs
is the training set, the rest the test set (the split depends on the seed, and is the same for every
arm of a seed). Minibatches of 512 drawn with replacement (``--batch 0``: full batch), cross-entropy.

Arms (same seed: same split, same initial weights; same budget):

- ``baseline``: the classic grokking set-up, no normalization, AdamW (weight decay 1.0) at a
  constant lr 1e-3. ELR runs with ``project=False``: it only measures.
- ``baseline+schedule``: the plain network with ``elr``'s lr schedule (no projection): the matched
  control for ``elr``, so its speed-up is not a larger nominal lr.
- ``nap``: ``insert_norm`` (LayerNorm before the ReLU), the normalized layers and their gains
  projected to their initial norm every 100 steps, constant lr.
- ``elr``: normalized and projected every step, and a warm-up to a high peak (1e-2) then a cosine
  over the whole run (``CyclicRewarm(period=steps)``).
- ``late-elr``: normalized and projected, a low constant lr until ``--late-at``, then re-warmed
  (``elr.rewarm()``) to the same peak: "grokking on demand".

In the normalized arms the parameters that are not scale-invariant (token embedding, output layer;
in the transformer also the RMSNorm gains, which ELR does not project there) get AdamW weight decay:
left free they grow, the loss collapses and nothing generalizes. See docs/validators.md.

Speed-ups are only ever reported at a matched lr: ``nap`` against ``baseline`` at the same constant
lr, ``elr`` against ``baseline+schedule`` under the same schedule. ``--sweep`` runs the arms at every
lr of ``--lrs`` (a constant arm at that lr; a scheduled arm with that lr as its peak) and tests the
paper's explanation: the hidden layer's measured ELR, averaged over the steps before test accuracy
first reaches 50%, against steps to 90%, over all arms and lrs (Spearman's rank correlation).

Writes to ``--out``: ``curves.csv`` (every logged step of every arm and seed), ``summary.csv``,
``summary.md`` (steps to 50/90/95% test accuracy), ``curves.png``; with ``--sweep`` ``curves.csv``,
``sweep.csv``, ``sweep.md`` and ``elr_scatter.png``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from plastic_rl import diagnostics
from plastic_rl.elr import ELR, CyclicRewarm, OnDemandRewarm, projected_parameters
from plastic_rl.norm import insert_norm
from plastic_rl.tools._validate import (
    IntervalMean,
    Timer,
    add_common,
    collect,
    first_step,
    machine,
    markdown_table,
    parse_lrs,
    positive_int,
    prepare_out,
    pyplot,
    resolve_common,
    write_outputs,
)

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


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class MLP(nn.Module):
    """Shared token embedding, the two embeddings concatenated, one hidden ReLU layer, linear read-out."""

    def __init__(self, p: int, embed: int = 128, hidden: int = 256):
        super().__init__()
        self.embed = nn.Embedding(p, embed)
        self.net = nn.Sequential(nn.Linear(2 * embed, hidden), nn.ReLU(), nn.Linear(hidden, p))

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return self.net(self.embed(xy).flatten(1))

    def output_layers(self) -> list[str]:
        return ["net.2"]


class Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.attn_norm = nn.RMSNorm(d)
        self.attn = Attention(d, heads)
        self.mlp_norm = nn.RMSNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d, bias=False), nn.ReLU(), nn.Linear(4 * d, d, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """The paper's small transformer: 2 pre-norm blocks, 4 heads, RMSNorm before attention and MLP, no biases.

    Input "x y =" (token p is "="), causal attention, the logits read at "=". A final RMSNorm before
    the read-out makes the residual stream's overall scale irrelevant to the output.
    """

    def __init__(self, p: int, d: int = 128, heads: int = 4, layers: int = 2):
        super().__init__()
        self.p = p
        self.tok = nn.Embedding(p + 1, d)
        self.pos = nn.Embedding(3, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.norm = nn.RMSNorm(d)
        self.unembed = nn.Linear(d, p, bias=False)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        eq = torch.full((xy.shape[0], 1), self.p, dtype=xy.dtype, device=xy.device)
        tokens = torch.cat([xy, eq], dim=1)
        h = self.tok(tokens) + self.pos.weight
        for block in self.blocks:
            h = block(h)
        return self.unembed(self.norm(h[:, -1]))

    def output_layers(self) -> list[str]:
        return ["unembed"]

    def hidden_layers(self) -> list[str]:
        """The weight matrices ELR projects (``include=``): everything but the embeddings and the read-out."""
        names = []
        for i in range(len(self.blocks)):
            names += [f"blocks.{i}.attn.qkv", f"blocks.{i}.attn.proj", f"blocks.{i}.mlp.0", f"blocks.{i}.mlp.2"]
        return names


def build_model(cfg: argparse.Namespace, normalized: bool) -> nn.Module:
    if cfg.model == "mlp":
        model = MLP(cfg.p, cfg.embed, cfg.hidden)
        if normalized:
            insert_norm(model, kind=cfg.norm)  # net.0 -> LayerNorm -> ReLU; net.2 (read-out) untouched
        return model
    return Transformer(cfg.p, cfg.embed)


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------


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


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    model.train()
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def elr_window(elr: list[float], steps: list[int], accs: list[float], threshold: float = WINDOW_AT) -> tuple[float, int]:
    """Mean per-step ELR (``elr[i]``: step i + 1) over steps 1..t, t the first logged step with accuracy >= threshold.

    All steps when no logged step gets there. Why this window: the paper's claim is that the ELR while
    the network is still learning its features governs when it generalizes; once it has, the ELR says
    nothing about the speed any more. Returns (mean, steps averaged).
    """
    end = first_step(steps, accs, threshold)
    n = len(elr) if end is None else min(end, len(elr))
    if n < 1:
        raise ValueError(f"no per-step ELR before step {end}: got {len(elr)} values")
    return statistics.fmean(elr[:n]), n


def run(arm: str, seed: int, cfg: argparse.Namespace, log=print, stop_at: float | None = None) -> tuple[list[dict], dict]:
    """Train one arm with one seed; return (logged rows, summary row).

    ``stop_at``: stop at the first logged step with test accuracy at or above it (the sweep: 0.9).
    """
    split = make_split(cfg.p, cfg.rho, seed)
    torch.manual_seed(seed)
    model = build_model(cfg, normalized=arm != "baseline")
    optimizer, elr = make_optimizer_and_elr(arm, model, cfg)
    probe = split.train_x[torch.randperm(len(split.train_x), generator=torch.Generator().manual_seed(seed))[:512]]
    timer = Timer()
    rows: list[dict] = []
    batch = cfg.batch if cfg.batch and cfg.batch < len(split.train_x) else None
    gen = torch.Generator().manual_seed(seed + 1)
    hidden, per_step, means = hidden_layer(cfg), [], IntervalMean()
    for step in range(1, cfg.steps + 1):
        if arm == "late-elr" and step == cfg.late + 1:
            elr.rewarm()
        if batch is None:
            x, y = split.train_x, split.train_y
        else:
            idx = torch.randint(len(split.train_x), (batch,), generator=gen)
            x, y = split.train_x[idx], split.train_y[idx]
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        elr.step(loss=loss.detach())
        metrics = elr.metrics()
        per_step.append(metrics[f"elr/{hidden}"])
        means.add(metrics)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            train_loss, train_acc = evaluate(model, split.train_x, split.train_y)
            test_loss, test_acc = evaluate(model, split.test_x, split.test_y)
            row = {
                "arm": arm,
                "nominal_lr": nominal_lr(arm, cfg),
                "seed": seed,
                "step": step,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "test_loss": test_loss,
                "test_acc": test_acc,
                "lr": optimizer.param_groups[0]["lr"] * metrics["lr_factor"],
            }
            row.update({k: v for k, v in metrics.items() if k != "lr_factor"})  # this step's own
            row.update(means.pop())  # elr_mean/<layer>: the mean since the last logged step
            row["param_norm"] = math.sqrt(sum(float(p.detach().pow(2).sum()) for p in model.parameters()))
            if step % cfg.diag_every == 0 or step == cfg.steps:
                d = diagnostics.measure(model, probe)
                row["dormant_ratio"] = d["dormant_ratio"]
            rows.append(row)
            if cfg.verbose and step % (cfg.eval_every * 20) == 0:
                log(
                    f"  {arm:9s} seed {seed} step {step:6d}  train {train_acc:.3f}  test {test_acc:.3f}  "
                    f"loss {train_loss:.3g}  [{timer():.0f}s]"
                )
            if stop_at is not None and test_acc >= stop_at:
                break
    elr.remove()
    steps_logged = [r["step"] for r in rows]
    accs = [r["test_acc"] for r in rows]
    summary = {"arm": arm, "nominal_lr": nominal_lr(arm, cfg), "seed": seed}
    for th in THRESHOLDS:
        summary[f"steps_to_{round(th * 100)}"] = first_step(steps_logged, accs, th)
    window, n = elr_window(per_step, steps_logged, accs)
    summary.update(
        {
            "final_train_acc": rows[-1]["train_acc"],
            "final_test_acc": rows[-1]["test_acc"],
            "best_test_acc": max(accs),
            "last_step": rows[-1]["step"],
            "elr_layer": hidden,
            "elr_window": window,
            "window_steps": n,
            "wall_s": round(timer(), 1),
        }
    )
    return rows, summary


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def _fmt_steps(s) -> str:
    return "not within budget" if s is None else str(s)


def _censored(s, budget: int) -> str:
    return f"> {budget}" if s is None else str(s)


def speedup(ref: int | None, arm: int | None, budget: int) -> str:
    """Steps of the reference over steps of the arm; a side not within the budget makes it a bound."""
    if ref is not None and arm is not None:
        return f"{ref / arm:.1f}x"
    if arm is not None:
        return f"> {budget / arm:.1f}x"
    if ref is not None:
        return f"< {ref / budget:.2f}x"
    return "neither"


def comparison_rows(summaries: list[dict], budget: int) -> list[list]:
    """One row per matched comparison and nominal lr present in ``summaries``, per-seed values joined by " / "."""
    by = {(s["arm"], s["nominal_lr"], s["seed"]): s["steps_to_90"] for s in summaries}
    seeds = list(dict.fromkeys(s["seed"] for s in summaries))
    lrs = sorted({s["nominal_lr"] for s in summaries})
    rows = []
    for arm, ref, what in COMPARISONS:
        for lr in lrs:
            both = [seed for seed in seeds if (arm, lr, seed) in by and (ref, lr, seed) in by]
            if both:
                rows.append(
                    [
                        f"`{arm}` vs `{ref}`",
                        what,
                        f"{lr:g}",
                        " / ".join(_censored(by[ref, lr, s], budget) for s in both),
                        " / ".join(_censored(by[arm, lr, s], budget) for s in both),
                        " / ".join(speedup(by[ref, lr, s], by[arm, lr, s], budget) for s in both),
                    ]
                )
    return rows


def matched_markdown(summaries: list[dict], budget: int, eval_every: int) -> list[str]:
    rows = comparison_rows(summaries, budget)
    if not rows:
        return []
    return [
        "",
        f"Speed-up to 90% test accuracy at a matched lr (the lr is the constant lr, or the schedule's peak): "
        f"steps of the reference / steps of the arm, per seed; resolution {eval_every} steps; "
        f"'> {budget}': not within the budget, which makes the speed-up a bound.",
        "",
        markdown_table(["arm vs reference", "matched", "lr", "reference: steps to 90%", "arm: steps to 90%", "speed-up"], rows),
    ]


def summary_markdown(summaries: list[dict], cfg: argparse.Namespace, wall: float, command: str) -> str:
    lines = [
        f"# Grokking: modular addition, p={cfg.p}, rho={cfg.rho}, model={cfg.model}, {cfg.steps} steps",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}; wall time {wall:.0f} s",
        "",
    ]
    per_seed = []
    for s in summaries:
        per_seed.append(
            [
                s["arm"],
                f"{s['nominal_lr']:g}",
                s["seed"],
                *(_fmt_steps(s[f"steps_to_{round(t * 100)}"]) for t in THRESHOLDS),
                f"{s['final_train_acc']:.3f}",
                f"{s['final_test_acc']:.3f}",
                f"{s['best_test_acc']:.3f}",
                f"{s['elr_window']:.2e}",
                s["wall_s"],
            ]
        )
    lines.append(
        markdown_table(
            [
                "arm",
                "lr",
                "seed",
                "steps to 50%",
                "steps to 90%",
                "steps to 95%",
                "final train acc",
                "final test acc",
                "best test acc",
                f"mean ELR {summaries[0]['elr_layer']} to 50%",
                "wall s",
            ],
            per_seed,
        )
    )
    arms = list(dict.fromkeys(s["arm"] for s in summaries))
    lines += ["", f"Steps to 90% test accuracy, per arm (median over the seeds that reached it; resolution {cfg.eval_every} steps):", ""]
    agg = []
    for arm in arms:
        reached = sorted(s["steps_to_90"] for s in summaries if s["arm"] == arm and s["steps_to_90"] is not None)
        n = sum(1 for s in summaries if s["arm"] == arm)
        med = reached[len(reached) // 2] if reached else None
        agg.append([arm, f"{len(reached)}/{n}", _fmt_steps(med)])
    lines.append(markdown_table(["arm", "seeds reaching 90%", "median steps to 90%"], agg))
    lines += matched_markdown(summaries, cfg.steps, cfg.eval_every)
    return "\n".join(lines) + "\n"


def spearman(
    summaries: list[dict], budget: int, arms=None, censored: bool = True, lr: float | None = None, key: str = "elr_window"
) -> dict:
    """Spearman's rho of a run's mean ELR (``key``) against its steps to 90%, over the runs selected.

    A run not within the budget ranks last (steps = budget + 1, tied with the other such runs: Spearman
    works on ranks, and all we know of them is that they rank after every run that got there);
    ``censored=False`` leaves them out instead.
    """
    pts = [(s[key], s["steps_to_90"]) for s in summaries if (arms is None or s["arm"] in arms) and (lr is None or s["nominal_lr"] == lr)]
    if not censored:
        pts = [p for p in pts if p[1] is not None]
    x = [p[0] for p in pts]
    y = [budget + 1 if p[1] is None else p[1] for p in pts]
    out = {"n": len(pts), "censored": sum(p[1] is None for p in pts), "rho": math.nan, "p": math.nan}
    if len(pts) >= 3 and len(set(x)) > 1 and len(set(y)) > 1:
        from scipy.stats import spearmanr

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = spearmanr(x, y)
        out.update(rho=float(res.statistic), p=float(res.pvalue))
    return out


def _rho(r: dict) -> list[str]:
    return ["undefined (a constant column)", ""] if math.isnan(r["rho"]) else [f"{r['rho']:.2f}", f"{r['p']:.1e}"]


def spearman_rows(summaries: list[dict], budget: int) -> list[list]:
    """Every run; each kind of network; the runs that got there; each lr alone (arms differ, the lr does not)."""
    groups = [
        ("all runs", {}),
        ("plain networks (" + ", ".join(PLAIN) + ")", {"arms": PLAIN}),
        ("normalized networks (nap, elr, late-elr)", {"arms": ("nap", "elr", "late-elr")}),
        ("runs that reached 90% only", {"censored": False}),
    ]
    groups += [(f"lr {lr:g} only (across arms)", {"lr": lr}) for lr in sorted({s["nominal_lr"] for s in summaries})]
    fixed = "elr_fixed" in summaries[0]
    rows = []
    for label, select in groups:
        r = spearman(summaries, budget, **select)  # type: ignore[arg-type]
        if r["n"]:
            rows.append(
                [label, r["n"], r["censored"], *_rho(r), *(_rho(spearman(summaries, budget, key="elr_fixed", **select)) if fixed else [])]  # type: ignore[arg-type]
            )
    return rows


def interval_mean(rows: list[dict], key: str, end: int) -> float:
    """Mean per-step value over steps 1..end of one run, from its logged interval means (weighted by length)."""
    total, last = 0.0, 0
    for r in rows:
        if r["step"] > end:
            break
        total += r[key] * (r["step"] - last)
        last = r["step"]
    if last != end:
        raise ValueError(f"end={end} is not a logged step of this run (last logged: {last})")
    return total / end


def add_fixed_window(summaries: list[dict], rows: list[dict], budget: int) -> int:
    """Give every run ``elr_fixed``: its mean ELR over steps 1..W, W the earliest 50% step of any run (or the budget).

    Why: the window to 50% is shorter for runs that generalize sooner, and the ELR of a plain network
    falls as its weights grow, so part of a correlation over it could come from the window alone. A
    window of the same steps for every run cannot.
    """
    end = min((s["steps_to_50"] for s in summaries if s["steps_to_50"] is not None), default=budget)
    for s in summaries:
        run_rows = [r for r in rows if (r["arm"], r["nominal_lr"], r["seed"]) == (s["arm"], s["nominal_lr"], s["seed"])]
        s["elr_fixed"], s["fixed_steps"] = interval_mean(run_rows, f"elr_mean/{s['elr_layer']}", end), end
    return end


def sweep_markdown(summaries: list[dict], cfg: argparse.Namespace, wall: float, command: str) -> str:
    budget, layer = cfg.steps, summaries[0]["elr_layer"]
    arms = list(dict.fromkeys(s["arm"] for s in summaries))
    lrs = sorted({s["nominal_lr"] for s in summaries})
    seeds = list(dict.fromkeys(s["seed"] for s in summaries))
    by = {(s["arm"], s["nominal_lr"], s["seed"]): s for s in summaries}

    def cells(key, fmt):
        return [[arm, *(" / ".join(fmt(by[arm, lr, seed][key]) for seed in seeds if (arm, lr, seed) in by) for lr in lrs)] for arm in arms]

    lr_heads = [f"lr {lr:g}" for lr in lrs]
    lines = [
        f"# Grokking lr sweep: p={cfg.p}, rho={cfg.rho}, model={cfg.model}, budget {budget} steps",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}; wall time {wall:.0f} s; seeds {seeds}",
        "",
        "The lr of a constant arm is its lr; that of a scheduled arm (`baseline+schedule`, `elr`) is its peak "
        f"(warm-up over {cfg.warmup} steps, cosine over the {budget}-step budget to "
        f"{cfg.floor_lr / cfg.peak_lr:g} x the peak). A run stops at the first logged step with test "
        f"accuracy >= {STOP_AT:.0%} (its schedule spans the budget regardless).",
        "",
        f"Steps to 90% test accuracy, seeds {' / '.join(map(str, seeds))} (resolution {cfg.eval_every} steps; "
        f"'> {budget}': not within the budget):",
        "",
        markdown_table(["arm", *lr_heads], cells("steps_to_90", lambda v: _censored(v, budget))),
    ]
    lines += matched_markdown(summaries, budget, cfg.eval_every)
    lines += [
        "",
        f"Measured ELR of the hidden layer `{layer}` (`ELR.metrics()`, every step), averaged over the steps "
        f"up to the first logged step with test accuracy >= {WINDOW_AT:.0%} (the whole run when none), "
        f"seeds {' / '.join(map(str, seeds))}:",
        "",
        markdown_table(["arm", *lr_heads], cells("elr_window", lambda v: f"{v:.2e}")),
    ]
    fixed = summaries[0].get("fixed_steps")
    heads = ["runs", "n", "not within budget", "rho, window to 50%", "p-value"]
    if fixed:
        lines += [
            "",
            f"The same ELR averaged over a fixed window, steps 1..{fixed} for every run ({fixed}: the earliest "
            f"logged step at which any run reached {WINDOW_AT:.0%}), seeds {' / '.join(map(str, seeds))}:",
            "",
            markdown_table(["arm", *lr_heads], cells("elr_fixed", lambda v: f"{v:.2e}")),
        ]
        heads += [f"rho, steps 1..{fixed}", "p-value"]
    lines += [
        "",
        "Spearman's rank correlation of the mean ELR with steps to 90% (a run not within the budget "
        "ranks last, tied with the others that did not get there; the paper predicts a strong negative "
        "one):",
        "",
        markdown_table(heads, spearman_rows(summaries, budget)),
    ]
    return "\n".join(lines) + "\n"


COLORS = dict(zip(ARMS, ["tab:gray", "tab:brown", "tab:blue", "tab:red", "tab:green"]))


def plot_scatter(summaries: list[dict], path, cfg: argparse.Namespace) -> None:
    """Mean ELR against steps to 90%, every run (hollow above the budget line: not within it); a panel per window."""
    plt = pyplot()
    lrs = sorted({s["nominal_lr"] for s in summaries})
    markers = dict(zip(lrs, "osD^vP*Xh<>p"))
    layer = summaries[0]["elr_layer"]
    panels = [("elr_window", f"mean ELR of {layer} until test accuracy first >= {WINDOW_AT:.0%}")]
    if "elr_fixed" in summaries[0]:
        panels.append(("elr_fixed", f"mean ELR of {layer} over steps 1..{summaries[0]['fixed_steps']} (every run)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5), squeeze=False)
    above = cfg.steps * 1.08
    for ax, (key, label) in zip(axes.flat, panels):
        for s in summaries:
            color, censored = COLORS.get(s["arm"], "k"), s["steps_to_90"] is None
            ax.scatter(
                s[key],
                above if censored else s["steps_to_90"],
                marker=markers[s["nominal_lr"]],
                s=40,
                facecolors="none" if censored else color,
                edgecolors=color,
                linewidths=1.2,
            )
        ax.axhline(cfg.steps, color="k", lw=0.6, ls=":")
        ax.text(
            0.99, above, f"not within {cfg.steps}", transform=ax.get_yaxis_transform(), fontsize=8, va="center", ha="right"
        )  # the runs that did not get there have the low ELRs, on the left
        ax.set_xscale("log")
        ax.set_xlabel(label, fontsize=9)
        ax.set_ylabel("steps to 90% test accuracy", fontsize=9)
        r = spearman(summaries, cfg.steps, key=key)
        ax.set_title(f"Spearman rho = {r['rho']:.2f} over {r['n']} runs ({r['censored']} not within budget, ranked last)", fontsize=9)
    for arm in dict.fromkeys(s["arm"] for s in summaries):
        axes.flat[0].scatter([], [], color=COLORS.get(arm, "k"), marker="s", label=arm)
    for lr in lrs:
        axes.flat[0].scatter([], [], color="k", marker=markers[lr], facecolors="none", label=f"lr {lr:g}")
    axes.flat[0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"Grokking, x+y mod {cfg.p}, rho={cfg.rho}: measured ELR vs steps to 90% (filled: got there)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot(rows: list[dict], path, cfg: argparse.Namespace) -> None:
    plt = pyplot()
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    colors = COLORS
    hidden = "blocks.0.mlp.0" if cfg.model == "transformer" else "net.0"
    out_layer = "unembed" if cfg.model == "transformer" else "net.2"
    panels = [
        ("train_acc", "train accuracy", False),
        ("test_acc", "test accuracy", False),
        ("lr", "learning rate", True),
        (f"param_norm/{hidden}", f"||W|| {hidden} (hidden)", True),
        (f"param_norm/{out_layer}", f"||W|| {out_layer} (read-out)", True),
        (f"elr_mean/{hidden}", f"ELR {hidden} (mean per log interval)", True),
        (f"elr_mean/{out_layer}", f"ELR {out_layer} (mean per log interval)", True),
        ("dormant_ratio", "dormant ratio (tau=0.025)", False),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(16, 6.5))
    for ax, (key, title, log) in zip(axes.flat, panels):
        for arm in arms:
            seeds = list(dict.fromkeys(r["seed"] for r in rows if r["arm"] == arm))
            for i, seed in enumerate(seeds):
                pts = [(r["step"], r[key]) for r in rows if r["arm"] == arm and r["seed"] == seed and r.get(key) is not None]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                ax.plot(
                    xs,
                    ys,
                    color=colors.get(arm, "k"),
                    alpha=0.85 if i == 0 else 0.4,
                    lw=1.2 if i == 0 else 0.8,
                    label=arm if i == 0 else None,
                )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        if log:
            ax.set_yscale("log")
        if key == "test_acc":
            for th in (0.9,):
                ax.axhline(th, color="k", lw=0.5, ls=":")
    axes.flat[1].legend(fontsize=8)
    fig.suptitle(f"Grokking, x+y mod {cfg.p}, rho={cfg.rho}, {cfg.model}; seeds {cfg.seeds} (first seed bold)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m plastic_rl.tools.grokking",
        description="Grokking on modular addition: baseline (AdamW, wd 1) vs normalize+project(+re-warm).",
    )
    parser.add_argument("--p", type=int, default=97, help="modulus, >= 3 (default 97)")
    parser.add_argument("--rho", type=float, default=0.3, help="training fraction of the p^2 pairs, in (0, 1) (default 0.3)")
    parser.add_argument("--model", default="mlp", help="mlp (default) or transformer")
    parser.add_argument("--steps", type=positive_int("--steps"), default=None, help="optimizer steps per run (default 3000)")
    parser.add_argument("--batch", type=int, default=512, help="minibatch size (default 512, sampled with replacement); 0 = full batch")
    parser.add_argument("--embed", type=int, default=128, help="embedding width (default 128)")
    parser.add_argument("--hidden", type=int, default=256, help="MLP hidden width (default 256)")
    parser.add_argument("--norm", default="layer", choices=("layer", "rms"), help="normalization insert_norm inserts")
    parser.add_argument(
        "--gains",
        default="project",
        choices=("project", "decay"),
        help="normalized arms: project the norm gains with ELR (default) or leave them to AdamW decay",
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="base lr of baseline, nap, elr (default 1e-3)")
    parser.add_argument("--wd", type=float, default=1.0, help="baseline AdamW weight decay (default 1.0)")
    parser.add_argument(
        "--norm-wd", type=float, default=1.0, help="AdamW weight decay on the non-projected parameters of the normalized arms (default 1.0)"
    )
    parser.add_argument("--peak-lr", type=float, default=1e-2, help="re-warm peak lr of elr, late-elr (default 1e-2)")
    parser.add_argument("--floor-lr", type=float, default=1e-3, help="lr at the end of the cosine (default 1e-3)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default steps // 10)")
    parser.add_argument("--low-lr", type=float, default=1e-3, help="late-elr: lr before the re-warm (default 1e-3, 10x below the peak)")
    parser.add_argument("--late-at", type=float, default=0.5, help="late-elr: re-warm after this fraction of the steps (default 0.5)")
    parser.add_argument(
        "--eval-every", type=positive_int("--eval-every"), default=100, help="log (train/test accuracy, ELR) every N steps (default 100)"
    )
    parser.add_argument(
        "--diag-every",
        type=positive_int("--diag-every"),
        default=500,
        help="dormant ratio every N steps (multiple of --eval-every; default 500)",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="run every arm at every lr of --lrs (default arms: " + ", ".join(SWEEP_ARMS) + "), stop "
        "each run at 90%% test accuracy, and correlate the measured ELR with steps to 90%%",
    )
    parser.add_argument(
        "--lrs",
        default=SWEEP_LRS,
        help=f"--sweep: the lrs, comma-separated (a constant arm's lr, a scheduled arm's peak; default {SWEEP_LRS})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    add_common(parser, ARMS, default_out="runs/grokking", seeds="0-2")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.sweep:
        args.lrs = parse_lrs(parser, args.lrs, example=SWEEP_LRS)
        if args.arms.strip() == "all":
            args.arms = ",".join(SWEEP_ARMS)
        try:
            import scipy.stats  # noqa: F401
        except ImportError:
            parser.error("--sweep needs scipy for Spearman's rank correlation: pip install scipy")
    if args.p < 3:
        parser.error(f"--p {args.p} is not accepted; the modulus must be an int >= 3")
    if not 0 < args.rho < 1:
        parser.error(f"--rho {args.rho} is not accepted; the training fraction must be in (0, 1), e.g. 0.3")
    n_train = round(args.rho * args.p * args.p)
    if not 1 <= n_train < args.p * args.p:
        parser.error(
            f"--rho {args.rho} with --p {args.p} gives {n_train} training pairs of {args.p**2}; need at least 1 and at least one test pair"
        )
    if args.model not in MODELS:
        parser.error(f"--model {args.model!r} is unknown; accepted: {', '.join(MODELS)}")
    if not 0 <= args.late_at < 1:
        parser.error(f"--late-at {args.late_at} is not accepted; it is a fraction of the steps in [0, 1)")
    for name in ("lr", "peak_lr", "floor_lr", "low_lr"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            parser.error(f"--{name.replace('_', '-')} {value} is not accepted; it must be a number > 0")
    if args.floor_lr > args.peak_lr:
        parser.error(f"--floor-lr {args.floor_lr} is above --peak-lr {args.peak_lr}; the cosine ends at or below its peak")
    for name in ("wd", "norm_wd"):
        if not getattr(args, name) >= 0:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} is not accepted; it must be >= 0")
    if args.batch < 0:
        parser.error(f"--batch {args.batch} is not accepted; 0 (full batch) or a size >= 1")
    resolve_common(parser, args, ARMS)
    if args.steps is None:
        args.steps = 3000
    args.warmup = args.steps // 10 if args.warmup is None else args.warmup
    if not 0 <= args.warmup <= args.steps:
        parser.error(f"--warmup {args.warmup} is not accepted; it must be in [0, --steps={args.steps}]")
    args.late = int(args.late_at * args.steps)
    if args.diag_every % args.eval_every:
        parser.error(f"--diag-every {args.diag_every} must be a multiple of --eval-every {args.eval_every}")
    args.verbose = not args.quiet
    return args


def _progress(s: dict) -> str:
    return (
        f"{s['arm']:17s} lr {s['nominal_lr']:<7g} seed {s['seed']}: steps to 50/90/95% = "
        f"{', '.join(_fmt_steps(s[f'steps_to_{round(t * 100)}']) for t in THRESHOLDS)}; "
        f"final test {s['final_test_acc']:.3f}; mean ELR to 50% {s['elr_window']:.2e}  ({s['wall_s']} s)"
    )


def sweep(args: argparse.Namespace, out, command: str) -> int:
    """Every arm at every lr and seed, each stopped at 90% test accuracy; the ELR table, correlation, scatter."""
    timer = Timer()
    jobs = [(arm, seed, at_lr(args, arm, lr)) for lr in args.lrs for seed in args.seeds for arm in args.arms]
    rows, summaries = collect(jobs, lambda arm, seed, cfg: run(arm, seed, cfg, stop_at=STOP_AT), _progress, args.verbose)
    add_fixed_window(summaries, rows, args.steps)
    text = sweep_markdown(summaries, args, timer(), command)
    files = write_outputs(out, "sweep", rows, summaries, text)
    plot_scatter(summaries, out / "elr_scatter.png", args)
    if args.verbose:
        print(text)
        print(f"wrote {out}/{', '.join(files)}, elr_scatter.png")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    out = prepare_out(args.out)
    command = "python -m plastic_rl.tools.grokking " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.sweep:
        return sweep(args, out, command)
    timer = Timer()
    rows, summaries = collect([(arm, seed) for seed in args.seeds for arm in args.arms], lambda arm, seed: run(arm, seed, args),
                              _progress, args.verbose)  # fmt: skip
    text = summary_markdown(summaries, args, timer(), command)
    files = write_outputs(out, "summary", rows, summaries, text)
    plot(rows, out / "curves.png", args)
    if args.verbose:
        print(text)
        print(f"wrote {out}/{', '.join(files)}, curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
