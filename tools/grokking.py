"""Grokking on modular addition: does raising the effective learning rate make a network generalize sooner?

    python -m plastic_rl.tools.grokking [--p 97] [--rho 0.3] [--model mlp|transformer] [--steps N]
                                        [--arms baseline,nap,elr,late-elr] [--seeds 0-2] [--out DIR]

Task: every pair (x, y) in [0, p)^2 labelled (x + y) mod p; a random fraction ``rho`` of the p^2 pairs
is the training set, the rest the test set (the split depends on the seed, and is the same for every
arm of a seed). Minibatches of 512 drawn with replacement (``--batch 0``: full batch), cross-entropy.

Arms (same seed: same split, same initial weights; same budget):

- ``baseline``: the classic grokking set-up, no normalization, AdamW (weight decay 1.0) at a
  constant lr 1e-3. ELR runs with ``project=False``: it only measures.
- ``nap``: ``insert_norm`` (LayerNorm before the ReLU), the normalized layers and their gains
  projected to their initial norm every 100 steps, constant lr.
- ``elr``: normalized and projected every step, and a warm-up to a high peak (1e-2) then a cosine
  over the whole run (``CyclicRewarm(period=steps)``).
- ``late-elr``: normalized and projected, a low constant lr until ``--late-at``, then re-warmed
  (``elr.rewarm()``) to the same peak: "grokking on demand".

In the normalized arms the parameters that are not scale-invariant (token embedding, output layer;
in the transformer also the RMSNorm gains, which ELR does not project there) get AdamW weight decay:
left free they grow, the loss collapses and nothing generalizes. See docs/validators.md.

Writes to ``--out``: ``curves.csv`` (every logged step of every arm and seed), ``summary.csv``,
``summary.md`` (steps to 50/90/95% test accuracy), ``curves.png``.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from plastic_rl import diagnostics
from plastic_rl.elr import ELR, CyclicRewarm, OnDemandRewarm, projected_parameters
from plastic_rl.norm import insert_norm
from plastic_rl.tools._validate import (
    Timer,
    add_common,
    first_step,
    machine,
    markdown_table,
    positive_int,
    prepare_out,
    pyplot,
    resolve_common,
    write_csv,
)

ARMS = ("baseline", "nap", "elr", "late-elr")
MODELS = ("mlp", "transformer")
THRESHOLDS = (0.5, 0.9, 0.95)


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


def make_optimizer_and_elr(arm: str, model: nn.Module, cfg: argparse.Namespace) -> tuple[torch.optim.Optimizer, ELR]:
    """AdamW with decay on what ELR does not project; ELR with the arm's projection and schedule."""
    betas = (0.9, 0.98)
    if arm == "baseline":
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.wd, betas=betas, foreach=True)
        return optimizer, ELR(model, optimizer, project=False, measure_every=cfg.eval_every)

    include = model.hidden_layers() if isinstance(model, Transformer) else None
    # The parameters ELR will project get no weight decay (projection pins their norm); the rest cfg.norm_wd.
    gains = "project" if cfg.gains == "project" else "none"
    projected = {id(p) for p in projected_parameters(model, include=include, gains=gains)}
    decayed = [p for p in model.parameters() if id(p) not in projected]
    free = [p for p in model.parameters() if id(p) in projected]
    lr = cfg.low_lr if arm == "late-elr" else cfg.lr
    optimizer = torch.optim.AdamW(
        [{"params": free, "weight_decay": 0.0}, {"params": decayed, "weight_decay": cfg.norm_wd}],
        lr=lr, betas=betas, foreach=True,
    )
    if arm == "nap":
        return optimizer, ELR(model, optimizer, project_every=100, measure_every=cfg.eval_every, include=include,
                              gains=gains)
    warmup = cfg.warmup
    if arm == "elr":
        schedule = CyclicRewarm(period=cfg.steps, warmup=min(warmup, cfg.steps), peak=cfg.peak_lr / lr,
                                floor=cfg.floor_lr / lr)
    else:  # late-elr: idle (factor 1 = the low lr) until rewarm() at cfg.late
        decay = max(cfg.steps - cfg.late - warmup, 0)
        schedule = OnDemandRewarm(warmup=warmup, decay=decay, peak=cfg.peak_lr / lr, floor=cfg.floor_lr / lr)
    return optimizer, ELR(model, optimizer, schedule=schedule, measure_every=cfg.eval_every, include=include, gains=gains)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    model.train()
    return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def run(arm: str, seed: int, cfg: argparse.Namespace, log=print) -> tuple[list[dict], dict]:
    """Train one arm with one seed; return (logged rows, summary row)."""
    split = make_split(cfg.p, cfg.rho, seed)
    torch.manual_seed(seed)
    model = build_model(cfg, normalized=arm != "baseline")
    optimizer, elr = make_optimizer_and_elr(arm, model, cfg)
    probe = split.train_x[torch.randperm(len(split.train_x), generator=torch.Generator().manual_seed(seed))[:512]]
    timer = Timer()
    rows: list[dict] = []
    batch = cfg.batch if cfg.batch and cfg.batch < len(split.train_x) else None
    gen = torch.Generator().manual_seed(seed + 1)
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
        if step % cfg.eval_every == 0 or step == cfg.steps:
            train_loss, train_acc = evaluate(model, split.train_x, split.train_y)
            test_loss, test_acc = evaluate(model, split.test_x, split.test_y)
            row = {"arm": arm, "seed": seed, "step": step, "train_loss": train_loss, "train_acc": train_acc,
                   "test_loss": test_loss, "test_acc": test_acc,
                   "lr": optimizer.param_groups[0]["lr"] * elr.metrics()["lr_factor"]}
            if step % cfg.eval_every == 0:  # ELR measured this step (measure_every = eval_every)
                row.update({k: v for k, v in elr.metrics().items() if k != "lr_factor"})
            row["param_norm"] = math.sqrt(sum(float(p.detach().pow(2).sum()) for p in model.parameters()))
            if step % cfg.diag_every == 0 or step == cfg.steps:
                d = diagnostics.measure(model, probe)
                row["dormant_ratio"] = d["dormant_ratio"]
            rows.append(row)
            if cfg.verbose and step % (cfg.eval_every * 20) == 0:
                log(f"  {arm:9s} seed {seed} step {step:6d}  train {train_acc:.3f}  test {test_acc:.3f}  "
                    f"loss {train_loss:.3g}  [{timer():.0f}s]")
    elr.remove()
    steps_logged = [r["step"] for r in rows]
    accs = [r["test_acc"] for r in rows]
    summary = {"arm": arm, "seed": seed}
    for th in THRESHOLDS:
        summary[f"steps_to_{round(th * 100)}"] = first_step(steps_logged, accs, th)
    summary.update({"final_train_acc": rows[-1]["train_acc"], "final_test_acc": rows[-1]["test_acc"],
                    "best_test_acc": max(accs), "wall_s": round(timer(), 1)})
    return rows, summary


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def _fmt_steps(s) -> str:
    return "not within budget" if s is None else str(s)


def summary_markdown(summaries: list[dict], cfg: argparse.Namespace, wall: float, command: str) -> str:
    lines = [f"# Grokking: modular addition, p={cfg.p}, rho={cfg.rho}, model={cfg.model}, {cfg.steps} steps",
             "", f"Command: `{command}`", "", f"Machine: {machine()}; wall time {wall:.0f} s", ""]
    per_seed = []
    for s in summaries:
        per_seed.append([s["arm"], s["seed"], *(_fmt_steps(s[f"steps_to_{round(t * 100)}"]) for t in THRESHOLDS),
                         f"{s['final_train_acc']:.3f}", f"{s['final_test_acc']:.3f}", f"{s['best_test_acc']:.3f}",
                         s["wall_s"]])
    lines.append(markdown_table(["arm", "seed", "steps to 50%", "steps to 90%", "steps to 95%", "final train acc",
                                 "final test acc", "best test acc", "wall s"], per_seed))
    arms = list(dict.fromkeys(s["arm"] for s in summaries))
    lines += ["", f"Steps to 90% test accuracy, per arm (median over the seeds that reached it; "
                  f"resolution {cfg.eval_every} steps):", ""]
    agg = []
    for arm in arms:
        reached = sorted(s["steps_to_90"] for s in summaries if s["arm"] == arm and s["steps_to_90"] is not None)
        n = sum(1 for s in summaries if s["arm"] == arm)
        med = reached[len(reached) // 2] if reached else None
        agg.append([arm, f"{len(reached)}/{n}", _fmt_steps(med)])
    lines.append(markdown_table(["arm", "seeds reaching 90%", "median steps to 90%"], agg))
    if "baseline" in arms and "elr" in arms:
        lines += ["", "Speed-up of `elr` over `baseline` to 90% test accuracy, per seed (target >= 3x):", ""]
        rows = []
        by = {(s["arm"], s["seed"]): s for s in summaries}
        for seed in dict.fromkeys(s["seed"] for s in summaries):
            b, e = by.get(("baseline", seed)), by.get(("elr", seed))
            if b is None or e is None:
                continue
            tb, te = b["steps_to_90"], e["steps_to_90"]
            if te is None:
                ratio = "elr not within budget"
            elif tb is None:
                ratio = f"> {cfg.steps / te:.1f}x (baseline not within budget)"
            else:
                ratio = f"{tb / te:.1f}x"
            rows.append([seed, _fmt_steps(tb), _fmt_steps(te), ratio])
        lines.append(markdown_table(["seed", "baseline", "elr", "speed-up"], rows))
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path, cfg: argparse.Namespace) -> None:
    plt = pyplot()
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    colors = dict(zip(ARMS, ["tab:gray", "tab:blue", "tab:red", "tab:green"]))
    hidden = "blocks.0.mlp.0" if cfg.model == "transformer" else "net.0"
    out_layer = "unembed" if cfg.model == "transformer" else "net.2"
    panels = [("train_acc", "train accuracy", False), ("test_acc", "test accuracy", False),
              ("lr", "learning rate", True), (f"param_norm/{hidden}", f"||W|| {hidden} (hidden)", True),
              (f"param_norm/{out_layer}", f"||W|| {out_layer} (read-out)", True),
              (f"elr/{hidden}", f"ELR {hidden}", True), (f"elr/{out_layer}", f"ELR {out_layer}", True),
              ("dormant_ratio", "dormant ratio (tau=0.025)", False)]
    fig, axes = plt.subplots(2, 4, figsize=(16, 6.5))
    for ax, (key, title, log) in zip(axes.flat, panels):
        for arm in arms:
            seeds = list(dict.fromkeys(r["seed"] for r in rows if r["arm"] == arm))
            for i, seed in enumerate(seeds):
                pts = [(r["step"], r[key]) for r in rows if r["arm"] == arm and r["seed"] == seed and r.get(key) is not None]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                ax.plot(xs, ys, color=colors.get(arm, "k"), alpha=0.85 if i == 0 else 0.4, lw=1.2 if i == 0 else 0.8,
                        label=arm if i == 0 else None)
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
    parser.add_argument("--steps", type=positive_int("--steps"), default=None,
                        help="optimizer steps per run (default 3000)")
    parser.add_argument("--batch", type=int, default=512,
                        help="minibatch size (default 512, sampled with replacement); 0 = full batch")
    parser.add_argument("--embed", type=int, default=128, help="embedding width (default 128)")
    parser.add_argument("--hidden", type=int, default=256, help="MLP hidden width (default 256)")
    parser.add_argument("--norm", default="layer", choices=("layer", "rms"), help="normalization insert_norm inserts")
    parser.add_argument("--gains", default="project", choices=("project", "decay"),
                        help="normalized arms: project the norm gains with ELR (default) or leave them to AdamW decay")
    parser.add_argument("--lr", type=float, default=1e-3, help="base lr of baseline, nap, elr (default 1e-3)")
    parser.add_argument("--wd", type=float, default=1.0, help="baseline AdamW weight decay (default 1.0)")
    parser.add_argument("--norm-wd", type=float, default=1.0,
                        help="AdamW weight decay on the non-projected parameters of the normalized arms (default 1.0)")
    parser.add_argument("--peak-lr", type=float, default=1e-2, help="re-warm peak lr of elr, late-elr (default 1e-2)")
    parser.add_argument("--floor-lr", type=float, default=1e-3, help="lr at the end of the cosine (default 1e-3)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default steps // 10)")
    parser.add_argument("--low-lr", type=float, default=1e-3,
                        help="late-elr: lr before the re-warm (default 1e-3, 10x below the peak)")
    parser.add_argument("--late-at", type=float, default=0.5,
                        help="late-elr: re-warm after this fraction of the steps (default 0.5)")
    parser.add_argument("--eval-every", type=positive_int("--eval-every"), default=100,
                        help="log (train/test accuracy, ELR) every N steps (default 100)")
    parser.add_argument("--diag-every", type=positive_int("--diag-every"), default=500,
                        help="dormant ratio every N steps (multiple of --eval-every; default 500)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    add_common(parser, ARMS, default_out="runs/grokking", seeds="0-2")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.p < 3:
        parser.error(f"--p {args.p} is not accepted; the modulus must be an int >= 3")
    if not 0 < args.rho < 1:
        parser.error(f"--rho {args.rho} is not accepted; the training fraction must be in (0, 1), e.g. 0.3")
    n_train = round(args.rho * args.p * args.p)
    if not 1 <= n_train < args.p * args.p:
        parser.error(f"--rho {args.rho} with --p {args.p} gives {n_train} training pairs of {args.p ** 2}; "
                     f"need at least 1 and at least one test pair")
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


def main(argv=None) -> int:
    args = parse_args(argv)
    out = prepare_out(args.out)
    command = "python -m plastic_rl.tools.grokking " + " ".join(sys.argv[1:] if argv is None else argv)
    timer = Timer()
    rows, summaries = [], []
    for seed in args.seeds:
        for arm in args.arms:
            r, s = run(arm, seed, args)
            rows += r
            summaries.append(s)
            if args.verbose:
                print(f"{arm:9s} seed {seed}: steps to 50/90/95% = "
                      f"{', '.join(_fmt_steps(s[f'steps_to_{round(t * 100)}']) for t in THRESHOLDS)}; "
                      f"final test {s['final_test_acc']:.3f}  ({s['wall_s']} s)", flush=True)
    write_csv(out / "curves.csv", rows)
    write_csv(out / "summary.csv", summaries)
    text = summary_markdown(summaries, args, timer(), command)
    (out / "summary.md").write_text(text)
    plot(rows, out / "curves.png", args)
    if args.verbose:
        print(text)
        print(f"wrote {out}/curves.csv, summary.csv, summary.md, curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
