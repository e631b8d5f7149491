"""The stationary panel: does swapping SB3's agent for its Plastic twin (default preset) cost return?

    python -m plastic_rl.tools.bench_agents panel [--rows ppo-cartpole dqn-cartpole ...] [--seeds 0 1 2 3 4]
                                                  [--csv docs/data/panel.csv] [--report-only] [--md FILE]
                                                  [--extra docs/data/panel_dqn_norm_only.csv]

Each row is an algorithm on a stationary env at rl-zoo3's tuned hyperparameters and budget (the project's
MinAtar settings for MinAtar); the two arms are SB3's own class (``sb3``) and the plastic class with no
``plasticity=`` argument (``default``: whatever ``PlasticX(env)`` does; the preset it resolved to is
recorded). Every ``budget / 10`` env steps and at the end, the mean return of ``--episodes`` deterministic
episodes of a separate env (seeded seed + 1000). Per run: ``auc``, the mean over all evaluations (the
area under the curve), and ``final``, the last one; ``random``, the mean return of a uniformly random
policy over 20 episodes, measured by the tool. One CSV row per run
(``algo,env,arm,preset,seed,auc,final,random``); a run already in the CSV is skipped, so the panel resumes
where it stopped, and two processes may share the CSV (runs are claimed with a lock).

Scores are normalized per row as ``(x - random) / (SB3 - random)``, SB3 being the mean of the ``sb3``
arm's runs on that row; IQM over seeds with its 95% stratified-bootstrap CI (rliable). A row is a
**win** when the CI's lower end is above 1, a **loss** when its upper end is below 1, else a **tie**.
The targets (issue 20): every row's normalized-AUC IQM >= 0.95 with the CI reaching 1.0, and the panel's
IQM over all rows' runs >= 1.0. ``--extra`` adds ablation runs (rows of the same columns whose ``arm`` is
neither ``sb3`` nor ``default``; ``preset`` names what ran), reported beside on the same normalization.
When the library's default preset changes, the CSV's ``default`` runs of the earlier one are read as an arm
named after their preset (the file is left as it is): reported beside like ablations, and the new default
is run for every seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from plastic_rl.report.stats import MIN_SEEDS_VERDICT, not_enough

FIELDS = ["algo", "env", "arm", "preset", "seed", "auc", "final", "random"]
KEY = ("algo", "env", "arm", "seed")
ARMS = ("sb3", "default")


@dataclasses.dataclass(frozen=True)
class Row:
    """One panel row: SB3's class and its plastic twin, an env, rl-zoo3's settings and budget."""

    algo: str
    env: str
    sb3: str  # SB3's class name (stable_baselines3.<name>)
    plastic: str  # plastic_rl.agents.<name>
    hparams: Callable[[], dict]  # SB3 keywords (n_envs included), rl-zoo3's values
    timesteps: int
    make_env: Callable[[str, int, int], Any]  # (env, n_envs, seed) -> VecEnv
    note: str = ""


def gym_env(env: str, n_envs: int, seed: int):
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env(env, n_envs=n_envs, seed=seed)


def minatar_env(env: str, n_envs: int, seed: int):
    from plastic_rl.envs.minatar import minatar

    return minatar(env.split("/")[-1].removesuffix("-v1"), n_envs=n_envs, seed=seed)


def hparams_file(name: str) -> dict:
    """This project's copy of rl-zoo3's values (plastic_rl/configs/hparams/<name>.yaml), classes resolved."""
    from plastic_rl.tools.bench_compare import hparams_file as read
    from plastic_rl.train.build import linear, resolve_classes

    return resolve_classes({key: linear(value) for key, value in read(name).items()})


def zoo_ppo_cartpole() -> dict:
    from plastic_rl.tools.bench_compare import ZOO_CARTPOLE, hyperparams

    n_envs, kwargs = hyperparams(ZOO_CARTPOLE)
    return {"n_envs": n_envs, **kwargs}


ROWS = {
    # rl-zoo3 hyperparams/ppo.yml CartPole-v1: 8 envs x 32 steps, batch 256, 20 epochs, lr and clip lin_ to 0, 1e5 steps
    "ppo-cartpole": Row("ppo", "CartPole-v1", "PPO", "PlasticPPO", zoo_ppo_cartpole, 100_000, gym_env),
    # rl-zoo3 hyperparams/a2c.yml CartPole-v1: 8 envs, ent_coef 0, 5e5 steps
    "a2c-cartpole": Row("a2c", "CartPole-v1", "A2C", "PlasticA2C", lambda: {"n_envs": 8, **hparams_file("a2c_CartPole")}, 500_000, gym_env),
    # rl-zoo3 hyperparams/dqn.yml CartPole-v1: lr 2.3e-3, [256, 256], train_freq 256 / 128 gradient steps, 5e4 steps
    "dqn-cartpole": Row("dqn", "CartPole-v1", "DQN", "PlasticDQN", lambda: {"n_envs": 1, **hparams_file("dqn_CartPole")}, 50_000, gym_env),
    # the project's MinAtar DQN (configs/hparams/dqn_MinAtar.yaml: the MinAtar paper's, replay ratio 1), 1e5 steps
    "dqn-minatar-breakout": Row(
        "dqn", "MinAtar/Breakout-v1", "DQN", "PlasticDQN", lambda: {"n_envs": 1, **hparams_file("dqn_MinAtar")}, 100_000, minatar_env
    ),
    # rl-zoo3 hyperparams/sac.yml Pendulum-v1: lr 1e-3, 2e4 steps (the rest SAC's defaults)
    "sac-pendulum": Row("sac", "Pendulum-v1", "SAC", "PlasticSAC", lambda: {"n_envs": 1, "learning_rate": 1e-3}, 20_000, gym_env),
    # rl-zoo3 hyperparams/td3.yml Pendulum-v1: gamma 0.98, buffer 2e5, learning_starts 1e4, normal noise 0.1,
    # lr 1e-3, [400, 300], 2e4 steps
    "td3-pendulum": Row(
        "td3", "Pendulum-v1", "TD3", "PlasticTD3",
        lambda: {"n_envs": 1, "gamma": 0.98, "buffer_size": 200_000, "learning_starts": 10_000, "noise_type": "normal",
                 "noise_std": 0.1, "gradient_steps": 1, "train_freq": 1, "learning_rate": 1e-3,
                 "policy_kwargs": {"net_arch": [400, 300]}},
        20_000, gym_env,
    ),
}  # fmt: skip


def default_preset(plastic: str) -> str:
    """The preset ``PlasticX(env)`` uses when no ``plasticity=`` is given (read off the class, not assumed)."""
    import inspect

    from plastic_rl import agents

    return str(inspect.signature(getattr(agents, plastic).__init__).parameters["plasticity"].default)


PLASTIC = {row.algo: row.plastic for row in ROWS.values()}  # algo -> its plastic class


def relabel(rows: list[dict]) -> list[dict]:
    """``default`` rows of a preset that is no longer their class's default become arm ``<preset>``.

    The CSV keeps the runs of an earlier default under arm ``default``; read as they are, they would count as
    done (the new default would never run) and be pooled with the new default's runs. Relabeled in memory,
    they are reported beside, as ``--extra``'s ablations are.
    """
    current = {algo: default_preset(plastic) for algo, plastic in PLASTIC.items()}

    def earlier(r: dict) -> bool:
        return r["arm"] == "default" and r["algo"] in current and r["preset"] != current[r["algo"]]

    return [{**r, "arm": r["preset"]} if earlier(r) else r for r in rows]


def random_return(row: Row, episodes: int = 20, seed: int = 12_345) -> float:
    """Mean return of a uniformly random policy: the floor of the row's normalization."""
    env = row.make_env(row.env, 1, seed)
    env.action_space.seed(seed)
    returns: list[float] = []
    env.reset()
    total = 0.0
    while len(returns) < episodes:
        _, reward, done, _ = env.step(np.array([env.action_space.sample()]))
        total += float(reward[0])
        if done[0]:
            returns.append(total)
            total = 0.0
    env.close()
    return float(np.mean(returns))


def run(row: Row, arm: str, seed: int, episodes: int = 10) -> dict:
    """One (row, arm, seed) run: learn the budget, evaluating every tenth of it and at the end."""
    import stable_baselines3

    from plastic_rl import agents
    from plastic_rl.tools.bench_compare import Evaluate
    from plastic_rl.train.build import with_action_noise

    kwargs = row.hparams()
    n_envs = kwargs.pop("n_envs", 1)
    env = row.make_env(row.env, n_envs, seed)
    kwargs = with_action_noise(kwargs, env.action_space)
    if arm == "sb3":
        model = getattr(stable_baselines3, row.sb3)("MlpPolicy" if row.algo != "dqn" or "MinAtar" not in row.env else "CnnPolicy", env,
                                                    seed=seed, **kwargs)  # fmt: skip
        preset = "sb3"
    else:
        model = getattr(agents, row.plastic)(env, seed=seed, **kwargs)  # no plasticity=: the default
        preset = default_preset(row.plastic)
    every = max(1, row.timesteps // 10)
    callback = Evaluate(row.make_env(row.env, 1, seed + 1000), every, row.timesteps, episodes)
    model.learn(row.timesteps, callback=callback)
    callback.evaluate()
    curve = [float(np.mean(r)) for _, r in callback.points]
    return {"algo": row.algo, "env": row.env, "arm": arm, "preset": preset, "seed": seed, "auc": round(float(np.mean(curve)), 4),
            "final": round(curve[-1], 4)}  # fmt: skip


def read(path: Path) -> list[dict]:
    """The CSV's complete rows, typed, ``default`` rows of an earlier default preset relabeled (``relabel``)."""
    from plastic_rl.tools.bench_rows import read_typed

    return relabel(read_typed(path, {"seed": int, "auc": float, "final": float, "random": float}))


def key(r: dict) -> tuple:
    return tuple(r[k] for k in KEY)


def normalized(rows: list[dict], metric: str) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """(algo, env) -> arm -> per-seed ``(x - random) / (mean SB3 - random)`` (seeds in order)."""
    out: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for algo, env in dict.fromkeys((r["algo"], r["env"]) for r in rows):
        mine = sorted((r for r in rows if (r["algo"], r["env"]) == (algo, env)), key=lambda r: r["seed"])
        sb3 = [r[metric] for r in mine if r["arm"] == "sb3"]
        if not sb3:
            continue
        floor = float(np.mean([r["random"] for r in mine]))
        scale = float(np.mean(sb3)) - floor
        if scale <= 0:  # (a smoke budget): no scale to normalize by
            print(f"# {algo} {env}: SB3's mean {metric} {np.mean(sb3):.3g} is not above the random policy's {floor:.3g}: left out")
            continue
        arms = [*ARMS, *sorted({r["arm"] for r in mine} - set(ARMS))]  # and ablation arms of --extra rows
        out[(algo, env)] = {arm: np.array([(r[metric] - floor) / scale for r in mine if r["arm"] == arm]) for arm in arms}
    return out


def verdict(low: float, high: float, n: int = MIN_SEEDS_VERDICT) -> str:
    """win / tie / loss against SB3 (1.0); below the report's ``MIN_SEEDS_VERDICT`` seeds: ``n/a``."""
    if n < MIN_SEEDS_VERDICT:
        return not_enough(n)
    return "win" if low > 1.0 else "loss" if high < 1.0 else "tie"


def summary(rows: list[dict], reps: int = 50_000) -> list[dict]:
    """Per (algo, env) and for the panel as a whole: each arm's normalized IQM [95% CI] of AUC and final return."""
    from plastic_rl.report.stats import interval_estimates

    table = []
    for metric in ("auc", "final"):
        scores = normalized(rows, metric)
        for (algo, env), arms in scores.items():
            present = {arm: v.reshape(-1, 1) for arm, v in arms.items() if v.size >= 2}
            for arm, (iqm, low, high) in interval_estimates(present, reps=reps).items():
                table.append(
                    {"metric": metric, "algo": algo, "env": env, "arm": arm, "n": arms[arm].size, "iqm": iqm, "low": low, "high": high}
                )
        if not scores:
            continue
        pooled = {arm: np.concatenate([a[arm] for a in scores.values()]) for arm in ARMS}
        pooled = {arm: v.reshape(-1, 1) for arm, v in pooled.items() if v.size >= 2}
        for arm, (iqm, low, high) in interval_estimates(pooled, reps=reps).items():
            rows_with = sum(a[arm].size > 0 for a in scores.values())  # rows this arm has runs on
            table.append({"metric": metric, "algo": "panel", "env": f"{rows_with} rows", "arm": arm, "n": pooled[arm].size,
                          "iqm": iqm, "low": low, "high": high})  # fmt: skip
    return table


def markdown(rows: list[dict], table: list[dict]) -> str:
    """The docs table: per row, the default's normalized AUC and final return (IQM [CI], n), the verdicts."""
    presets = sorted({r["preset"] for r in rows if r["arm"] == "default"})
    current = sorted({default_preset(PLASTIC[r["algo"]]) for r in rows if r["algo"] in PLASTIC})
    measured = "measured" if presets else "(no runs yet)"
    lines = [
        f"Default preset(s) {measured}: {', '.join(f'`{p}`' for p in presets or current)}. "
        "Normalized per row: (x - random) / (SB3's mean - random); "
        "IQM over seeds [95% stratified-bootstrap CI] (rliable); win / loss: the CI above / below 1.",
        "",
        "| algo | env | random | SB3 AUC (raw mean) | default AUC, normalized | AUC | default final, normalized | final | AUC target (IQM >= 0.95, CI reaches 1) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    cell = {(t["metric"], t["algo"], t["env"], t["arm"]): t for t in table}
    for algo, env in dict.fromkeys((r["algo"], r["env"]) for r in rows):
        auc, final = cell.get(("auc", algo, env, "default")), cell.get(("final", algo, env, "default"))
        if auc is None or final is None:
            continue
        mine = [r for r in rows if (r["algo"], r["env"]) == (algo, env)]
        sb3 = np.mean([r["auc"] for r in mine if r["arm"] == "sb3"])
        met = (
            ("met" if auc["iqm"] >= 0.95 and auc["high"] >= 1.0 else "**not met**")
            if auc["n"] >= MIN_SEEDS_VERDICT
            else not_enough(auc["n"])
        )
        lines.append(f"| {algo} | {env} | {mine[0]['random']:.1f} | {sb3:.1f} | {auc['iqm']:.2f} [{auc['low']:.2f}, {auc['high']:.2f}] (n={auc['n']}) | "
                     f"{verdict(auc['low'], auc['high'], auc['n'])} | {final['iqm']:.2f} [{final['low']:.2f}, {final['high']:.2f}] (n={final['n']}) | "
                     f"{verdict(final['low'], final['high'], final['n'])} | {met} |")  # fmt: skip
    extra = [a for a in table if a["arm"] not in ARMS and a["algo"] != "panel"]
    if extra:
        lines += ["", "Ablations (`--extra` rows) and earlier default presets, normalized by the same SB3 mean and random policy:", ""]
        for a in extra:
            preset = next(r["preset"] for r in rows if (r["algo"], r["env"], r["arm"]) == (a["algo"], a["env"], a["arm"]))
            lines.append(
                f"- {a['algo']} {a['env']} `{preset}`, {a['metric']}: {a['iqm']:.2f} [{a['low']:.2f}, {a['high']:.2f}] (n={a['n']})"
            )
    for metric in ("auc", "final"):
        t = next((t for t in table if (t["metric"], t["algo"], t["arm"]) == (metric, "panel", "default")), None)
        if t is not None:
            target = " (target >= 1.0: " + ("met" if t["iqm"] >= 1.0 else "**not met**") + ")" if metric == "auc" else ""
            rows_in = f"{t['env']} of {len(ROWS)}"  # the rows with runs of both arms
            lines.append(f"\nPanel, {metric}: IQM {t['iqm']:.2f} [{t['low']:.2f}, {t['high']:.2f}] over {t['n']} runs, {rows_in}{target}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m plastic_rl.tools.bench_agents panel", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), help="panel rows (default: all six)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--episodes", type=int, default=10, help="deterministic episodes per evaluation")
    parser.add_argument("--csv", default="docs/data/panel.csv", help="per-run rows: appended, and runs already there are skipped")
    parser.add_argument("--report-only", action="store_true", help="run nothing: rewrite the tables from the CSV")
    parser.add_argument("--md", default=None, help="also write the markdown table to this file")
    parser.add_argument("--extra", nargs="*", default=[], help="CSVs of ablation runs (same columns, arm 'ablation') reported beside")
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap replications")
    parser.add_argument("--timesteps", type=int, default=None, help="replace every row's budget (smoke tests; not with the default --csv)")
    args = parser.parse_args(argv)
    if args.timesteps is not None:
        if args.timesteps < 1:
            parser.error(f"--timesteps={args.timesteps} must be >= 1")
        if Path(args.csv) == Path(parser.get_default("csv")):
            parser.error(f"--timesteps cuts the budget: give a --csv other than {parser.get_default('csv')}, which holds full-budget runs")
    import torch

    from plastic_rl.tools.bench_rows import append_row, claim

    torch.set_num_threads(1)
    path = Path(args.csv)
    if not args.report_only:
        print(f"# torch {torch.__version__}, 1 thread, {platform.machine()}, panel, {datetime.date.today().isoformat()}", flush=True)
        floors: dict[str, float] = {}
        for name in args.rows:
            row = ROWS[name] if args.timesteps is None else dataclasses.replace(ROWS[name], timesteps=args.timesteps)
            for seed in args.seeds:
                for arm in args.arms:
                    k = (row.algo, row.env, arm, str(seed))
                    if k in {tuple(map(str, key(r))) for r in read(path)}:
                        continue
                    with claim(path, k) as mine:
                        if not mine or k in {tuple(map(str, key(r))) for r in read(path)}:
                            continue
                        if name not in floors:
                            floors[name] = random_return(row)
                        start = datetime.datetime.now()
                        result = {**run(row, arm, seed, args.episodes), "random": round(floors[name], 4)}
                        append_row(path, result, FIELDS)
                        took = (datetime.datetime.now() - start).total_seconds()
                        print(f"{name} {arm} ({result['preset']}) seed {seed}: auc {result['auc']:.1f} final {result['final']:.1f} "
                              f"random {result['random']:.1f}, {took:.0f} s", flush=True)  # fmt: skip
    rows = read(path) + [r for extra in args.extra for r in read(Path(extra))]
    table = summary(rows, args.reps)
    text = markdown(rows, table)
    print(text)
    if args.md:
        Path(args.md).write_text(text)
    return table


if __name__ == "__main__":
    main()
