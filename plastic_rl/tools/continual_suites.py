"""What ``tools/continual`` trains: the suites (base overrides and budgets of ``plastic_rl.train``) and the
arms (each arm's overrides on top of a suite's), and the Hydra multiruns that run them.

Its own module so that the benchmark's CLI and claims (``tools/continual``) stay apart from what a run is.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONSTANT_LR_ARMS = ("none", "none-2x", "none-4x", "none-8x", "none-16x")
ELR_ARMS = ("elr", "elr-cusum", "elr-on-switch", "elr-decay", "norm-shrink", "norm-rewarm", "norm-rewarm-lr")
INTERVENTION_ARMS = ("redo", "shrink-perturb", "reset")
ARMS = ("fresh", *CONSTANT_LR_ARMS, "nap", "nap-2x", "nap-4x", *ELR_ARMS, *INTERVENTION_ARMS)


@dataclass
class Suite:
    """What a suite trains: the base overrides of ``plastic_rl.train`` and its budget."""

    name: str
    overrides: list[str]
    lr: float
    tasks: int  # task switches + 1 (single games: the games, one run each)
    steps_per_task: int
    optimizer_steps_per_task: int
    sequence: bool = True  # tasks in one run (a TaskSequence) or one run per task
    task_values: list[str] = field(default_factory=list)  # single games: the env.id of each "task"
    games: list[str] = field(default_factory=list)  # sequences: the game of task k is games[k % len(games)]
    exploration: tuple[float, float, float] | None = None  # DQN sequences: epsilon's start, end, decay steps of the sequence

    def game_of(self, task: Any) -> str:
        """What the agent played on a task (the ``game`` column of the per-run rows)."""
        return self.games[task % len(self.games)] if isinstance(task, int) and self.games else str(task)

    @property
    def reference(self) -> str:
        return "fresh" if self.sequence else "none"


def make_suite(args: argparse.Namespace) -> Suite:
    if args.suite == "permuted-cartpole":
        steps = args.steps_per_task or 30_000
        rollout = 32 * 8  # rl-zoo3's CartPole PPO: n_steps 32 x 8 envs, batch 256, 20 epochs
        return Suite("permuted-cartpole", [
            "env=NonStationary", "agent=ppo", f"env.kwargs.n_tasks={args.tasks}", f"env.kwargs.switch_every={steps}",
            f"total_timesteps={args.tasks * steps}", f"eval_freq={args.eval_freq or 5_000}",
            f"eval_episodes={args.eval_episodes}", f"checkpoint_freq={steps}", "diagnostics_freq=200",
        ], lr=1e-3, tasks=args.tasks, steps_per_task=steps, optimizer_steps_per_task=steps // rollout * 20,
           games=["CartPole-v1"])  # fmt: skip
    if args.suite in ("minatar-sequence", "minatar", "atari-sequence"):
        steps = args.steps_per_task or (100_000 if args.suite != "atari-sequence" else 2_000_000)
        train_freq = max(1, round(1 / args.replay_ratio))
        common = [f"agent.kwargs.train_freq={train_freq}", f"eval_freq={args.eval_freq or steps // 10}",
                  f"eval_episodes={args.eval_episodes}", f"checkpoint_freq={steps}", "diagnostics_freq=1000",
                  f"agent.kwargs.exploration_fraction={min(1.0, 100_000 / (args.tasks * steps)):.4g}"]  # fmt: skip
        fraction = float(common[-1].split("=")[1])  # of a sequence's env steps: epsilon decays over them once
        opt_steps = steps // train_freq
        if args.suite == "minatar":
            games = [g.strip() for g in args.games.split(",") if g.strip()]
            return Suite("minatar", ["env=MinAtar", "agent=dqn", f"total_timesteps={steps}", *common], lr=1e-4, tasks=len(games),
                         steps_per_task=steps, optimizer_steps_per_task=opt_steps // 5, sequence=False, task_values=games)  # fmt: skip
        if args.suite == "minatar-sequence":
            games = ",".join([g.strip() for g in args.games.split(",") if g.strip()][: args.tasks])  # type: ignore[assignment]
            n = len(games.split(","))  # type: ignore[attr-defined]
            return Suite("minatar-sequence", ["env=MinAtarSequence", "agent=dqn", f"env.id='{games}'", f"env.kwargs.switch_every={steps}",
                                              f"total_timesteps={n * steps}", *common],
                         lr=1e-4, tasks=n, steps_per_task=steps, optimizer_steps_per_task=opt_steps, games=games.split(","),  # type: ignore[attr-defined]
                         exploration=(*epsilons("MinAtarSequence", args.hydra), fraction * n * steps))  # fmt: skip
        games = args.games if args.games != MINATAR_GAMES else "Pong,Breakout,SpaceInvaders,Seaquest,Qbert"  # type: ignore[assignment]
        n = len(games.split(","))  # type: ignore[attr-defined]
        return Suite("atari-sequence", ["env=Atari", "agent=dqn", "env.factory=atari_sequence", f"env.id='{games}'",
                                        f"+env.kwargs.switch_every={steps}", "+env.eval_kwargs.switch_every=0",
                                        f"total_timesteps={n * steps}", *common],
                     lr=1e-4, tasks=n, steps_per_task=steps, optimizer_steps_per_task=opt_steps, games=games.split(","),  # type: ignore[attr-defined]
                     exploration=(*epsilons("Atari", args.hydra), fraction * n * steps))  # fmt: skip
    raise ValueError(f"suite {args.suite!r} is unknown")


MINATAR_GAMES = "Breakout,SpaceInvaders,Freeway,Asterix,Seaquest"


def epsilons(env: str, hydra: list[str]) -> tuple[float, float]:
    """DQN's exploration on ``env``: epsilon's start and end, from the hparams file unless ``--hydra`` sets them."""
    import yaml

    import plastic_rl.configs

    hparams: dict[str, Any] = yaml.safe_load((Path(plastic_rl.configs.__file__).parent / "hparams" / f"dqn_{env}.yaml").read_text())
    given = {k: v for k, _, v in (o.partition("=") for o in hydra if o.startswith("agent.kwargs.exploration_"))}
    start = given.get("agent.kwargs.exploration_initial_eps", hparams.get("exploration_initial_eps", 1.0))  # SB3's defaults
    return float(start), float(given.get("agent.kwargs.exploration_final_eps", hparams.get("exploration_final_eps", 0.05)))


def fresh_exploration(suite: Suite, task: int) -> list[str]:
    """The exploration a ``fresh`` agent of ``task`` gets: the sequence's own at that position.

    A sequence decays epsilon once, over its first ``decay`` env steps; a fresh agent decaying over its
    own task would explore differently from the agents it is the reference of, and the gap between them
    would measure exploration, not plasticity. So task k's fresh agent starts at the sequence's epsilon at
    step k * steps_per_task and follows the same line (SB3's linear schedule over the run's progress).
    """
    assert suite.exploration is not None
    start, end, decay = suite.exploration
    begin = task * suite.steps_per_task
    if begin >= decay:
        return [f"agent.kwargs.exploration_initial_eps={end:g}", f"agent.kwargs.exploration_final_eps={end:g}"]
    here = start + (end - start) * begin / decay
    return [f"agent.kwargs.exploration_initial_eps={here:.6g}", f"agent.kwargs.exploration_final_eps={end:g}",
            f"agent.kwargs.exploration_fraction={(decay - begin) / suite.steps_per_task:.6g}"]  # fmt: skip


FRESH_BUFFER = "-fb"  # an arm + "-fb": its replay buffer emptied at each switch (OnTaskSwitch(fresh_buffer=True))


def is_arm(arm: str) -> bool:
    """One of ``ARMS``, or one of them (not ``fresh``) + ``-fb``."""
    return arm in ARMS or (arm.endswith(FRESH_BUFFER) and arm[: -len(FRESH_BUFFER)] in ARMS and arm != "fresh" + FRESH_BUFFER)


def arm_overrides(arm: str, suite: Suite) -> list[str]:
    """The ``plastic_rl.train`` overrides of one arm (on top of the suite's).

    ``<arm>-fb`` (DQN sequences): the arm with its replay buffer emptied at each switch and
    ``learning_starts`` steps of waiting after it, as a new agent has: what is left of its gap to ``fresh``
    is its network's, not the old games' data in its buffer.
    """
    if arm.endswith(FRESH_BUFFER) and arm not in ARMS:
        if suite.exploration is None or not is_arm(arm):
            raise ValueError(f"arm {arm!r}: '-fb' (a fresh replay buffer at each switch) needs a DQN sequence suite and an arm "
                             f"of {', '.join(a for a in ARMS if a != 'fresh')}")  # fmt: skip
        return [*arm_overrides(arm[: -len(FRESH_BUFFER)], suite), "++env.fresh_buffer_on_switch=true"]
    period = max(10, round(suite.optimizer_steps_per_task / 2.3))
    warmup = max(1, period // 10)
    schedule = [f"plasticity.period={period}", f"plasticity.warmup={warmup}", f"plasticity.decay={period - warmup}"]
    switch_rule = ["plasticity.every=0", "env.intervene_on_switch=true"] if suite.sequence else [
        f"plasticity.every={suite.optimizer_steps_per_task}"]  # fmt: skip
    base, _, multiple = arm.partition("-")
    if base in ("none", "nap") and multiple in ("", "2x", "4x", "8x", "16x"):
        factor = {"": 1, "2x": 2, "4x": 4, "8x": 8, "16x": 16}[multiple]
        return [f"plasticity={base}", f"agent.kwargs.learning_rate={suite.lr * factor:g}"]
    lr = [f"agent.kwargs.learning_rate={suite.lr:g}"]
    if arm == "fresh":
        return ["plasticity=none", *lr]
    if arm == "elr":
        return ["plasticity=elr", *lr, *schedule]
    if arm == "elr-cusum":
        return ["plasticity=elr-cusum", *lr, *schedule]
    if arm == "elr-on-switch":
        if not suite.sequence:
            raise ValueError("elr-on-switch needs task switches; the minatar suite has none")
        return ["plasticity=elr", "plasticity.schedule=on-demand", "env.rewarm_on_switch=true", *lr, *schedule]
    if arm in ("elr-decay", "norm-rewarm"):  # the safe rules: decay while a task holds, re-warm at each announced switch
        return [f"plasticity={arm}", *lr, *(["env.rewarm_on_switch=true"] if suite.sequence else [])]
    if arm in ("norm-shrink", "norm-rewarm-lr"):  # variants of the default: its first rule; with the lr re-warmed too
        variant = ["plasticity.project=on-rewarm"] if arm == "norm-shrink" else ["plasticity.schedule=on-demand"]
        return ["plasticity=norm-rewarm", *variant, *lr, *(["env.rewarm_on_switch=true"] if suite.sequence else [])]
    if arm == "redo":
        return ["plasticity=redo", "plasticity.every=1000", *lr]
    if arm in ("shrink-perturb", "reset"):
        return [f"plasticity={arm}", *lr, *switch_rule]
    raise ValueError(f"arm {arm!r} is unknown; accepted: {', '.join(ARMS)}")


def jobs(suite: Suite, arm: str, seeds: list[int]) -> list[list[str]]:
    """The multirun(s) of one arm: lists of overrides, each swept over the seeds (and tasks for fresh)."""
    seed_sweep = f"seed={','.join(map(str, seeds))}"
    common = [f"+arm={arm}", seed_sweep, *arm_overrides(arm, suite)]
    if not suite.sequence:  # single games: one run per game
        return [[*common, f"env.id={','.join(suite.task_values)}", "run_name=" + arm + "_${env.id}_seed${seed}"]]
    if arm == "fresh":  # each task alone, from scratch, for one task's budget
        fresh = [*common, f"total_timesteps={suite.steps_per_task}", "run_name=fresh_task${env.kwargs.first_task}_seed${seed}"]
        if suite.exploration is not None:  # one multirun per task: each explores as the sequence does there
            return [[*fresh, f"+env.kwargs.first_task={k}", *fresh_exploration(suite, k)] for k in range(suite.tasks)]
        return [[*fresh, f"+env.kwargs.first_task={','.join(str(k) for k in range(suite.tasks))}"]]
    return [[*common, "run_name=" + arm + "_seed${seed}"]]
