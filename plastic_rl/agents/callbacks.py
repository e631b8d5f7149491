"""SB3 callbacks for long runs: checkpoints and evaluations on a global step schedule, atomic writes.

SB3's ``CheckpointCallback`` and ``EvalCallback`` count their own calls, which restart at 0 with every
``learn()``: after a resume their schedule is shifted by wherever the run stopped. These fire when
``num_timesteps`` reaches the next global multiple of their frequency, so a resumed run checkpoints and
evaluates at the steps an uninterrupted one does. With ``n_envs`` envs the counter moves ``n_envs`` at a
time: an event fires at the first step at or after its multiple.

Files are written to a temporary name (``.tmp_<name>``) and renamed, so a kill never leaves a
half-written file under a real name; readers skip the temporary names.

``OnTaskSwitch`` (and its re-warm-only form ``RewarmOnSwitch``) re-warms and/or runs the agent's
intervention when a ``TaskSequence`` switches task. It lives here, not in ``plastic_rl.envs``, because
it acts on the agent (``model.plasticity``); the env only announces the switch (``infos["task_switch"]``).
``plastic_rl.envs`` still re-exports both names.
"""

from __future__ import annotations

import csv
import os
import signal
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import sync_envs_normalization

from plastic_rl.agents import state as training_state
from plastic_rl.checkpoints import TEMPORARY_PREFIX

# Testing hook, read only in ``atomic_write``: with this set to a file name (``step_0000000512.zip``,
# ``final_model.zip``), the process SIGKILLs itself halfway through writing that file, leaving a torn
# temporary file, as a kill or power cut at that moment would.
KILL_DURING_SAVE = "PLASTIC_RL_TEST_KILL_DURING_SAVE"
EVAL_COLUMNS = ("step", "task", "trained_on", "mean_return", "std_return", "episodes")
EVAL_TASKS = ("current", "seen")


def next_multiple(step: int, freq: int) -> int:
    """The first multiple of ``freq`` after ``step``."""
    return (step // freq + 1) * freq


def temporary(path: Path) -> Path:
    """The temporary name ``path`` is written under (same folder and suffix: SB3 keeps a ``.zip`` name as is)."""
    return path.with_name(TEMPORARY_PREFIX + path.name)


def atomic_write(*files: tuple[Path, Callable[[Path], Any]]) -> None:
    """``write(tmp)`` for every (path, write), then rename each ``tmp`` to its path, the last one last: a
    kill while writing leaves only temporary files, and the last file marks the set complete."""
    for path, write in files:
        tmp = temporary(path)
        write(tmp)
        if os.environ.get(KILL_DURING_SAVE) == path.name:
            with open(tmp, "r+b") as f:
                f.truncate(tmp.stat().st_size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
    for path, _ in files:
        os.replace(temporary(path), path)


def atomic_save(model: Any, path: Path, replay_buffer: bool = False, state: dict | None = None) -> None:
    """Save ``model`` to ``path`` atomically, with its replay buffer (``<stem>_replay_buffer.pkl``) and
    resume state (``<stem>_state.pkl``, see ``agents.state``) beside it; the zip is renamed last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    files = []
    if replay_buffer and getattr(model, "replay_buffer", None) is not None:
        files.append((path.with_name(path.stem + "_replay_buffer.pkl"), model.save_replay_buffer))
    if state is not None:
        files.append((training_state.state_path(path), lambda tmp: training_state.save(state, tmp)))
    atomic_write(*files, (path, model.save))


def remove_temporary(folder: Path) -> list[Path]:
    """Delete the temporary files a killed write left in ``folder``; returns them."""
    stale = sorted(folder.glob(TEMPORARY_PREFIX + "*")) if folder.is_dir() else []
    for path in stale:
        path.unlink()
    return stale


class CheckpointCallback(BaseCallback):
    """Saves ``<save_path>/<name_prefix>_<step>.zip`` when ``num_timesteps`` reaches the next multiple of
    ``save_freq``: SB3's ``CheckpointCallback`` on a global schedule, written with ``atomic_save``.

    It saves only between a ``train()`` and the next rollout (at rollout start), where the agent's state is
    consistent, so PPO checkpoints at the first rollout boundary at or after each multiple.
    ``save_state``: a callable returning the resume state to store beside each zip (``agents.state.capture``).
    """

    def __init__(self, save_freq: int, save_path: str | Path, name_prefix: str = "step", save_replay_buffer: bool = False,
                 save_state: Callable[[], dict] | None = None, verbose: int = 0):  # fmt: skip
        super().__init__(verbose)
        if not (isinstance(save_freq, int) and save_freq >= 0):
            raise ValueError(f"save_freq={save_freq!r} must be an int >= 0 (0: never)")
        self.save_freq = save_freq
        self.save_path = Path(save_path)
        self.name_prefix = name_prefix
        self.save_replay_buffer = save_replay_buffer
        self.save_state = save_state
        self._next: int | None = None

    def _on_training_start(self) -> None:
        self._next = next_multiple(self.model.num_timesteps, self.save_freq) if self.save_freq else None

    def _on_rollout_start(self) -> None:
        step = self.model.num_timesteps
        if self._next is None or step < self._next:
            return
        self._next = next_multiple(step, self.save_freq)
        path = self.save_path / f"{self.name_prefix}_{step:010d}.zip"
        atomic_save(self.model, path, self.save_replay_buffer, self.save_state() if self.save_state else None)
        if self.verbose >= 1:
            print(f"Saving model checkpoint to {path}")

    def _on_step(self) -> bool:
        return True


def task_sequence(env: Any) -> Any:
    """The ``TaskSequence`` under ``env``'s wrappers, or None (anything with ``task_index`` and ``set_task``)."""
    inner = getattr(env, "unwrapped", env)
    return inner if hasattr(inner, "task_index") and hasattr(inner, "set_task") else None


class EvalCallback(BaseCallback):
    """Evaluates the agent when ``num_timesteps`` reaches the next multiple of ``eval_freq``.

    SB3's evaluation on a global schedule: ``evaluate_policy`` on ``eval_env``, ``eval/mean_reward`` and
    ``eval/mean_ep_length`` in the logger, dumped at the evaluation's step. ``csv_path`` gets a row per
    evaluation: step, task, trained_on, mean_return, std_return (``np.std`` of the episode returns),
    episodes.

    On a ``TaskSequence`` (training and evaluation envs both), the evaluation env is put on the task the
    agent is training on before every evaluation (``set_task``), so ``eval/mean_reward`` is always the
    current task's; ``eval_tasks="seen"`` also evaluates every task trained on before (forgetting), one
    row each, logged as ``eval/task_<k>/mean_reward``. ``task`` is the evaluated task, ``trained_on`` the
    training env's task at that step; both are empty for other envs. Give the evaluation env
    ``switch_every=0`` so that it never switches by itself during an evaluation.
    """

    def __init__(self, eval_env: Any, eval_freq: int, n_eval_episodes: int = 10, csv_path: str | Path | None = None,
                 deterministic: bool = True, warn: bool = True, eval_tasks: str = "current", verbose: int = 0):  # fmt: skip
        super().__init__(verbose)
        if not (isinstance(eval_freq, int) and eval_freq >= 0):
            raise ValueError(f"eval_freq={eval_freq!r} must be an int >= 0 (0: never)")
        if eval_tasks not in EVAL_TASKS:
            raise ValueError(f"eval_tasks={eval_tasks!r} is not accepted; accepted: {', '.join(EVAL_TASKS)}")
        self.eval_env = eval_env
        self.eval_freq = eval_freq
        self.n_eval_episodes = n_eval_episodes
        self.csv_path = None if csv_path is None else Path(csv_path)
        self.deterministic = deterministic
        self.warn = warn
        self.eval_tasks = eval_tasks
        self.last_mean_reward = self.last_std_reward = -np.inf
        self.best_mean_reward = -np.inf
        self._next: int | None = None
        self._trained_task: int | None = None

    def _on_training_start(self) -> None:
        self._next = next_multiple(self.model.num_timesteps, self.eval_freq) if self.eval_freq else None
        train = task_sequence(self.training_env)
        self._trained_task = None if train is None else train.task_index

    def _on_step(self) -> bool:
        if self._next is not None and self.num_timesteps >= self._next:
            self._next = next_multiple(self.num_timesteps, self.eval_freq)
            self.evaluate()
        train = task_sequence(self.training_env)
        self._trained_task = None if train is None else train.task_index
        return True

    def _tasks(self) -> tuple[Any, list[int | None], int | None]:
        """(the evaluation TaskSequence or None, the tasks to evaluate, the training task).

        The training task is the one the agent's data came from: on the very step a switch happens,
        the agent has not seen the new task yet, so that evaluation is the old task's last.
        """
        train, evaluation = task_sequence(self.training_env), task_sequence(self.eval_env)
        if train is None or evaluation is None:
            return None, [None], None
        switched = any("task_switch" in info for info in (self.locals.get("infos") or ()))
        current = self._trained_task if switched and self._trained_task is not None else train.task_index
        if self.eval_tasks == "current":
            return evaluation, [current], current
        first = getattr(train, "first_task", 0)
        seen = [(first + k) % len(train.tasks) for k in range(len(train.switches) + 1 - switched)]
        return evaluation, [current, *[t for t in dict.fromkeys(seen) if t != current]], current

    def evaluate(self) -> None:
        if self.model.get_vec_normalize_env() is not None:
            sync_envs_normalization(self.training_env, self.eval_env)
        evaluation, tasks, current = self._tasks()
        rows = []
        for task in tasks:
            if task is not None and evaluation.task_index != task:
                evaluation.set_task(task)
            returns, lengths = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.n_eval_episodes,
                                               deterministic=self.deterministic, return_episode_rewards=True, warn=self.warn)  # fmt: skip
            assert isinstance(returns, list) and isinstance(lengths, list)  # return_episode_rewards=True: per episode
            mean, std = float(np.mean(returns)), float(np.std(returns))
            if task == current:
                self.last_mean_reward, self.last_std_reward = mean, std
                self.logger.record("eval/mean_reward", mean)
                self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
            if len(tasks) > 1:
                self.logger.record(f"eval/task_{task}/mean_reward", mean)
            rows.append({"step": self.num_timesteps, "task": "" if task is None else task,
                         "trained_on": "" if current is None else current, "mean_return": mean, "std_return": std,
                         "episodes": len(returns)})  # fmt: skip
        self.best_mean_reward = max(self.best_mean_reward, self.last_mean_reward)
        if self.verbose >= 1:
            print(f"Eval num_timesteps={self.num_timesteps}, episode_reward={self.last_mean_reward:.2f} "
                  f"+/- {self.last_std_reward:.2f}")  # fmt: skip
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(self.num_timesteps)
        if self.csv_path is not None:
            write_evaluations(self.csv_path, [*read_evaluations(self.csv_path), *rows])


def current_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows of an ``evaluations.csv`` on the task being trained (all rows for a stationary env)."""
    return [row for row in rows if row.get("task", "") == row.get("trained_on", "")]


def read_evaluations(path: Path) -> list[dict[str, str]]:
    """The rows of an ``evaluations.csv`` (none if it does not exist)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_evaluations(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write all rows atomically (the file is small; a kill never leaves half a row)."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=EVAL_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write((path, write))


# -- task switches ---------------------------------------------------------------------------------
class OnTaskSwitch(BaseCallback):
    """At every step whose infos carry ``"task_switch"``: ``model.plasticity.rewarm()`` and/or ``.intervene()``.

    :param rewarm: True/False re-warm or not; None (default) follows the training env's
        ``rewarm_on_switch`` attribute (``TaskSequence(..., rewarm_on_switch=...)``; True if absent).
    :param intervene: run the agent's configured intervention (``plasticity={"intervention": "redo",
        "every": 0}``: ReDo, Shrink & Perturb or a reset) at every switch.
    :param fresh_buffer: an off-policy agent empties its replay buffer at every switch and waits
        ``learning_starts`` env steps (random actions, no training) before it trains again, as a new agent
        does at its start: the control that separates what the network lost (its plasticity) from the
        old tasks' data in its buffer. ValueError at the start for an agent without a replay buffer.
    :param verbose: 1 prints a line at every switch (what was done there); 0 prints nothing.

    Either way each switch is logged (``env/task_index``) and noted in ``self.switches``
    (``model.num_timesteps`` at the switch); ``self.rewarms`` and ``self.interventions`` list the ones
    acted on. An agent without ``model.plasticity`` (plain SB3) is refused at the start of training; an
    agent whose plasticity has nothing to re-warm (presets ``none``, ``nap``) or no intervention gets a
    warning and that part is left out, so a sweep over presets runs with the same callback. The
    intervention runs between rollouts, never inside ``train()``.
    """

    def __init__(self, rewarm: bool | None = None, intervene: bool = False, verbose: int = 0, fresh_buffer: bool = False):
        super().__init__(verbose)
        self.rewarm = rewarm
        self.intervene = intervene
        self.fresh_buffer = fresh_buffer
        self.switches: list[int] = []
        self.rewarms: list[int] = []
        self.interventions: list[int] = []
        self._rewarming = self._intervening = False

    def _init_callback(self) -> None:
        plasticity = getattr(self.model, "plasticity", None)
        name = type(self).__name__
        if plasticity is None:
            raise TypeError(f"{name} needs a plastic_rl agent (model.plasticity); {type(self.model).__name__} has none")
        rewarm = self.rewarm
        if rewarm is None:
            rewarm = bool(getattr(self.training_env.unwrapped, "rewarm_on_switch", True))
        config = plasticity.config
        if rewarm and not config.can_rewarm:
            warnings.warn(f"{name}: this agent's plasticity has nothing to re-warm; it is not re-warmed at task switches", stacklevel=2)
            rewarm = False
        intervene = self.intervene
        if intervene and config.intervention is None:
            warnings.warn(f"{name}: this agent's plasticity has no intervention; none runs at task switches", stacklevel=2)
            intervene = False
        self._rewarming, self._intervening = rewarm, intervene
        if self.fresh_buffer:
            if getattr(self.model, "replay_buffer", None) is None:
                raise ValueError(
                    f"{name}(fresh_buffer=True) needs an off-policy agent (a replay buffer); {type(self.model).__name__} has none"
                )
            if not hasattr(self.model, "learning_starts_per_task"):  # saved with the model: a resumed run keeps the first value
                self.model.learning_starts_per_task = self.model.learning_starts  # type: ignore[attr-defined]

    def _on_step(self) -> bool:
        infos = self.locals.get("infos") or ()
        switch = next((info["task_switch"] for info in infos if "task_switch" in info), None)
        if switch is None:
            return True
        plasticity: Any = self.model.plasticity  # type: ignore[attr-defined]  # checked in _init_callback
        self.switches.append(self.num_timesteps)
        self.logger.record("env/task_index", switch)
        done = []
        if self._rewarming:
            plasticity.rewarm()
            self.rewarms.append(self.num_timesteps)
            done.append("re-warmed")
        if self._intervening:
            plasticity.intervene()
            self.interventions.append(self.num_timesteps)
            done.append(plasticity.config.intervention)
        if self.fresh_buffer:  # SB3 samples random actions and skips training while num_timesteps < learning_starts
            model: Any = self.model
            model.replay_buffer.reset()
            model.learning_starts = self.num_timesteps + model.learning_starts_per_task
            done.append("replay buffer emptied")
        if self.verbose:
            print(f"task switch -> {switch} at step {self.num_timesteps}" + (f" ({', '.join(done)})" if done else ""))
        return True


class RewarmOnSwitch(OnTaskSwitch):
    """``OnTaskSwitch`` that only re-warms.

    :param enabled: True/False re-warm or not; None (default) follows the training env's
        ``rewarm_on_switch`` attribute (``OnTaskSwitch``'s ``rewarm``).
    :param verbose: 1 prints a line at every switch; 0 prints nothing.
    """

    def __init__(self, enabled: bool | None = None, verbose: int = 0):
        super().__init__(rewarm=enabled, intervene=False, verbose=verbose)
