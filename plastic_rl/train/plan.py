"""Accepting or refusing a training run before anything is written: the run folder, its checkpoints, resuming.

``plan`` returns a ``Plan`` (what the run does) or exits with one line (code 2); it writes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, ListConfig, OmegaConf

from plastic_rl.checkpoints import TEMPORARY_PREFIX
from plastic_rl.tools.config import fail

CHECKPOINT = re.compile(r"step_(\d+)\.zip$")
FINAL = "final_model.zip"
EVALUATIONS = "evaluations.csv"
RUNTIME_KEYS = ("progress_bar", "verbose", "device", "torch_threads")  # how a run runs: free to change on resume


def plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def same_setting(new: Any, old: Any) -> bool:
    """Whether a config value (plain containers) is the one a run was started with. Only the keys both
    have are compared: a key the package's configs gained (or lost) since the run started, e.g. a new
    switch with its off default, is not a change the user asked for, and the run keeps its saved config."""
    if isinstance(new, dict) and isinstance(old, dict):
        return all(same_setting(new[k], old[k]) for k in new.keys() & old.keys())
    return bool(new == old)


def integer(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


POSITIVE, OFF = "must be a positive integer", "must be an integer >= 0 (0 turns it off)"
# The top-level keys, in the config's order: (key, accepted, what the message says of a bad value).
TOP_LEVEL: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("seed", lambda v: integer(v, 0), "must be an integer >= 0"),
    ("total_timesteps", lambda v: integer(v, 1), POSITIVE),
    ("n_envs", lambda v: integer(v, 1), POSITIVE),
    ("device", lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v) is not None,
     "is not accepted; accepted: auto, cpu, cuda, cuda:N, mps"),
    ("torch_threads", lambda v: integer(v, 0), OFF),
    ("checkpoint_freq", lambda v: integer(v, 0), OFF),
    ("eval_freq", lambda v: integer(v, 0), OFF),
    ("eval_episodes", lambda v: integer(v, 1), POSITIVE),
    ("diagnostics_freq", lambda v: integer(v, 0), OFF),
    ("progress_bar", lambda v: isinstance(v, bool), "must be true or false"),
    ("verbose", lambda v: integer(v, 0) and v <= 2, "is not accepted; accepted: 0, 1, 2 (SB3's verbosity)"),
)  # fmt: skip


def check(cfg: DictConfig) -> None:
    """Reject bad values with one line each, before anything is built: the top-level keys first (nothing
    to import: a bad one is named at once), then the agent's algorithm and ``eval_tasks``."""
    for key, accepted, problem in TOP_LEVEL:
        if not accepted(cfg[key]):
            fail(f"{key}={cfg[key]!r} {problem}")
    from plastic_rl.agents import registry
    from plastic_rl.agents.callbacks import EVAL_TASKS

    if cfg.agent.algorithm not in registry.PLASTIC:
        fail(f"agent.algorithm={cfg.agent.algorithm!r} is not accepted; accepted: {', '.join(registry.PLASTIC)}")
    if cfg.eval_tasks not in EVAL_TASKS:
        fail(f"eval_tasks={cfg.eval_tasks!r} is not accepted; accepted: {', '.join(EVAL_TASKS)}")
    if cfg.env.get("rewarm_on_switch") not in (None, True, False, "auto"):
        fail(f"env.rewarm_on_switch={cfg.env.rewarm_on_switch!r} is not accepted; accepted: true, false, auto")
    if cfg.env.get("fresh_buffer_on_switch") not in (None, True, False):
        fail(f"env.fresh_buffer_on_switch={cfg.env.fresh_buffer_on_switch!r} is not accepted; accepted: true, false")
    if cfg.env.get("fresh_buffer_on_switch") and registry.ALGOS[cfg.agent.algorithm].on_policy:
        fail(
            f"env.fresh_buffer_on_switch=true needs an off-policy agent (a replay buffer); agent.algorithm={cfg.agent.algorithm!r} has none"
        )


def checkpoints(folder: Path) -> list[Path]:
    """The run's checkpoints, oldest first (by the step in their name); temporary files are never one."""
    found = [(int(m.group(1)), p) for p in (folder / "checkpoints").glob("step_*.zip")
             if not p.name.startswith(TEMPORARY_PREFIX) and (m := CHECKPOINT.search(p.name))]  # fmt: skip
    return [p for _, p in sorted(found)]


def read_checkpoint(path: Path, cfg: DictConfig):
    """The checkpoint's data (step, algorithm), checked without loading it; a bad file is one line."""
    from plastic_rl.checkpoints import read_checkpoint as read

    try:
        ckpt = read(path)
    except (OSError, ValueError) as exc:
        fail(f"resume: cannot load {exc}")
    if ckpt.algo.name != cfg.agent.algorithm:
        fail(f"resume: {path} is a {ckpt.algo.name} checkpoint, agent={cfg.agent.name} trains {cfg.agent.algorithm}")
    return ckpt


def newest_complete(found: list[Path], cfg: DictConfig) -> tuple[Path | None, int, tuple[str, ...]]:
    """(the newest of ``found`` that reads whole, its step, the newer ones that do not: "<file>: <problem>").

    A checkpoint cut short or corrupted after its write (a full disk, a copy that failed) is passed over, as a
    temporary file is, so that a resume continues from the newest complete one; it is rewritten when the run
    gets there again. (None, 0, all of them) when none reads."""
    from plastic_rl.checkpoints import check_members
    from plastic_rl.checkpoints import read_checkpoint as read

    skipped: list[str] = []
    for path in reversed(found):
        try:
            read(path)
            check_members(path)
        except (OSError, ValueError) as exc:
            skipped.append(" ".join(str(exc).split()))
            continue
        return path, read_checkpoint(path, cfg).step, tuple(skipped)
    return None, 0, tuple(skipped)


@dataclass
class Plan:
    """What an accepted run does, decided before anything is written."""

    cfg: DictConfig  # the config it trains with (a resumed run's own saved config)
    run_dir: Path
    start_from: Path | None = None  # the checkpoint it continues from
    step: int = 0  # the step it starts at
    own_run: bool = False  # continues run_dir's own run: keeps its config, restores its resume state
    complete: int | None = None  # the run already finished at this step: nothing to do
    skipped: tuple[str, ...] = ()  # later checkpoints that cannot be read ("<file>: <problem>"), newest first


def has_results(run_dir: Path) -> bool:
    return bool(checkpoints(run_dir)) or (run_dir / FINAL).exists()


def refuse_results(run_dir: Path) -> None:
    if has_results(run_dir):
        fail(f"{run_dir} already has checkpoints or a final model: pass resume=true to continue it, or another run_name=")


def saved_config(run_dir: Path) -> DictConfig | None:
    """The config the run in ``run_dir`` was started with, or None if it has none."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    try:
        saved = OmegaConf.load(path)
    except Exception as exc:  # a YAML error: name the file, keep the line
        fail(f"{path}: cannot read the run's config ({type(exc).__name__}: {exc})")
    return cast(DictConfig, saved)  # Hydra writes the job's config: a mapping


def keep_config(cfg: DictConfig, saved: DictConfig, overrides: list[str], run_dir: Path) -> DictConfig:
    """A resumed run keeps the config it started with: an override that would change it is refused
    (only ``RUNTIME_KEYS`` may change). Returns the saved config with this invocation's runtime keys."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key in ("resume", "run_name", *RUNTIME_KEYS) or key.startswith("hydra"):
            continue
        if not same_setting(plain(OmegaConf.select(cfg, key)), plain(OmegaConf.select(saved, key))):
            fail(f"resume: {override.input_line} differs from the config {run_dir} was started with ({run_dir}/.hydra/"
                 "config.yaml): a resumed run keeps its config; to change it, start another run_name= from one of its "
                 f"checkpoints (resume={run_dir}/checkpoints/step_N.zip)")  # fmt: skip
    return cast(DictConfig, OmegaConf.merge(saved, {key: cfg[key] for key in RUNTIME_KEYS}, {"resume": cfg.resume}))


def plan(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> Plan:
    """Accept the run (a Plan) or refuse it (one line, exit 2); writes nothing."""
    check(cfg)
    if cfg.resume == "auto":  # a sweep that may have been interrupted: continue what exists, start the rest
        if not (has_results(run_dir) or saved_config(run_dir) is not None):
            return Plan(cfg, run_dir)
        return continue_run(cfg, run_dir, overrides)
    if cfg.resume is False or cfg.resume is None:
        refuse_results(run_dir)
        return Plan(cfg, run_dir)
    source = run_dir if cfg.resume is True else Path(str(cfg.resume)).expanduser()
    if source.is_file():
        if source.resolve().parent == (run_dir / "checkpoints").resolve():
            return continue_run(cfg, run_dir, overrides, source)
        return continue_elsewhere(cfg, run_dir, source)
    if not source.is_dir():
        fail(f"resume={source}: no such run folder or checkpoint")
    if source.resolve() == run_dir.resolve():
        return continue_run(cfg, run_dir, overrides)
    found = checkpoints(source)
    if not found:
        fail(f"resume={source}: no checkpoints/step_*.zip in it")
    newest, _, skipped = newest_complete(found, cfg)
    if newest is None:
        fail(f"resume={source}: none of its checkpoints can be read ({skipped[0]})")
    return continue_elsewhere(cfg, run_dir, newest, skipped)


def continue_run(cfg: DictConfig, run_dir: Path, overrides: list[str], checkpoint: Path | None = None) -> Plan:
    """Continue ``run_dir``'s own run from its last checkpoint (or from step 0 if it was killed before one)."""
    saved = saved_config(run_dir)
    if saved is not None:
        cfg = keep_config(cfg, saved, overrides, run_dir)
    if (run_dir / FINAL).exists():
        return Plan(cfg, run_dir, own_run=True, complete=read_checkpoint(run_dir / FINAL, cfg).step)
    found = checkpoints(run_dir)
    if checkpoint is not None and found and found[-1].name != checkpoint.name:
        fail(f"resume={checkpoint}: {run_dir} has later checkpoints (up to {found[-1].name}) that continuing from it "
             "would overwrite; continue from the last one (resume=true) or start another run_name=")  # fmt: skip
    if checkpoint is not None and found:  # named: the last one
        return Plan(cfg, run_dir, found[-1], read_checkpoint(found[-1], cfg).step, own_run=True)
    newest, step, skipped = newest_complete(found, cfg)
    if newest is not None:
        return Plan(cfg, run_dir, newest, step, own_run=True, skipped=skipped)
    if saved is None:
        fail(f"resume={run_dir}: no readable checkpoints/step_*.zip in it" + (f" ({skipped[0]})" if skipped else ""))
    return Plan(cfg, run_dir, own_run=True, skipped=skipped)


def continue_elsewhere(cfg: DictConfig, run_dir: Path, checkpoint: Path, skipped: tuple[str, ...] = ()) -> Plan:
    """A new run in ``run_dir`` that starts from another run's checkpoint, with this invocation's config."""
    step = read_checkpoint(checkpoint, cfg).step
    refuse_results(run_dir)
    return Plan(cfg, run_dir, checkpoint, step, skipped=skipped)
