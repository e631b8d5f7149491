"""Benchmark the agents: overhead against SB3's PPO, and learning on CartPole-v1.

    python -m plastic_rl.tools.bench_agents overhead [--steps N] [--rounds 15]
    python -m plastic_rl.tools.bench_agents learning [--seeds 0 1 2 3 4] [--timesteps 100000]
    python -m plastic_rl.tools.bench_agents gradstep [--steps 300]
    python -m plastic_rl.tools.bench_agents elr-trace --algos dqn --arms none nap [--timesteps 20000]
    python -m plastic_rl.tools.bench_agents compare [--algos dqn sac] [--arms sb3 elr none] [--seeds 0 1 2 3 4]
                                                    [--csv bench_agents_compare.csv] [--reps 50000]
    python -m plastic_rl.tools.bench_agents panel [--rows ...] [--seeds ...] [--csv docs/data/panel.csv] [--report-only]
    python -m plastic_rl.tools.bench_agents speed [--rows ...] [--rounds 9] [--csv docs/data/speed.csv] [--report-only]
    python -m plastic_rl.tools.bench_agents speed-profile [--rows ...] [--rounds 2] [--csv docs/data/speed_profile.csv]

panel: SB3's class against the plastic default on six stationary rows (``plastic_rl/tools/panel.py``).

speed: every Plastic agent's env steps/s against its SB3 parent's, with a ``plasticity="none"`` control
arm, on SB3's defaults and rl-zoo3's settings (``plastic_rl/tools/speed.py``); speed-profile: where each
row's time goes, per arm (``plastic_rl/tools/speed_profile.py``).

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
import datetime
import platform
import statistics
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env

from plastic_rl.agents import PlasticPPO
from plastic_rl.tools.bench_compare import (  # noqa: F401 -- the compare part's names, importable from here as before
    CSV_FIELDS,
    RUN_KEY,
    TASKS,
    ZOO_CARTPOLE,
    ZOO_SAC_PENDULUM,
    Evaluate,
    Task,
    compare,
    compare_run,
    curve_of,
    elr_trace,
    hparams_file,
    hyperparams,
    iqm_curve,
    iqm_summary,
    iqm_with_ci,
    key_of,
    parse_arm,
    print_compare,
    read_rows,
    verdict,
)
from plastic_rl.tools.bench_rows import append_row, claim  # noqa: F401 -- re-exported

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


def main(argv: list[str] | None = None) -> list[dict]:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["panel"]:  # the stationary panel has its own options (tools/panel.py)
        from plastic_rl.tools import panel

        return panel.main(argv[1:])
    if argv[:1] == ["speed"]:  # the speed table has its own options too (tools/speed.py)
        from plastic_rl.tools import speed

        return speed.main(argv[1:])
    if argv[:1] == ["speed-profile"]:  # where a speed row's time goes (tools/speed_profile.py)
        from plastic_rl.tools import speed_profile

        return speed_profile.main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["overhead", "learning", "gradstep", "compare", "elr-trace", "panel", "speed", "speed-profile"])
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
