"""Benchmark: what ``ELR.step()`` adds to an Adam step, on SB3's default PPO MLP and NatureCNN policies.

    python -m plastic_rl.tools.bench_core [--steps N] [--threads N] [--gains]
    python -m plastic_rl.tools.bench_core --interventions [--repeats N]

``--interventions``: the cost of one ``interventions.redo`` call (a 256-observation batch: two no-grad
forwards, dormant units, traced consumers, the edits and the optimizer state), one ``shrink_perturb``
and one ``reset`` of the output heads, against one PPO gradient step on the same 256 observations
(forward, loss, backward, Adam step), all on the same normalized policy; medians over the repeats,
the arms taking turns in a random order.

The policy is normalized as the agents normalize it: LayerNorm without gains (``PlasticityConfig.affine``);
``--gains`` gives the norms learnable gains (``insert_norm``'s default), which ELR projects too (twice the groups).
Every arm trains its own identical copy of the normalized policy with the same fixed gradients. The
arms take turns one step at a time, in a fresh random order each round (``interleaved``), so machine
noise and what each arm leaves in the caches hit them alike; each step is timed and the median step
time of each arm is compared with plain Adam's.
Arm ``adam``: ``optimizer.step()``. Arm ``elr``: ``optimizer.step(); elr.step(loss)`` with the default
recipe (measure every layer and project every step, gains projected, a cyclic re-warm schedule).
Arm ``elr/10``: the same, measuring the update every 10th step (``measure_every=10``), which is
enough for logging and skips the per-step snapshot. Arm ``elr/log``: what the agents run: project every
step, measure only when asked (``measure_every=0``; the agents ask once per write of their logger, so
over a few thousand steps, never). Arm ``default/log``: what the default preset (``norm-rewarm``) runs
before its first re-warm: its projection mode and schedule (no projection yet, no schedule), measured only when asked.
"""

from __future__ import annotations

import argparse
import copy
import platform
import random
import statistics
import time
from collections.abc import Callable, Mapping

import gymnasium as gym
import torch

from plastic_rl.agents.config import DEFAULT_PRESET, PRESETS, PlasticityConfig
from plastic_rl.elr import ELR, CyclicRewarm
from plastic_rl.norm import insert_norm


def sb3_policy(kind: str, affine: bool = PlasticityConfig.affine) -> torch.nn.Module:
    """SB3's default PPO policy for CartPole ("mlp") or an Atari game ("cnn"), normalized (``affine``: with gains)."""
    from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy

    lr = lambda _: 2.5e-4  # noqa: E731 - SB3 wants a schedule callable
    if kind == "mlp":
        policy = ActorCriticPolicy(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), lr)
    elif kind == "cnn":
        policy = ActorCriticCnnPolicy(gym.spaces.Box(0, 255, (4, 84, 84), dtype="uint8"), gym.spaces.Discrete(6), lr)  # type: ignore[call-overload]
    else:
        raise ValueError(f"model {kind!r} is unknown; accepted: mlp, cnn")
    return insert_norm(policy, affine=affine)


# arm -> ELR keywords over the recipe's (None: no ELR; measure_every 0: when asked); "schedule" is a factory:
# schedules hold state, so each arm gets its own
ARMS: dict[str, dict | None] = {
    "adam": None,
    "elr": {"measure_every": 1},
    "elr/10": {"measure_every": 10},
    "elr/log": {"measure_every": 0},
    "default/log": {"measure_every": 0, "project": PRESETS[DEFAULT_PRESET].project, "schedule": PRESETS[DEFAULT_PRESET].make_schedule},
}


def make_arm(policy: torch.nn.Module, spec: dict | None):
    policy = copy.deepcopy(policy)
    # SB3's PPO optimizer: Adam with eps=1e-5 over all policy parameters.
    optimizer = torch.optim.Adam(policy.parameters(), lr=2.5e-4, eps=1e-5)
    elr = None
    if spec is not None:
        spec = {"schedule": lambda: CyclicRewarm(period=10_000), **spec}
        elr = ELR(policy, optimizer, **{**spec, "schedule": spec["schedule"]()})
    generator = torch.Generator().manual_seed(0)
    for p in policy.parameters():
        p.grad = torch.randn(p.shape, generator=generator) * 1e-2

    def step() -> None:
        optimizer.step()
        if elr is not None:
            elr.step(loss=0.5)

    return step


def interleaved(
    arms: Mapping[str, Callable[[], object]], rounds: int, before: Callable[[str], object] | None = None, seed: int = 0
) -> dict[str, list[float]]:
    """Seconds of every timed call of each arm: each round calls every arm once, in a fresh random order.

    Random, not a fixed rotation: an arm is slowed by what the arm before it left behind (its memory in the caches,
    the allocator's state; on the MLP, an Adam step right after a measure-every-step ELR step takes ~15 us more than
    after another Adam step), and a rotation gives each arm the same predecessor round after round. Shuffled, every
    arm follows every other alike, and a slow spell of the machine still hits all arms alike.

    :param arms: name -> a call to time
    :param rounds: calls of each arm
    :param before: called with the arm's name before each call, untimed (e.g. a gradient step to refresh the state)
    :param seed: of the orders (the same orders every run)
    """
    order, rng = list(arms), random.Random(seed)
    times: dict[str, list[float]] = {name: [] for name in arms}
    clock = time.perf_counter
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            if before is not None:
                before(name)
            start = clock()
            arms[name]()
            times[name].append(clock() - start)
    return times


def bench(kind: str, steps: int, affine: bool = PlasticityConfig.affine) -> dict[str, float]:
    policy = sb3_policy(kind, affine)
    arms = {name: make_arm(policy, spec) for name, spec in ARMS.items()}
    for step in arms.values():  # warm-up: allocator, Adam state
        for _ in range(5):
            step()
    times = interleaved(arms, steps)
    names = list(arms)
    adam = statistics.median(times["adam"])
    row = {"model": kind, "params": sum(p.numel() for p in policy.parameters()), "adam_us": adam * 1e6}
    for name in names[1:]:
        median = statistics.median(times[name])
        row[f"{name}_us"] = median * 1e6
        row[f"{name}_adds"] = median / adam - 1.0
    return row  # type: ignore[return-value]


def intervention_costs(kind: str, repeats: int, batch: int = 256) -> dict[str, float]:
    """Median seconds of one gradient step and of one call of each intervention, on ``kind``'s policy."""
    from plastic_rl import interventions
    from plastic_rl.agents.forwards import actor_critic_forward

    policy = sb3_policy(kind)
    optimizer = torch.optim.Adam(policy.parameters(), lr=2.5e-4, eps=1e-5)
    policy.observation_space.seed(0)  # type: ignore[operator,union-attr]
    obs = policy.obs_to_tensor(torch.stack([torch.as_tensor(policy.observation_space.sample()) for _ in range(batch)]).numpy())[0]  # type: ignore[operator,union-attr]
    actions = torch.randint(0, policy.action_space.n, (batch,))  # type: ignore[arg-type,union-attr]
    heads = ["action_net", "value_net"]

    def gradient_step() -> None:
        values, log_prob, entropy = policy.evaluate_actions(obs, actions)  # type: ignore[operator]
        loss = -log_prob.mean() + values.pow(2).mean() - 0.01 * entropy.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    arms = {
        "gradient step": gradient_step,
        "redo": lambda: interventions.redo(policy, optimizer, obs, tau=0.1, forward=actor_critic_forward),
        "shrink_perturb": lambda: interventions.shrink_perturb(policy, optimizer),
        "reset heads": lambda: interventions.reset(policy, optimizer, heads),
    }
    for arm in arms.values():  # warm-up
        arm()

    def refresh(name: str) -> None:
        if name != "gradient step":
            gradient_step()  # the Adam state an intervention edits exists and is fresh

    times = interleaved(arms, repeats, before=refresh)
    return {"model": kind, **{name: statistics.median(t) for name, t in times.items()}}  # type: ignore[dict-item]


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--steps", type=int, default=0, help="timed steps per arm (default: 3000 mlp, 150 cnn)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own)")
    parser.add_argument("--gains", action="store_true", help="norms with learnable gains, projected too (the agents use none)")
    parser.add_argument("--interventions", action="store_true", help="time redo / shrink_perturb / reset against a gradient step")
    parser.add_argument("--repeats", type=int, default=0, help="--interventions: calls per arm (default: 50 mlp, 10 cnn)")
    args = parser.parse_args(argv)
    if args.steps < 0:
        parser.error(f"--steps={args.steps} must be >= 1 (or 0 for the default)")
    if args.repeats < 0:
        parser.error(f"--repeats={args.repeats} must be >= 1 (or 0 for the default)")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.interventions:
        print(
            f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, median ms per call, "
            "256 observations, arms taking turns in a random order"
        )
        print(
            f"{'model':<6} {'grad step':>10} {'redo':>8} {'x step':>7} {'shrink_perturb':>15} {'x step':>7} {'reset heads':>12} {'x step':>7}"
        )
        rows = []
        for kind in args.models:
            row = intervention_costs(kind, args.repeats or (50 if kind == "mlp" else 10))
            rows.append(row)
            step = row["gradient step"]
            print(
                f"{kind:<6} {1e3 * step:>10.2f} {1e3 * row['redo']:>8.2f} {row['redo'] / step:>7.2f} "
                f"{1e3 * row['shrink_perturb']:>15.2f} {row['shrink_perturb'] / step:>7.2f} "
                f"{1e3 * row['reset heads']:>12.2f} {row['reset heads'] / step:>7.2f}"
            )
        return rows
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
        f"median step time of each arm, arms interleaved step by step in a random order, norm gains: {'learnable, projected' if args.gains else 'none (as the agents)'}"
    )
    print(f"{'model':<6} {'params':>9} {'adam (us)':>10} {'+ELR (us)':>10} {'ELR adds':>9} {'+ELR/10 (us)':>13} {'ELR/10 adds':>12} "
          f"{'+ELR/log (us)':>14} {'ELR/log adds':>13} {'default (us)':>13} {'default adds':>13}")  # fmt: skip
    rows = []
    for kind in args.models:
        row = bench(kind, args.steps or (3000 if kind == "mlp" else 150), affine=args.gains)
        rows.append(row)
        print(
            f"{row['model']:<6} {row['params']:>9,} {row['adam_us']:>10.1f} {row['elr_us']:>10.1f} {row['elr_adds']:>9.1%} "
            f"{row['elr/10_us']:>13.1f} {row['elr/10_adds']:>12.1%} {row['elr/log_us']:>14.1f} {row['elr/log_adds']:>13.1%} "
            f"{row['default/log_us']:>13.1f} {row['default/log_adds']:>13.1%}"
        )
    return rows


if __name__ == "__main__":
    main()
