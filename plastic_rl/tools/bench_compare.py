"""``bench_agents compare``: SB3's class against the plastic agent's presets at rl-zoo3's settings.

One run per (algo, arm, seed), a CSV row each (resumable, shareable between processes: ``bench_rows``),
IQM with 95% stratified-bootstrap CIs over seeds (rliable), and ``elr-trace``: each layer's parameter
norm and ELR over a run. The CLI and its documentation are in ``bench_agents``.
"""

from __future__ import annotations

import datetime
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from plastic_rl.agents import PlasticDQN, PlasticPPO, PlasticSAC
from plastic_rl.tools.bench_rows import append_row, claim, read_typed

# rl-zoo3 hyperparams/ppo.yml, CartPole-v1 (lin_ = linear decay to 0 over training).
ZOO_CARTPOLE = dict(
    n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
    learning_rate=("lin", 0.001), clip_range=("lin", 0.2),
)  # fmt: skip
# rl-zoo3's Atari PPO settings (n_steps=128, batch 256, 4 epochs, 8 envs), used for the CNN overhead run.


def hyperparams(zoo: dict) -> tuple[int, dict]:
    """(n_envs, SB3 keyword arguments); ``("lin", X)`` and rl-zoo3's ``"lin_X"`` decay linearly from X to 0."""
    kwargs = dict(zoo)
    n_envs = kwargs.pop("n_envs", 1)
    for key, value in kwargs.items():
        if isinstance(value, str) and value.startswith("lin_"):
            value = ("lin", float(value[4:]))
        if isinstance(value, tuple) and value[0] == "lin":
            start = value[1]
            kwargs[key] = lambda progress, start=start: progress * start
    return n_envs, kwargs


# -- compare: SB3's class against the plastic agent's presets at rl-zoo3's settings -----------------

# rl-zoo3 (DLR-RM/rl-baselines3-zoo) hyperparams/sac.yml, Pendulum-v1: n_timesteps 20000 and
# learning_rate 1e-3; everything else is SAC's default (1 env, buffer 1e6, batch 256, learning_starts
# 100, tau 0.005, gamma 0.99, train_freq 1, gradient_steps 1, net_arch [256, 256]). Kept here: the
# Hydra configs (configs/hparams) have no Pendulum env to pair it with.
ZOO_SAC_PENDULUM = dict(n_envs=1, learning_rate=1e-3)


def hparams_file(name: str) -> dict:
    """rl-zoo3's tuned values as this project's Hydra configs ship them: configs/hparams/<name>.yaml."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(str(files("plastic_rl.configs") / "hparams" / f"{name}.yaml")), resolve=True)  # type: ignore[return-value]


class Task:
    """One benchmark pair: env, SB3's class, the plastic class, rl-zoo3's hyperparameters and budget."""

    def __init__(self, env: str, sb3: type, plastic: type, zoo, timesteps: int):
        self.env, self.sb3, self.plastic, self.timesteps = env, sb3, plastic, timesteps
        self._zoo = zoo

    def zoo(self) -> dict:
        return dict(self._zoo()) if callable(self._zoo) else dict(self._zoo)


TASKS = {
    # rl-zoo3 hyperparams/dqn.yml, CartPole-v1 (n_timesteps 5e4, 1 env), from configs/hparams/dqn_CartPole.yaml
    "dqn": Task("CartPole-v1", DQN, PlasticDQN, lambda: {"n_envs": 1, **hparams_file("dqn_CartPole")}, 50_000),
    "sac": Task("Pendulum-v1", SAC, PlasticSAC, ZOO_SAC_PENDULUM, 20_000),
    # rl-zoo3 hyperparams/ppo.yml, CartPole-v1 (n_timesteps 1e5)
    "ppo": Task("CartPole-v1", PPO, PlasticPPO, ZOO_CARTPOLE, 100_000),
}
CSV_FIELDS = ["algo", "env", "arm", "seed", "timesteps", "eval_freq", "episodes", "final", "final_std", "steps",
              "curve", "wall_s", "torch", "threads", "finished"]  # fmt: skip
RUN_KEY = ("algo", "env", "arm", "seed", "timesteps", "eval_freq", "episodes")


def parse_arm(arm: str) -> tuple[Any, dict]:
    """An arm -> (``plasticity=`` or None for SB3's class, agent keyword overrides).

    ``"sb3"`` -> (None, {}); ``"elr"`` -> ("elr", {}); ``"elr:peak=1.0,fused=false,learning_rate=1e-3"`` ->
    ({"preset": "elr", "peak": 1.0}, {"policy_kwargs": {"optimizer_kwargs": {"fused": False}},
    "learning_rate": 1e-3}). ``learning_rate`` (for ablations) replaces rl-zoo3's, SB3's class included."""
    import yaml

    from plastic_rl.agents.config import resolve_plasticity

    name, _, spec = arm.partition(":")
    overrides: dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"arm {arm!r}: {item!r} is not key=value")
        overrides[key.strip()] = yaml.safe_load(value)
    agent: dict[str, Any] = {}
    if "learning_rate" in overrides:
        agent["learning_rate"] = float(overrides.pop("learning_rate"))
    if name == "sb3":
        if overrides:
            raise ValueError(f"arm {arm!r}: SB3's class takes only learning_rate=, not {', '.join(overrides)}")
        return None, agent
    if "fused" in overrides:
        agent["policy_kwargs"] = {"optimizer_kwargs": {"fused": bool(overrides.pop("fused"))}}
    plasticity = {"preset": name, **overrides} if overrides else name
    resolve_plasticity(plasticity)  # fails now, naming the bad preset or field
    return plasticity, agent


class Evaluate(BaseCallback):
    """Every ``every`` env steps before ``stop``: the returns of ``episodes`` deterministic episodes."""

    def __init__(self, env, every: int, stop: int, episodes: int):
        super().__init__()
        self.env, self.every, self.stop, self.episodes = env, every, stop, episodes
        self.next = every
        self.points: list[tuple[int, list[float]]] = []

    def evaluate(self) -> None:
        returns, _ = evaluate_policy(self.model, self.env, n_eval_episodes=self.episodes, deterministic=True, return_episode_rewards=True)
        self.points.append((self.model.num_timesteps, [float(r) for r in returns]))  # type: ignore[union-attr]

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self.next:
            if self.next < self.stop:  # the final evaluation comes after learn() returns
                self.evaluate()
            while self.next <= self.model.num_timesteps:
                self.next += self.every
        return True


def compare_run(algo: str, arm: str, seed: int, timesteps: int, eval_freq: int, episodes: int) -> dict:
    """One (algo, arm, seed) run: learn ``timesteps`` steps, evaluating along the way and at the end."""
    task = TASKS[algo]
    n_envs, kwargs = hyperparams(task.zoo())
    plasticity, overrides = parse_arm(arm)
    if "policy_kwargs" in overrides:
        overrides["policy_kwargs"] = {**kwargs.get("policy_kwargs", {}), **overrides["policy_kwargs"]}
    kwargs.update(overrides)
    if plasticity is None:
        cls = task.sb3
    else:
        cls = task.plastic
        kwargs["plasticity"] = plasticity
    start = time.perf_counter()
    model = cls("MlpPolicy", make_vec_env(task.env, n_envs=n_envs, seed=seed), seed=seed, **kwargs)
    callback = Evaluate(make_vec_env(task.env, n_envs=1, seed=seed + 1000), eval_freq, timesteps, episodes)
    model.learn(timesteps, callback=callback)
    callback.evaluate()  # the final return: the agent learn() returned
    steps, final = callback.points[-1]
    return {
        "algo": algo, "env": task.env, "arm": arm, "seed": seed, "timesteps": timesteps, "eval_freq": eval_freq,
        "episodes": episodes, "final": float(np.mean(final)), "final_std": float(np.std(final)), "steps": steps,
        "curve": ";".join(f"{t}:{np.mean(r):.4f}" for t, r in callback.points), "wall_s": round(time.perf_counter() - start, 1),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "finished": datetime.datetime.now().isoformat(timespec="seconds"),
    }  # fmt: skip


def read_rows(path: Path) -> list[dict]:
    """The CSV's complete rows (a row cut short by an interruption is ignored), numbers parsed."""
    types = {"seed": int, "timesteps": int, "eval_freq": int, "episodes": int, "final": float, "wall_s": float}
    return [row for row in read_typed(path, types) if row.get("finished")]


def key_of(row: dict) -> tuple:
    return tuple(row[k] for k in RUN_KEY)


def curve_of(row: dict) -> list[tuple[int, float]]:
    return [(int(t), float(v)) for t, v in (point.split(":") for point in row["curve"].split(";"))]


def iqm_with_ci(scores: dict[str, list[float]], reps: int) -> dict[str, tuple[float, float, float]]:
    """arm -> (IQM, CI low, CI high): rliable's IQM over runs with its 95% stratified-bootstrap CI, through
    ``plastic_rl.report.interval_estimates`` (which seeds the global generator rliable draws from, so the
    same CSV gives the same CIs)."""
    from plastic_rl.report import interval_estimates

    matrices = {arm: np.asarray(values, dtype=float).reshape(-1, 1) for arm, values in scores.items()}  # (runs, tasks)
    return interval_estimates(matrices, reps=reps, seed=0)


def iqm_summary(rows: list[dict], reps: int) -> list[dict]:
    """Per (algo, arm), over seeds: the IQM of the final return and of the mean return over all evaluations
    (the area under the curve, steadier than one evaluation), each with its 95% CI; and the IQM curve."""
    summary = []
    for algo in dict.fromkeys(r["algo"] for r in rows):
        runs: dict[str, list[Any]] = {}
        for row in sorted((r for r in rows if r["algo"] == algo), key=lambda r: r["seed"]):
            runs.setdefault(row["arm"], []).append(row)
        final = iqm_with_ci({arm: [r["final"] for r in rs] for arm, rs in runs.items()}, reps)
        area = iqm_with_ci({arm: [np.mean([v for _, v in curve_of(r)]) for r in rs] for arm, rs in runs.items()}, reps)  # type: ignore[misc]
        for arm, rs in runs.items():
            summary.append({
                "algo": algo, "env": rs[0]["env"], "timesteps": rs[0]["timesteps"], "arm": arm, "n": len(rs),
                "iqm": final[arm][0], "ci_low": final[arm][1], "ci_high": final[arm][2],
                "auc_iqm": area[arm][0], "auc_low": area[arm][1], "auc_high": area[arm][2],
                "seeds": [r["seed"] for r in rs], "finals": [r["final"] for r in rs], "curve": iqm_curve(rs),
                "wall_s": statistics.median(r["wall_s"] for r in rs),
            })  # fmt: skip
    return summary


def iqm_curve(runs: list[dict]) -> list[tuple[int, float]]:
    """IQM over runs at each evaluation point they share (the last point is each run's final evaluation)."""
    from rliable import metrics

    curves = [curve_of(r) for r in runs]
    length = min(len(c) for c in curves)
    return [(curves[0][i][0], float(metrics.aggregate_iqm(np.array([c[i][1] for c in curves])))) for i in range(length)]


def verdict(row: dict, sb3: dict | None, metric: str = "") -> str:
    """Where an arm's IQM lies against SB3's CI (``metric``: "" for the final return, "auc_" for the mean)."""
    if row["arm"] == "sb3" or sb3 is None:
        return ""
    value = row[f"{metric}iqm"] if metric else row["iqm"]
    low, high = (sb3["auc_low"], sb3["auc_high"]) if metric else (sb3["ci_low"], sb3["ci_high"])
    if value > high:
        return "above SB3's CI"
    if value < low:
        return "BELOW SB3's CI"
    return "within SB3's CI"


def print_compare(summary: list[dict], rows: list[dict], reps: int) -> None:
    if not summary:
        return
    print(f"# final return: mean of {rows[0]['episodes']} deterministic episodes after the budget; mean: the mean of every "
          f"evaluation of a run (area under its curve). IQM over seeds, 95% stratified-bootstrap CI (rliable, {reps} reps)")  # fmt: skip
    w = max(4, *(len(r["arm"]) for r in summary))  # the arm column
    print(f"{'algo':<5} {'env':<12} {'steps':>7} {'arm':<{w}} {'n':>2} {'final IQM':>9} {'95% CI':>18}  {'vs SB3':<15} "
          f"{'mean IQM':>8} {'95% CI':>18}  {'vs SB3':<15} {'wall s':>6}  final per seed")  # fmt: skip
    for row in summary:
        sb3 = next((r for r in summary if r["algo"] == row["algo"] and r["arm"] == "sb3"), None)
        ci = f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
        auc_ci = f"[{row['auc_low']:.1f}, {row['auc_high']:.1f}]"
        per_seed = " ".join(f"{f:.1f}" for f in row["finals"])
        print(f"{row['algo']:<5} {row['env']:<12} {row['timesteps']:>7} {row['arm']:<{w}} {row['n']:>2} {row['iqm']:>9.1f} "
              f"{ci:>18}  {verdict(row, sb3):<15} {row['auc_iqm']:>8.1f} {auc_ci:>18}  {verdict(row, sb3, 'auc_'):<15} "
              f"{row['wall_s']:>6.0f}  {per_seed}")  # fmt: skip
    for algo in dict.fromkeys(r["algo"] for r in summary):
        arms = [r for r in summary if r["algo"] == algo]
        points = [t for t, _ in arms[0]["curve"]]
        print(f"# {algo}: IQM curve (evaluation return at env step; the last column is the final evaluation)")
        print(f"{'arm':<{w}} " + " ".join(f"{t:>8}" for t in points))
        for row in arms:
            print(f"{row['arm']:<{w}} " + " ".join(f"{v:>8.1f}" for _, v in row["curve"]))
        by_seed = {(r["arm"], r["seed"]): r["curve"] for r in rows if r["algo"] == algo}
        if any(r["arm"] == "none" for r in arms):
            shared = [s for (a, s) in by_seed if a == "none" and ("sb3", s) in by_seed]
            same = sum(by_seed[("none", s)] == by_seed[("sb3", s)] for s in shared)
            print(f"# {algo}: none reproduced SB3's run exactly (same curve) in {same} of {len(shared)} seeds")


def compare(args) -> list[dict]:
    path = Path(args.csv)
    plan = []
    for algo in args.algos:
        timesteps = args.timesteps or TASKS[algo].timesteps
        eval_freq = args.eval_freq or max(1, timesteps // 10)
        for seed in args.seeds:
            for arm in args.arms:
                plan.append({"algo": algo, "env": TASKS[algo].env, "arm": arm, "seed": seed, "timesteps": timesteps,
                             "eval_freq": eval_freq, "episodes": args.episodes})  # fmt: skip
    wanted = {key_of(p) for p in plan}
    done = {key_of(r): r for r in read_rows(path) if key_of(r) in wanted}
    todo = [p for p in plan if key_of(p) not in done]
    print(f"# {len(plan)} runs planned, {len(plan) - len(todo)} already in {path}, {len(todo)} to run", flush=True)
    for i, p in enumerate(todo, 1):
        with claim(path, key_of(p)) as mine:
            if not mine:
                print(f"[{i}/{len(todo)}] {p['algo']} {p['arm']} seed {p['seed']}: running in another process, skipped", flush=True)
                continue
            if key_of(p) in {key_of(r) for r in read_rows(path)}:  # another process sharing the CSV finished it
                continue
            row = compare_run(p["algo"], p["arm"], p["seed"], p["timesteps"], p["eval_freq"], p["episodes"])
            append_row(path, row, CSV_FIELDS)
        print(f"[{i}/{len(todo)}] {row['algo']} {row['env']} {row['arm']} seed {row['seed']}: final {row['final']:.1f} "
              f"(± {row['final_std']:.1f} over {row['episodes']} episodes, at {row['steps']} steps), {row['wall_s']:.0f} s, "
              f"{row['finished']}", flush=True)  # fmt: skip
    done = {key_of(r): r for r in read_rows(path) if key_of(r) in wanted}
    rows = [done[key_of(p)] for p in plan if key_of(p) in done]
    if len(rows) < len(plan):
        print(f"# {len(plan) - len(rows)} planned runs are not in {path} yet (running in another process): partial report")
    summary = iqm_summary(rows, args.reps)
    print_compare(summary, rows, args.reps)
    return summary


def elr_trace(algo: str, arms: list[str], timesteps: int, seed: int, points: int = 5) -> list[dict]:
    """Why an arm learns differently: each network layer's parameter norm and ELR over one run, from the
    agent's own ``plasticity/param_norm/*`` and ``plasticity/elr/*`` log (SB3's CSV writer). Without
    projection a layer's norm grows and its ELR decays (the implicit lr decay an lr was tuned with);
    projected, the ELR is set by the lr alone."""
    import pandas as pd
    from stable_baselines3.common.logger import configure

    task = TASKS[algo]
    rows = []
    for arm in arms:
        plasticity, overrides = parse_arm(arm)
        if plasticity is None:
            raise ValueError(f"elr-trace needs a plastic arm (the ELR is logged by the plastic agents), not {arm!r}")
        n_envs, kwargs = hyperparams(task.zoo())
        kwargs.update(overrides)
        model = task.plastic("MlpPolicy", make_vec_env(task.env, n_envs=n_envs, seed=seed), seed=seed, plasticity=plasticity, **kwargs)
        with tempfile.TemporaryDirectory() as folder:
            model.set_logger(configure(folder, ["csv"]))
            model.learn(timesteps)
            log = pd.read_csv(Path(folder) / "progress.csv")
        layers = sorted(c.split("/", 2)[2] for c in log.columns if c.startswith("plasticity/elr/"))
        logged = log.dropna(subset=[f"plasticity/elr/{layers[0]}"])
        for i in np.linspace(0, len(logged) - 1, min(points, len(logged))).round().astype(int):
            entry = logged.iloc[i]
            for layer in layers:
                rows.append({"arm": arm, "step": int(entry["time/total_timesteps"]), "layer": layer,
                             "param_norm": float(entry[f"plasticity/param_norm/{layer}"]), "elr": float(entry[f"plasticity/elr/{layer}"])})  # fmt: skip
    return rows
