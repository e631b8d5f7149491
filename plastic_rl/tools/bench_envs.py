"""Benchmark the environments: the envpool adapter against raw envpool and SB3's Atari pipeline.

    python -m plastic_rl.tools.bench_envs [--game Breakout] [--n-envs 8] [--steps 100] [--rounds 9]
                                          [--ppo-steps 1024] [--ppo-rounds 2] [--plastic] [--threads N]

stepping: random actions (one pre-drawn array per step, the same for every arm) on the same game
and number of envs, all set up for training (episodic life, clipped rewards, 84x84 grey, 4 stacked
frames). Arms: ``raw`` = ``envpool.make(...).step`` with envpool's own auto-reset (the same pool
settings the adapter makes); ``adapter`` = ``make_vec_env`` (``EnvPoolVecEnv``); ``sb3`` = SB3's
``make_atari_env("<Game>NoFrameskip-v4")`` + ``VecFrameStack(4)`` (DummyVecEnv, ale-py, OpenCV). The
arms take turns, ``--steps`` VecEnv steps each per round, ``--rounds`` rounds, the order rotating
every round; each ratio is the median over rounds of the ratio within a round (neighbours in time
share the machine's load).

ppo: end to end, SB3's ``PPO("CnnPolicy")`` with rl-zoo3's Atari hyperparameters (8 envs, n_steps 128,
batch 256, 4 epochs, lr 2.5e-4, clip 0.1, ent 0.01) on the adapter and on ``make_atari_env`` +
``VecFrameStack``, ``--ppo-steps`` env steps per round (1024 = one rollout and its 16 gradient steps),
the two arms taking turns, the first one alternating. On a 2-core CPU the gradient steps dominate (about 0.8 s per 256-sample
minibatch of NatureCNN), which bounds this ratio whatever the env does. Torch runs on one thread by
default (``--threads``): on a shared 2-core machine a second OpenMP thread competing with envpool's
threads and the neighbours' load made NatureCNN's forward pass 3-7x slower and the numbers erratic. ``--plastic`` trains
``PlasticPPO`` (plasticity "elr") on the adapter instead. ``--ppo-steps 0`` skips this part.

Targets (issue 4): adapter/raw >= 0.9, adapter/sb3 >= 2, ppo adapter/sb3 >= 1.3.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import warnings
from typing import Any

import numpy as np

ZOO_ATARI_PPO: dict[str, Any] = dict(
    n_steps=128, batch_size=256, n_epochs=4, learning_rate=2.5e-4, clip_range=0.1, ent_coef=0.01, vf_coef=0.5
)
N_STACK = 4


def _envpool_id(game: str) -> str:
    from plastic_rl.envs import atari_id

    return atari_id(game)


def _sb3_id(envpool_id: str) -> str:
    return envpool_id.rsplit("-v", 1)[0] + "NoFrameskip-v4"


def make_arm(arm: str, game: str, n_envs: int, seed: int):
    """The VecEnv (or raw pool) of one arm, set up for training."""
    if arm == "raw":
        import envpool

        from plastic_rl.envs import ATARI_TRAIN

        # The pool the adapter makes: envpool's own episodic life off (the adapter tracks lives itself).
        kwargs = {**ATARI_TRAIN, "episodic_life": False}
        return envpool.make(_envpool_id(game), env_type="gymnasium", num_envs=n_envs, seed=seed, **kwargs)
    if arm == "adapter":
        from plastic_rl.envs import make_vec_env

        return make_vec_env(_envpool_id(game), n_envs=n_envs, seed=seed)
    if arm == "sb3":
        try:
            import ale_py
        except ImportError as error:  # pragma: no cover - depends on the machine
            raise SystemExit(f"the sb3 arm needs ale-py (pip install ale-py): {error}") from None
        import gymnasium as gym
        from stable_baselines3.common.env_util import make_atari_env
        from stable_baselines3.common.vec_env import VecFrameStack

        gym.register_envs(ale_py)
        return VecFrameStack(make_atari_env(_sb3_id(_envpool_id(game)), n_envs=n_envs, seed=seed), n_stack=N_STACK)
    raise ValueError(f"arm {arm!r} is unknown; accepted: raw, adapter, sb3")


def time_steps(env, actions: np.ndarray) -> float:
    """Env steps per second of ``len(actions)`` VecEnv steps (reset first, untimed)."""
    env.reset()
    step = env.step
    start = time.perf_counter()
    for action in actions:
        step(action)
    return actions.size / (time.perf_counter() - start)


def stepping(game: str, n_envs: int, steps: int, rounds: int, seed: int = 0) -> dict:
    envs = {arm: make_arm(arm, game, n_envs, seed) for arm in ("raw", "adapter", "sb3")}
    n_actions = envs["adapter"].action_space.n
    assert envs["sb3"].action_space.n == n_actions, "the same game has the same minimal action set in ALE and envpool"
    rng = np.random.default_rng(seed)
    sps: dict[str, list[float]] = {arm: [] for arm in envs}
    arms = list(envs)
    for r in range(rounds):
        actions = rng.integers(0, n_actions, (steps, n_envs))
        for arm in arms[r % 3 :] + arms[: r % 3]:  # each arm goes first, second and third in turn
            sps[arm].append(time_steps(envs[arm], actions))
    for env in envs.values():
        env.close()
    row = {f"{arm}_sps": statistics.median(v) for arm, v in sps.items()}
    row["adapter/raw"] = statistics.median(a / r for a, r in zip(sps["adapter"], sps["raw"]))
    row["adapter/sb3"] = statistics.median(a / s for a, s in zip(sps["adapter"], sps["sb3"]))
    return row


def ppo(game: str, n_envs: int, steps: int, rounds: int, plastic: bool = False, seed: int = 0) -> dict:
    from stable_baselines3 import PPO

    adapter_cls = PPO
    extra: dict[str, Any] = {}
    if plastic:
        from plastic_rl.agents import PlasticPPO

        adapter_cls, extra = PlasticPPO, {"plasticity": "elr"}
    models = {
        "sb3": PPO("CnnPolicy", make_arm("sb3", game, n_envs, seed), seed=seed, device="cpu", **ZOO_ATARI_PPO),
        "adapter": adapter_cls("CnnPolicy", make_arm("adapter", game, n_envs, seed), seed=seed, device="cpu", **ZOO_ATARI_PPO, **extra),
    }
    sps: dict[str, list[float]] = {arm: [] for arm in models}
    for r in range(rounds):
        for arm in list(models)[:: 1 if r % 2 == 0 else -1]:  # alternate which arm goes first
            model = models[arm]
            start = time.perf_counter()
            model.learn(steps, reset_num_timesteps=r == 0)
            sps[arm].append(steps / (time.perf_counter() - start))
    for model in models.values():
        model.env.close()  # type: ignore[union-attr]
    return {
        "agent": "PlasticPPO(elr)" if plastic else "PPO",
        "adapter_sps": statistics.median(sps["adapter"]),
        "sb3_sps": statistics.median(sps["sb3"]),
        "adapter/sb3": statistics.median(a / s for a, s in zip(sps["adapter"], sps["sb3"])),
    }


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m plastic_rl.tools.bench_envs", description=__doc__.split("\n")[0])
    parser.add_argument("--game", default="Breakout", help="an envpool Atari game (Breakout, Pong-v5, ...)")
    parser.add_argument("--n-envs", type=_positive, default=8)
    parser.add_argument("--steps", type=_positive, default=100, help="VecEnv steps per arm and round (stepping)")
    parser.add_argument("--rounds", type=_positive, default=9)
    parser.add_argument("--ppo-steps", type=_non_negative, default=1024, help="env steps per arm and round (ppo); 0 skips")
    parser.add_argument("--ppo-rounds", type=_positive, default=2)
    parser.add_argument("--threads", type=_positive, default=1, help="torch threads (default 1: see the module docstring)")
    parser.add_argument("--plastic", action="store_true", help="PlasticPPO(elr) on the adapter in the ppo part")
    args = parser.parse_args(argv)
    try:
        game = _envpool_id(args.game)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")

    import envpool
    import stable_baselines3
    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*precision lowered by casting.*")
    print(
        f"# {game} vs {_sb3_id(game)}, {args.n_envs} envs; envpool {envpool.__version__}, SB3 {stable_baselines3.__version__}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), {platform.machine()}, python {platform.python_version()}"
    )
    row = stepping(game, args.n_envs, args.steps, args.rounds)
    print(f"stepping: random actions, {args.steps} VecEnv steps x {args.rounds} rounds per arm, arms alternating; env steps/s (median)")
    print(f"{'raw envpool':>14} {'adapter':>10} {'sb3 atari':>10}  {'adapter/raw':>11} {'adapter/sb3':>11}")
    print(
        f"{row['raw_sps']:14.0f} {row['adapter_sps']:10.0f} {row['sb3_sps']:10.0f}  {row['adapter/raw']:11.3f} {row['adapter/sb3']:11.2f}"
    )
    result = {"stepping": row}
    if args.ppo_steps:
        prow = ppo(game, args.n_envs, args.ppo_steps, args.ppo_rounds, plastic=args.plastic)
        print(
            f"ppo: {prow['agent']} CnnPolicy, rl-zoo3 Atari hyperparameters, {args.ppo_steps} env steps x {args.ppo_rounds} rounds per arm; "
            "env steps/s (median)"
        )
        print(f"{'on adapter':>14} {'on sb3 atari':>12}  {'adapter/sb3':>11}")
        print(f"{prow['adapter_sps']:14.0f} {prow['sb3_sps']:12.0f}  {prow['adapter/sb3']:11.2f}")
        result["ppo"] = prow
    sys.stdout.flush()
    return result


if __name__ == "__main__":
    main()
