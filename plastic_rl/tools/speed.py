"""The speed table: each Plastic agent's env steps/s against its SB3 parent's, on SB3's defaults and rl-zoo3's settings.

    python -m plastic_rl.tools.bench_agents speed [--rows ppo-default ppo-zoo ...] [--rounds 9]
                                                  [--csv docs/data/speed.csv] [--report-only] [--md FILE]

Each row is an algorithm on one small env (CartPole-v1 or Pendulum-v1; MinAtar Breakout for DQN at replay
ratios 1 and 0.25) with either SB3's default hyperparameters (``default``) or rl-zoo3's (``zoo``; the
project's MinAtar settings for MinAtar). Three arms train in one process with the same seed: SB3's class
(``sb3``), the plastic class with no ``plasticity=`` (``plastic``: what ``PlasticX(env)`` does, its
diagnostics at their default frequency included) and the plastic class with ``plasticity="none"``
(``control``: it computes exactly what SB3's class computes, so its ratio is the machine's noise). After
a warm-up (past ``learning_starts``, the first rollout, the optimizer's state), the arms take turns,
``--rounds`` rounds of ``round_steps`` env steps each (``learn(n, reset_num_timesteps=False)``), the order
rotating each round so a slow spell of the machine hits all arms. Every round is one CSV row
(``row,algo,settings,env,arm,preset,round,steps,seconds``; ``preset``: the plastic arm's default preset when it
was timed, ``sb3`` and ``none`` for the others). Reported per row: SB3's median env steps/s and,
for ``plastic`` and ``control``, the median of the per-round ratios to SB3 with their interquartile range.
Target (issue 24): every row's ratio >= 0.97.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIELDS = ["row", "algo", "settings", "env", "arm", "preset", "round", "steps", "seconds"]
ARMS = ("sb3", "plastic", "control")
TARGET = 0.97


@dataclasses.dataclass(frozen=True)
class SpeedRow:
    """One timed setting: an algorithm, an env, its hyperparameters and the env steps of one round."""

    algo: str
    settings: str  # "default" (SB3's) or "zoo" (rl-zoo3's)
    env: str
    sb3: str  # class name in stable_baselines3 or sb3_contrib
    plastic: str  # class name in plastic_rl.agents
    hparams: Callable[[], dict]  # keywords (n_envs included)
    round_steps: int
    policy: str = "MlpPolicy"

    def warmup(self, kwargs: dict) -> int:
        """Env steps before the timed rounds: past ``learning_starts`` (off-policy) and one round."""
        starts = kwargs.get("learning_starts", 100 if self.algo in OFF_POLICY else 0)
        return int(starts) + self.round_steps


OFF_POLICY = ("dqn", "qrdqn", "sac", "td3", "tqc")


def _zoo(name: str) -> Callable[[], dict]:
    def hparams() -> dict:
        from plastic_rl.tools.panel import ROWS

        return ROWS[name].hparams()

    return hparams


def _file(name: str, **extra: Any) -> Callable[[], dict]:
    def hparams() -> dict:
        from plastic_rl.tools.panel import hparams_file

        return {"n_envs": 1, **hparams_file(name), **extra}

    return hparams


def _none() -> dict:
    return {}


ROWS = {
    "ppo-default": SpeedRow("ppo", "default", "CartPole-v1", "PPO", "PlasticPPO", _none, 2048),
    "ppo-zoo": SpeedRow("ppo", "zoo", "CartPole-v1", "PPO", "PlasticPPO", _zoo("ppo-cartpole"), 2048),
    "a2c-default": SpeedRow("a2c", "default", "CartPole-v1", "A2C", "PlasticA2C", _none, 500),
    "a2c-zoo": SpeedRow("a2c", "zoo", "CartPole-v1", "A2C", "PlasticA2C", _zoo("a2c-cartpole"), 2000),
    "dqn-default": SpeedRow("dqn", "default", "CartPole-v1", "DQN", "PlasticDQN", _none, 1000),
    "dqn-zoo": SpeedRow("dqn", "zoo", "CartPole-v1", "DQN", "PlasticDQN", _zoo("dqn-cartpole"), 1024),
    "dqn-minatar-rr1": SpeedRow("dqn", "zoo", "MinAtar/Breakout-v1", "DQN", "PlasticDQN", _zoo("dqn-minatar-breakout"), 500, "CnnPolicy"),
    "dqn-minatar-rr0.25": SpeedRow(
        "dqn", "zoo, replay ratio 0.25", "MinAtar/Breakout-v1", "DQN", "PlasticDQN", _file("dqn_MinAtar", train_freq=4), 1000, "CnnPolicy"
    ),
    "sac-default": SpeedRow("sac", "default", "Pendulum-v1", "SAC", "PlasticSAC", _none, 250),
    "sac-zoo": SpeedRow("sac", "zoo", "Pendulum-v1", "SAC", "PlasticSAC", _zoo("sac-pendulum"), 250),
    "td3-default": SpeedRow("td3", "default", "Pendulum-v1", "TD3", "PlasticTD3", _none, 250),
    "td3-zoo": SpeedRow("td3", "zoo", "Pendulum-v1", "TD3", "PlasticTD3", _zoo("td3-pendulum"), 250),
    "qrdqn-default": SpeedRow("qrdqn", "default", "CartPole-v1", "QRDQN", "PlasticQRDQN", _none, 1000),
    "qrdqn-zoo": SpeedRow("qrdqn", "zoo", "CartPole-v1", "QRDQN", "PlasticQRDQN", _file("qrdqn_CartPole"), 1024),
    "tqc-default": SpeedRow("tqc", "default", "Pendulum-v1", "TQC", "PlasticTQC", _none, 250),
    # rl-zoo3 hyperparams/tqc.yml Pendulum-v1: lr 1e-3 (the rest TQC's defaults)
    "tqc-zoo": SpeedRow("tqc", "zoo", "Pendulum-v1", "TQC", "PlasticTQC", lambda: {"n_envs": 1, "learning_rate": 1e-3}, 250),
}  # fmt: skip
CONTRIB = ("qrdqn", "tqc")  # sb3-contrib's: timed when it is installed


def available(name: str) -> bool:
    """Whether a row's classes can be imported here (sb3-contrib is optional)."""
    import importlib.util

    return ROWS[name].algo not in CONTRIB or importlib.util.find_spec("sb3_contrib") is not None


def make_models(row: SpeedRow, seed: int = 0) -> dict[str, Any]:
    """The three arms, each with its own env, same seed and hyperparameters."""
    import importlib

    from plastic_rl import agents
    from plastic_rl.tools.panel import gym_env, minatar_env
    from plastic_rl.train.build import with_action_noise

    make_env = minatar_env if row.env.startswith("MinAtar") else gym_env
    parent = importlib.import_module("sb3_contrib" if row.algo in CONTRIB else "stable_baselines3")
    models = {}
    for arm in ARMS:
        kwargs = row.hparams()
        n_envs = kwargs.pop("n_envs", 1)
        env = make_env(row.env, n_envs, seed)
        kwargs = with_action_noise(kwargs, env.action_space)
        if arm == "sb3":
            models[arm] = getattr(parent, row.sb3)(row.policy, env, seed=seed, **kwargs)
        elif arm == "plastic":
            models[arm] = getattr(agents, row.plastic)(env, seed=seed, **kwargs)  # no plasticity=: the default
        else:
            models[arm] = getattr(agents, row.plastic)(env, seed=seed, plasticity="none", **kwargs)
    return models


def warmed_models(row: SpeedRow, seed: int = 0) -> dict[str, Any]:
    """``make_models``, each trained past ``row.warmup`` (``learning_starts``, one round) before anything is timed."""
    models = make_models(row, seed)
    warm = row.warmup(row.hparams())
    for model in models.values():
        model.learn(warm, reset_num_timesteps=False)
    return models


def time_row(name: str, rounds: int, seed: int = 0, round_steps: int | None = None) -> list[dict]:
    """Warm every arm up, then ``rounds`` interleaved timed rounds: one dict per (arm, round).

    ``round_steps`` replaces the row's (smoke tests)."""
    from plastic_rl.agents.config import DEFAULT_PRESET

    row = ROWS[name] if round_steps is None else dataclasses.replace(ROWS[name], round_steps=round_steps)
    presets = {"sb3": "sb3", "plastic": DEFAULT_PRESET, "control": "none"}
    models = warmed_models(row, seed)
    out = []
    names = list(models)
    for r in range(rounds):
        for arm in names[r % len(names) :] + names[: r % len(names)]:  # rotate who goes first
            before = models[arm].num_timesteps
            start = time.perf_counter()
            models[arm].learn(row.round_steps, reset_num_timesteps=False)
            seconds = time.perf_counter() - start
            out.append({"row": name, "algo": row.algo, "settings": row.settings, "env": row.env, "arm": arm, "preset": presets[arm], "round": r,
                        "steps": models[arm].num_timesteps - before, "seconds": round(seconds, 6)})  # fmt: skip
    for model in models.values():
        model.get_env().close()
    return out


def read(path: Path) -> list[dict]:
    from plastic_rl.tools.bench_rows import read_typed

    return read_typed(path, {"round": int, "steps": int, "seconds": float})


def summary(rows: list[dict]) -> list[dict]:
    """Per row: SB3's median steps/s, and each arm's median per-round ratio to SB3 with its quartiles."""
    table = []
    for name in dict.fromkeys(r["row"] for r in rows):
        mine = [r for r in rows if r["row"] == name]
        rate = {(r["arm"], r["round"]): r["steps"] / r["seconds"] for r in mine}
        rounds = sorted({r["round"] for r in mine if all((arm, r["round"]) in rate for arm in ARMS)})
        if not rounds:
            continue
        entry: dict[str, Any] = {"row": name, "algo": mine[0]["algo"], "settings": mine[0]["settings"], "env": mine[0]["env"],
                                 "rounds": len(rounds), "sb3_sps": statistics.median(rate[("sb3", k)] for k in rounds),
                                 "preset": "/".join(sorted({r.get("preset") or "unrecorded" for r in mine if r["arm"] == "plastic"}))}  # fmt: skip
        for arm in ARMS[1:]:
            ratios = [rate[(arm, k)] / rate[("sb3", k)] for k in rounds]
            q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
            entry[arm] = (statistics.median(ratios), q1, q3)
        table.append(entry)
    return table


def markdown(table: list[dict]) -> str:
    lines = [
        "| algo | settings | env | SB3 env steps/s | plastic preset | plastic / SB3 [IQR] | control / SB3 [IQR] | rounds | target >= 0.97 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in table:
        p, c = t["plastic"], t["control"]
        met = "met" if p[0] >= TARGET else "**not met**"
        lines.append(f"| {t['algo']} | {t['settings']} | {t['env']} | {t['sb3_sps']:.0f} | {t['preset']} | {p[0]:.3f} [{p[1]:.3f}, {p[2]:.3f}] | "
                     f"{c[0]:.3f} [{c[1]:.3f}, {c[2]:.3f}] | {t['rounds']} | {met} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m plastic_rl.tools.bench_agents speed", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), help="rows to time (default: all)")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds per arm")
    parser.add_argument("--csv", default="docs/data/speed.csv", help="per-round rows; a row already there is not timed again")
    parser.add_argument("--report-only", action="store_true", help="time nothing: print the table from the CSV")
    parser.add_argument("--md", default=None, help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds={args.rounds} must be >= 1")
    import torch

    from plastic_rl.tools.bench_rows import append_row

    torch.set_num_threads(1)
    path = Path(args.csv)
    if not args.report_only:
        print(f"# torch {torch.__version__}, 1 thread, {platform.machine()}, speed, {datetime.date.today().isoformat()}", flush=True)
        done = {r["row"] for r in read(path)}
        for name in args.rows:
            if name in done:
                continue
            if not available(name):
                print(f"# {name}: sb3-contrib is not installed, not timed")
                continue
            start = time.perf_counter()
            rows = time_row(name, args.rounds)
            for r in rows:
                append_row(path, r, FIELDS)
            (t,) = summary(rows)
            print(f"{name}: SB3 {t['sb3_sps']:.0f} steps/s, plastic {t['plastic'][0]:.3f}, control {t['control'][0]:.3f}, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
    text = markdown(summary(read(path)))
    print(text)
    if args.md:
        Path(args.md).write_text(text)
    return summary(read(path))
