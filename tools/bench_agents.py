"""Benchmark the agents: overhead against SB3's PPO, and learning on CartPole-v1.

    python -m plastic_rl.tools.bench_agents overhead [--steps N] [--rounds 15]
    python -m plastic_rl.tools.bench_agents learning [--seeds 0 1 2 3 4] [--timesteps 100000]
    python -m plastic_rl.tools.bench_agents gradstep [--steps 300]

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
"""

from __future__ import annotations

import argparse
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
    kwargs = dict(zoo)
    n_envs = kwargs.pop("n_envs")
    for key, value in kwargs.items():
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
        self.points.append((self.num_timesteps, float(self.parent.last_mean_reward)))
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["overhead", "learning", "gradstep"])
    parser.add_argument("--steps", type=int, default=0, help="env steps per overhead round (default 1024: 4 rollouts on CartPole, 1 on the image env)")
    parser.add_argument("--rounds", type=int, default=0, help="overhead rounds (default 40 on CartPole, 15 on the image env)")
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "atari-sized"], choices=["CartPole-v1", "atari-sized"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--eval-freq", type=int, default=10_000, help="env steps between evaluations")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per evaluation")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: small networks)")
    args = parser.parse_args(argv)
    for name in ("timesteps", "eval_freq", "episodes", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= 1")
    for name in ("steps", "rounds"):
        if getattr(args, name) < 0:
            parser.error(f"--{name}={getattr(args, name)} must be >= 1 (or 0 for the default)")
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s), {platform.machine()}, {args.part}")
    rows = []
    if args.part == "gradstep":
        rows = gradstep(args.steps or 300)
        print(f"{'PPO gradient step, CartPole policy':<36} {'us':>7} {'x SB3':>6}")
        for row in rows:
            print(f"{row['arm']:<36} {row['us']:>7.0f} {row['ratio']:>6.3f}")
    elif args.part == "overhead":
        print(f"{'env':<12} {'policy':<10} {'rounds':>6} {'SB3 PPO steps/s':>16} {'PlasticPPO(elr)':>16} {'ratio':>6} {'ratio IQR':>12} {'control (none)':>15}")
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
                row = learning(algo, seed, args.timesteps, args.eval_freq, args.episodes)
                rows.append(row)
                first = row["first_475"] if row["first_475"] is not None else "never"
                print(f"{row['algo']:<11} {seed:>4} {first:>12} {row['final']:>7.1f} {row['best']:>7.1f} {row['wall_s']:>7.0f}", flush=True)
            hits = sum(r["first_475"] is not None for r in rows if r["algo"] == algo.__name__)
            print(f"{algo.__name__}: reached 475 in {hits} of {len(args.seeds)} seeds")
    return rows


if __name__ == "__main__":
    main()
