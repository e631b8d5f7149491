"""Benchmark the agents: overhead against SB3's PPO, and learning on CartPole-v1.

    python -m plastic_rl.tools.bench_agents overhead [--steps N] [--rounds 15]
    python -m plastic_rl.tools.bench_agents learning [--seeds 0 1 2 3 4] [--timesteps 100000]
    python -m plastic_rl.tools.bench_agents gradstep [--steps 300]
    python -m plastic_rl.tools.bench_agents elr-trace --algos dqn --arms none nap [--timesteps 20000]
    python -m plastic_rl.tools.bench_agents compare [--algos dqn sac] [--arms sb3 elr none] [--seeds 0 1 2 3 4]
                                                    [--csv bench_agents_compare.csv] [--reps 50000]
    python -m plastic_rl.tools.bench_agents panel [--rows ...] [--seeds ...] [--csv docs/data/panel.csv] [--report-only]

panel: SB3's class against the plastic default on six stationary rows (``plastic_rl/tools/panel.py``).

overhead: SB3 PPO and PlasticPPO(plasticity="elr", diagnostics at their default frequency) with the
same hyperparameters and seed take turns, ``--rounds`` times each, on CartPole-v1 (MlpPolicy) and an
Atari-sized image env (84x84x4 uint8 frames, random pixels: the network is what is measured, not the
game) with CnnPolicy. Reported: median env steps/s of each and the median of the per-round ratios
(target >= 0.95). A third arm, PlasticPPO(plasticity="none"), computes exactly what SB3's PPO computes:
its ratio ("control") shows how far this machine's noise alone moves the number. Rounds are short (4
rollouts on CartPole, 1 on the image env) so that the arms compared in a round share the machine's
load, and many (the median's error shrinks with their number); on this shared 2-core VM seven rounds
of 8192 steps gave controls anywhere from 0.92 to 1.06. "ratio IQR" is the middle half of the
per-round ratios.

gradstep: where PlasticPPO's extra time goes: one PPO gradient step (``evaluate_actions``, loss,
backward, grad clipping, Adam) of the CartPole policy on a batch of 256, for SB3's policy, with a
LayerNorm (with and without affine parameters) before each Tanh, with ELR on top, and with the fused
Adam that PlasticPPO's normalized policies build by default (``agents/policies.py``); interleaved,
median step time relative to SB3's.

learning: rl-zoo3's tuned PPO hyperparameters for CartPole-v1, for PlasticPPO(elr) and SB3's PPO,
evaluated every 10k steps on 10 deterministic episodes of a separate env. Reported per seed: the first
step with mean evaluation return >= 475 and the final return (target: >= 475 within 100k steps in at
least 4 of 5 seeds).

compare: each algorithm at rl-zoo3's tuned hyperparameters and budget (DQN on CartPole-v1, SAC on
Pendulum-v1, PPO on CartPole-v1), one run per (arm, seed): ``sb3`` is SB3's own class, any other arm
is the plastic agent with that ``plasticity=`` preset (``elr``, ``none``, ``nap``, ``elr-cusum``), with
optional overrides after a colon (``elr:peak=1.0,period=5000``; ``fused=false`` turns off the fused
Adam of the normalized policies; ``learning_rate=`` replaces rl-zoo3's, for any arm, ``sb3`` included). Every ``--eval-freq`` env steps (default: a tenth of the budget)
and at the end, the mean return of ``--episodes`` deterministic episodes of a separate env (seeded
seed + 1000). Each finished run is appended to ``--csv`` as one row (final return, per-episode
spread, the curve, wall time); a run already in the CSV is skipped, so an interrupted benchmark
continues where it stopped (two processes may share one CSV: rows are appended under a lock). Reported
per (algo, arm), over seeds: the IQM of the final returns with its 95% stratified-bootstrap CI
(rliable), the same for each run's mean over all its evaluations (the area under the curve, steadier
than one evaluation), where the IQM lies against SB3's CI, the per-seed final returns, the IQM curve,
and whether ``none`` reproduced SB3's runs exactly (it computes what SB3 computes).

elr-trace: one run per arm of the plastic agent at the same rl-zoo3 settings, printing each layer's
parameter norm and ELR at a few points (from the agent's own ``plasticity/*`` log): why a preset learns
differently from SB3's agent at an lr tuned for it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import fcntl
import hashlib
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from plastic_rl.agents import PlasticDQN, PlasticPPO, PlasticSAC

# rl-zoo3 hyperparams/ppo.yml, CartPole-v1 (lin_ = linear decay to 0 over training).
ZOO_CARTPOLE = dict(
    n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
    learning_rate=("lin", 0.001), clip_range=("lin", 0.2),
)  # fmt: skip
# rl-zoo3's Atari PPO settings (n_steps=128, batch 256, 4 epochs, 8 envs), used for the CNN overhead run.
ZOO_ATARI = dict(n_envs=8, n_steps=128, batch_size=256, n_epochs=4, ent_coef=0.01, learning_rate=2.5e-4, clip_range=0.1)


class AtariSizedEnv(gym.Env):
    """84x84x4 uint8 observations and 6 actions, like a frame-stacked Atari game; episodes of 1000 steps."""

    observation_space = gym.spaces.Box(0, 255, (84, 84, 4), dtype=np.uint8)
    action_space = gym.spaces.Discrete(6)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.integers(0, 256, (84, 84, 4), dtype=np.uint8), {}

    def step(self, action):
        self.t += 1
        obs = self.np_random.integers(0, 256, (84, 84, 4), dtype=np.uint8)
        return obs, float(action == 0), False, self.t >= 1000, {}


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


def make_env(name: str, n_envs: int, seed: int):
    if name == "atari-sized":
        return make_vec_env(AtariSizedEnv, n_envs=n_envs, seed=seed)
    return make_vec_env(name, n_envs=n_envs, seed=seed)


def overhead(env_name: str, zoo: dict, steps: int, rounds: int, seed: int = 0) -> dict:
    n_envs, kwargs = hyperparams(zoo)
    policy = "CnnPolicy" if env_name == "atari-sized" else "MlpPolicy"
    models = {
        "sb3": PPO(policy, make_env(env_name, n_envs, seed), seed=seed, **kwargs),
        "plastic": PlasticPPO(policy, make_env(env_name, n_envs, seed), seed=seed, plasticity="elr", **kwargs),
        # The control: PlasticPPO(none) computes exactly what SB3's PPO does, so its ratio is the noise floor.
        "none": PlasticPPO(policy, make_env(env_name, n_envs, seed), seed=seed, plasticity="none", **kwargs),
    }
    for model in models.values():  # warm-up: first rollout, allocator, Adam state
        model.learn(n_envs * kwargs["n_steps"], reset_num_timesteps=False)
    rates: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate who goes first
            start = time.perf_counter()
            models[name].learn(steps, reset_num_timesteps=False)
            rates[name].append(steps / (time.perf_counter() - start))

    def ratios(name: str) -> list[float]:
        return [a / b for a, b in zip(rates[name], rates["sb3"])]

    quartiles = statistics.quantiles(ratios("plastic"), n=4) if rounds > 1 else [ratios("plastic")[0]] * 3
    return {
        "env": env_name, "policy": policy, "rounds": rounds, "sb3_sps": statistics.median(rates["sb3"]),
        "plastic_sps": statistics.median(rates["plastic"]), "ratio": statistics.median(ratios("plastic")),
        "ratio_q1": quartiles[0], "ratio_q3": quartiles[2], "none_ratio": statistics.median(ratios("none")),
    }  # fmt: skip


class RecordEval(BaseCallback):
    """Called by EvalCallback after each evaluation: keeps (timestep, mean return) in memory."""

    def __init__(self):
        super().__init__()
        self.points: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        self.points.append((self.num_timesteps, float(self.parent.last_mean_reward)))  # type: ignore[union-attr]
        return True


def learning(algo: type, seed: int, timesteps: int, eval_freq: int = 10_000, episodes: int = 10) -> dict:
    n_envs, kwargs = hyperparams(ZOO_CARTPOLE)
    extra = {"plasticity": "elr"} if algo is PlasticPPO else {}
    model = algo("MlpPolicy", make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed), seed=seed, **kwargs, **extra)
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=seed + 1000)
    record = RecordEval()
    callback = EvalCallback(
        eval_env, eval_freq=max(1, eval_freq // n_envs), n_eval_episodes=episodes, deterministic=True, verbose=0,
        callback_after_eval=record,
    )  # fmt: skip
    start = time.perf_counter()
    model.learn(timesteps, callback=callback)
    steps, returns = (np.asarray(x) for x in zip(*record.points))
    reached = steps[returns >= 475]
    return {
        "algo": algo.__name__, "seed": seed, "first_475": int(reached[0]) if reached.size else None,
        "final": float(returns[-1]), "best": float(returns.max()), "wall_s": time.perf_counter() - start,
    }  # fmt: skip


def gradstep(steps: int) -> list[dict]:
    from stable_baselines3.common.policies import ActorCriticPolicy

    from plastic_rl.elr import ELR, CyclicRewarm
    from plastic_rl.norm import insert_norm

    spaces = (gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), lambda _: 1e-3)

    def arm(norm: bool, affine: bool = False, elr: bool = False, fused: bool = False):
        torch.manual_seed(0)
        policy = ActorCriticPolicy(*spaces)
        if norm:
            insert_norm(policy.mlp_extractor, affine=affine)
        if norm or fused:  # SB3's optimizer settings (Adam, eps=1e-5), rebuilt over the new parameters
            policy.optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3, eps=1e-5, fused=fused)
        tracker = ELR(policy, policy.optimizer, schedule=CyclicRewarm(10_000), measure_every=0) if elr else None
        return policy, tracker

    arms = {"SB3": arm(False), "+LayerNorm (affine)": arm(True, True), "+LayerNorm": arm(True),
            "+LayerNorm +ELR": arm(True, elr=True), "+LayerNorm +ELR, fused Adam": arm(True, elr=True, fused=True),
            "SB3, fused Adam": arm(False, fused=True)}  # fmt: skip
    x, actions, returns = torch.randn(256, 4), torch.randint(0, 2, (256,)), torch.randn(256)

    def step(policy, tracker) -> None:
        values, log_prob, entropy = policy.evaluate_actions(x, actions)
        loss = -(log_prob * returns).mean() + 0.5 * ((values.flatten() - returns) ** 2).mean() - 0.0 * entropy.mean()
        policy.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
        policy.optimizer.step()
        if tracker is not None:
            tracker.step(loss.item())

    times: dict[str, list[float]] = {name: [] for name in arms}
    for i in range(steps + 20):
        for name, (policy, tracker) in arms.items():
            start = time.perf_counter()
            step(policy, tracker)
            if i >= 20:
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["SB3"])
    return [{"arm": name, "us": statistics.median(t) * 1e6, "ratio": statistics.median(t) / base} for name, t in times.items()]


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
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                row = {**row, "seed": int(row["seed"]), "timesteps": int(row["timesteps"]), "eval_freq": int(row["eval_freq"]),
                       "episodes": int(row["episodes"]), "final": float(row["final"]), "wall_s": float(row["wall_s"])}  # fmt: skip
            except (TypeError, ValueError, KeyError):
                continue
            if row.get("finished"):
                rows.append(row)
    return rows


def append_row(path: Path, row: dict, fields: list[str] | None = None) -> None:
    """Append one row under an exclusive lock (two benchmark processes may share a CSV); ``fields``: the
    CSV's columns (default: compare's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != "\n":  # a row cut short by an interruption: start a fresh line
                f.write("\n")
        writer = csv.DictWriter(f, fields or CSV_FIELDS)
        if not size:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def key_of(row: dict) -> tuple:
    return tuple(row[k] for k in RUN_KEY)


@contextlib.contextmanager
def claim(path: Path, key: tuple) -> Iterator[bool]:
    """Hold one run while it runs, so that processes sharing a CSV split the runs instead of repeating them:
    yields False if another process holds it. An flock on a file in the temp folder, freed when its
    process ends, however it ends."""
    digest = hashlib.sha1(repr((str(path.resolve()), key)).encode()).hexdigest()[:24]
    lock = Path(tempfile.gettempdir()) / "plastic_rl_bench_agents" / digest
    lock.parent.mkdir(exist_ok=True)
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


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
            append_row(path, row)
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


def main(argv: list[str] | None = None) -> list[dict]:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["panel"]:  # the stationary panel has its own options (tools/panel.py)
        from plastic_rl.tools import panel

        return panel.main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["overhead", "learning", "gradstep", "compare", "elr-trace", "panel"])
    parser.add_argument(
        "--steps", type=int, default=0, help="env steps per overhead round (default 1024: 4 rollouts on CartPole, 1 on the image env)"
    )
    parser.add_argument("--rounds", type=int, default=0, help="overhead rounds (default 40 on CartPole, 15 on the image env)")
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "atari-sized"], choices=["CartPole-v1", "atari-sized"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--timesteps", type=int, default=None, help="env steps per run (learning: 100000; compare: rl-zoo3's budget)")
    parser.add_argument(
        "--eval-freq", type=int, default=None, help="env steps between evaluations (learning: 10000; compare: a tenth of the budget)"
    )
    parser.add_argument("--episodes", type=int, default=10, help="episodes per evaluation")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: small networks)")
    parser.add_argument(
        "--algos",
        nargs="+",
        default=["dqn", "sac"],
        choices=list(TASKS),
        help="compare: algorithms (dqn: CartPole-v1, sac: Pendulum-v1, ppo: CartPole-v1)",
    )
    parser.add_argument(
        "--arms",
        nargs="+",
        default=["sb3", "elr", "none"],
        help="compare: sb3 (SB3's class) or a plasticity preset, optionally preset:key=value,...",
    )
    parser.add_argument(
        "--csv", default="bench_agents_compare.csv", help="compare: finished runs are appended here; runs already in it are skipped"
    )
    parser.add_argument("--reps", type=int, default=50_000, help="compare: bootstrap replications (rliable's default)")
    args = parser.parse_args(argv)
    for name in ("timesteps", "eval_freq", "episodes", "threads", "reps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= 1")
    for name in ("steps", "rounds"):
        if getattr(args, name) < 0:
            parser.error(f"--{name}={getattr(args, name)} must be >= 1 (or 0 for the default)")
    if args.part == "elr-trace" and any(arm.partition(":")[0] == "sb3" for arm in args.arms):
        parser.error(
            f"elr-trace: --arms {' '.join(args.arms)} has sb3; the ELR is logged by the plastic agents, give presets (none, nap, elr, ...)"
        )
    for arm in args.arms:
        try:
            parse_arm(arm)
        except ValueError as exc:
            parser.error(str(exc))
    if len(set(args.arms)) != len(args.arms) or len(set(args.seeds)) != len(args.seeds):
        parser.error("--arms and --seeds must not repeat a value")
    torch.set_num_threads(args.threads)
    when = f", {datetime.date.today().isoformat()}" if args.part == "compare" else ""
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s), {platform.machine()}, {args.part}{when}")
    rows = []
    if args.part == "compare":
        rows = compare(args)
    elif args.part == "elr-trace":
        for algo in args.algos:
            trace = [{"algo": algo, **row} for row in elr_trace(algo, args.arms, args.timesteps or 20_000, args.seeds[0])]
            rows += trace
            print(f"# {algo} on {TASKS[algo].env}, seed {args.seeds[0]}: per layer, parameter norm and ELR (update norm / parameter norm)")
            print(f"{'arm':<12} {'env step':>8} {'layer':<16} {'norm':>8} {'ELR':>9}")
            for row in trace:
                print(f"{row['arm']:<12} {row['step']:>8} {row['layer']:<16} {row['param_norm']:>8.2f} {row['elr']:>9.5f}")
    elif args.part == "gradstep":
        rows = gradstep(args.steps or 300)
        print(f"{'PPO gradient step, CartPole policy':<36} {'us':>7} {'x SB3':>6}")
        for row in rows:
            print(f"{row['arm']:<36} {row['us']:>7.0f} {row['ratio']:>6.3f}")
    elif args.part == "overhead":
        print(
            f"{'env':<12} {'policy':<10} {'rounds':>6} {'SB3 PPO steps/s':>16} {'PlasticPPO(elr)':>16} {'ratio':>6} {'ratio IQR':>12} {'control (none)':>15}"
        )
        for env_name in args.envs:
            zoo = ZOO_ATARI if env_name == "atari-sized" else ZOO_CARTPOLE
            rounds = args.rounds or (15 if env_name == "atari-sized" else 40)
            row = overhead(env_name, zoo, args.steps or 1024, rounds)
            rows.append(row)
            iqr = f"{row['ratio_q1']:.3f}-{row['ratio_q3']:.3f}"
            print(
                f"{row['env']:<12} {row['policy']:<10} {rounds:>6} {row['sb3_sps']:>16.0f} {row['plastic_sps']:>16.0f} "
                f"{row['ratio']:>6.3f} {iqr:>12} {row['none_ratio']:>15.3f}", flush=True,
            )  # fmt: skip
    else:
        print(f"{'algo':<11} {'seed':>4} {'first >= 475':>12} {'final':>7} {'best':>7} {'wall s':>7}")
        for algo in (PlasticPPO, PPO):
            for seed in args.seeds:
                row = learning(algo, seed, args.timesteps or 100_000, args.eval_freq or 10_000, args.episodes)
                rows.append(row)
                first = row["first_475"] if row["first_475"] is not None else "never"
                print(f"{row['algo']:<11} {seed:>4} {first:>12} {row['final']:>7.1f} {row['best']:>7.1f} {row['wall_s']:>7.0f}", flush=True)
            hits = sum(r["first_475"] is not None for r in rows if r["algo"] == algo.__name__)
            print(f"{algo.__name__}: reached 475 in {hits} of {len(args.seeds)} seeds")
    return rows


if __name__ == "__main__":
    main()
