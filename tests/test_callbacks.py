"""The run callbacks (agents/callbacks.py): evaluations that follow a TaskSequence's task."""

from __future__ import annotations

import pytest

from plastic_rl import PlasticPPO
from plastic_rl.agents import callbacks
from plastic_rl.agents.callbacks import EvalCallback, current_rows, read_evaluations
from plastic_rl.envs import permuted_cartpole

SWITCH = 64  # env steps per task: tiny, so that a short run crosses several switches


def test_the_evaluation_env_is_on_the_training_task_at_every_evaluation(tmp_path, monkeypatch):
    train = permuted_cartpole(n_envs=2, n_tasks=3, switch_every=SWITCH, seed=0)
    evaluation = permuted_cartpole(n_envs=1, n_tasks=3, switch_every=0, seed=1)  # follows, never switches itself
    model = PlasticPPO("MlpPolicy", train, n_steps=16, batch_size=32, n_epochs=1, seed=0)
    seen = []
    original = callbacks.evaluate_policy

    def recording(model_, env, **kwargs):
        seen.append((model_.num_timesteps, train.task_index, evaluation.task_index))
        return original(model_, env, **kwargs)

    monkeypatch.setattr(callbacks, "evaluate_policy", recording)
    csv_path = tmp_path / "evaluations.csv"
    model.learn(5 * SWITCH, callback=EvalCallback(evaluation, 32, n_eval_episodes=1, csv_path=csv_path, eval_tasks="seen"))

    rows = read_evaluations(csv_path)
    steps = sorted({int(r["step"]) for r in rows})
    assert steps == list(range(32, 5 * SWITCH + 1, 32))
    for row in rows:
        step = int(row["step"])
        # the task the agent's data came from: on a switch step (a multiple of SWITCH) still the old one
        assert int(row["trained_on"]) == ((step - 1) // SWITCH) % 3
    current = current_rows(rows)
    assert [int(r["step"]) for r in current] == steps  # one row per evaluation on the task being trained
    # every task trained on so far, once each, the current one first
    for step in steps:
        tasks = [int(r["task"]) for r in rows if int(r["step"]) == step]
        trained = (step - 1) // SWITCH
        assert tasks[0] == trained % 3 and sorted(tasks) == list(range(min(trained, 2) + 1))
    # the first evaluation of each step ran on the task trained on, never on another
    firsts = {}
    for step, trained, evaluated in seen:
        firsts.setdefault(step, (trained, evaluated))
    assert all(evaluated == ((step - 1) // SWITCH) % 3 for step, (_, evaluated) in firsts.items())
    assert any(trained != evaluated for trained, evaluated in firsts.values())  # switch steps: the old task, on purpose


def test_eval_tasks_is_checked():
    with pytest.raises(ValueError, match="eval_tasks='all' is not accepted; accepted: current, seen"):
        EvalCallback(None, 10, eval_tasks="all")


def test_task_switch_callbacks_live_with_the_agents_and_keep_their_envs_import():
    import subprocess
    import sys

    from plastic_rl import envs
    from plastic_rl.agents.callbacks import OnTaskSwitch, RewarmOnSwitch

    assert envs.OnTaskSwitch is OnTaskSwitch and envs.RewarmOnSwitch is RewarmOnSwitch
    assert {"OnTaskSwitch", "RewarmOnSwitch"} <= set(envs.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        envs.Nope  # noqa: B018
    # the re-export is lazy: the envs alone do not import the agents (only the registry, which
    # `import plastic_rl` reads and which imports neither SB3 nor torch)
    code = (
        "import sys, plastic_rl.envs; "
        "print(sorted(m for m in sys.modules if m.startswith('plastic_rl.agents.') and m != 'plastic_rl.agents.forwards'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "['plastic_rl.agents.registry']", out.stderr
