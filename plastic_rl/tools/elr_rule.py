"""The evidence for the ``elr-decay`` rule: each network's ELR over training, four networks side by side.

    python -m plastic_rl.tools.elr_rule [--rows dqn-cartpole ppo-cartpole] [--seeds 0 1 2]
                                        [--csv docs/data/elr_rule_traces.csv] [--plot docs/elr_rule.png] [--plot-only]

At rl-zoo3's settings (the stationary panel's rows, ``tools/panel.py``), one run per (arm, seed) of:

- ``SB3's network`` (``plasticity="none"``: SB3's agent, measured): its ELR decays as its norm grows;
  the lr was tuned with that decay;
- ``normalized, not projected`` (LayerNorm, no projection, constant lr): the decay ``implicit_decay_rate``
  models (orthogonal norm growth under an adaptive optimizer);
- ``nap`` (normalized and projected, constant lr): no decay at all, the ELR set by the lr alone;
- ``elr-decay`` (normalized, projected, ``ImplicitDecay``): the rule's explicit decay.

Recorded at the first optimizer step of every SB3 ``train()`` call: the network's ELR over all its
measured layers jointly (``PlasticityController.network_elr``; the primary network) and the lr factor.
One CSV row per record (``row,arm,seed,step,updates,elr,lr_factor``); the plot draws, per row, the median
over seeds with the min-max band, ELR on a log axis against optimizer steps.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

ARMS = {
    "SB3's network": "none",
    "normalized, not projected": {"preset": "nap", "project": False},
    "nap": "nap",
    "elr-decay": "elr-decay",
}
FIELDS = ["row", "arm", "seed", "step", "updates", "elr", "lr_factor"]
# Legend text where an arm is more than its name: until its first re-warm the default preset (norm-rewarm)
# trains exactly the unprojected normalized network (tests/test_norm_rewarm.py checks the parameters match).
LEGEND = {"normalized, not projected": "normalized, not projected = norm-rewarm (the default) until a re-warm"}


def trace(row_name: str, arm: str, seed: int, timesteps: int | None = None) -> list[dict]:
    """One run: the primary network's ELR and the lr factor at the start of every ``train()``."""
    from stable_baselines3.common.callbacks import BaseCallback

    from plastic_rl import agents
    from plastic_rl.tools.panel import ROWS
    from plastic_rl.train.build import with_action_noise

    row = ROWS[row_name]
    kwargs = row.hparams()
    env = row.make_env(row.env, kwargs.pop("n_envs", 1), seed)
    model = getattr(agents, row.plastic)(env, seed=seed, plasticity=ARMS[arm], **with_action_noise(kwargs, env.action_space))
    points: list[dict] = []

    class Record(BaseCallback):
        def _on_rollout_start(self) -> None:  # right after the previous train(): its first step was measured
            plasticity = self.model.plasticity  # type: ignore[attr-defined]
            updates = plasticity.elrs[plasticity.primary].steps
            if updates and (not points or points[-1]["updates"] != updates):
                elr = (
                    next(iter(plasticity.network_elr().values()))
                    if len(plasticity.elrs) == 1
                    else plasticity.network_elr()[f"elr/{plasticity.primary}"]
                )
                points.append({"row": row_name, "arm": arm, "seed": seed, "step": self.num_timesteps, "updates": updates,
                               "elr": elr, "lr_factor": plasticity.lr_factor})  # fmt: skip

        def _on_step(self) -> bool:
            return True

    model.learn(timesteps or row.timesteps, callback=Record())
    return points


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["row"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 5.0), squeeze=False)
    for ax, name in zip(axes[0], names):
        for arm, color in zip(ARMS, ("black", "tab:orange", "tab:blue", "tab:green")):
            runs = [[r for r in rows if r["row"] == name and r["arm"] == arm and r["seed"] == s]
                    for s in sorted({r["seed"] for r in rows if r["row"] == name and r["arm"] == arm})]  # fmt: skip
            runs = [run for run in runs if run]
            if not runs:
                continue
            length = min(len(run) for run in runs)
            x = np.array([run[i]["updates"] for i in range(length) for run in runs[:1]], dtype=float)
            y = np.array([[run[i]["elr"] for i in range(length)] for run in runs])
            ax.plot(x, np.median(y, axis=0), color=color, label=f"{LEGEND.get(arm, arm)} ({len(runs)} seeds)")
            ax.fill_between(x, y.min(axis=0), y.max(axis=0), color=color, alpha=0.2, linewidth=0)
        ax.set_yscale("log")
        ax.set_xlabel("optimizer steps")
        ax.set_ylabel("ELR of the network (update norm / parameter norm)")
        ax.set_title(name + " (rl-zoo3 settings)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
    fig.suptitle("median over seeds, band: min-max\nblack: SB3's network, whose decay its lr was tuned with", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{**r, "seed": int(r["seed"]), "step": int(r["step"]), "updates": int(r["updates"]), "elr": float(r["elr"]),
                 "lr_factor": float(r["lr_factor"])} for r in csv.DictReader(f)]  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=["dqn-cartpole", "ppo-cartpole"], help="rows of tools/panel.py")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--csv", default="docs/data/elr_rule_traces.csv")
    parser.add_argument("--plot", default="docs/elr_rule.png")
    parser.add_argument("--plot-only", action="store_true", help="run nothing: redraw the plot from the CSV")
    parser.add_argument("--timesteps", type=int, default=None, help="replace the rows' budgets (smoke tests)")
    args = parser.parse_args(argv)
    import torch

    from plastic_rl.tools.panel import ROWS

    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        parser.error(f"--rows {' '.join(unknown)}: not a panel row; accepted: {', '.join(ROWS)}")
    torch.set_num_threads(1)
    path = Path(args.csv)
    rows = read(path)
    if not args.plot_only:
        done = {(r["row"], r["arm"], r["seed"]) for r in rows}
        for name in args.rows:
            for seed in args.seeds:
                for arm in ARMS:
                    if (name, arm, seed) in done:
                        continue
                    new = trace(name, arm, seed, args.timesteps)
                    rows += new
                    write = not path.exists()
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with open(path, "a", newline="") as f:
                        writer = csv.DictWriter(f, FIELDS)
                        if write:
                            writer.writeheader()
                        writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in new)
                    last = new[-1]
                    print(f"{name} {arm} seed {seed}: ELR {new[0]['elr']:.4g} -> {last['elr']:.4g} over {last['updates']} updates, "
                          f"lr factor {last['lr_factor']:.3f}", flush=True)  # fmt: skip
    plot(rows, Path(args.plot))
    print(f"wrote {args.plot}")
    return rows


if __name__ == "__main__":
    main()
