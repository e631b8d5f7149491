"""``python -m plastic_rl.train``: runs, outputs, resume after a SIGKILL, sweeps, and bad input."""

import csv
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from plastic_rl.agents import PRESETS, PlasticPPO
from plastic_rl.tools.config import load_config

QUICK = ["progress_bar=false", "eval_episodes=2", "diagnostics_freq=20"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def train(cwd: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "plastic_rl.train", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout
    )


def scalar_tags(tb_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = [p for p in tb_dir.iterdir() if p.is_dir()]
    events = EventAccumulator(str(run))
    events.Reload()
    return set(events.Tags()["scalars"])


def test_configs_compose_and_presets_match_the_agents():
    for env in ("CartPole", "Atari", "MuJoCo", "NonStationary"):
        for agent in ("ppo", "dqn", "sac"):
            cfg = load_config("config", [f"env={env}", f"agent={agent}"])
            assert cfg.env.name == env and cfg.agent.name == agent
    assert load_config("config", ["env=Atari"]).agent.kwargs.n_steps == 128  # rl-zoo3's Atari PPO
    assert load_config("config", []).agent.kwargs.learning_rate == "lin_0.001"  # rl-zoo3's CartPole PPO
    for name, preset in PRESETS.items():
        values = dict(load_config("config", [f"plasticity={name}"]).plasticity)
        assert values.pop("preset") == name
        assert values == {k: getattr(preset, k) for k in values} and len(values) == len(preset.__dataclass_fields__)


def test_cartpole_run_writes_everything(tmp_path):
    out = train(tmp_path, "total_timesteps=2048", "checkpoint_freq=1024", "eval_freq=1024", *QUICK)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "runs" / "ppo_CartPole_elr_seed0"
    assert f"outputs in {run}" in out.stdout
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    assert config["total_timesteps"] == 2048 and config["plasticity"]["preset"] == "elr"
    tags = scalar_tags(run / "tb")
    assert {"plasticity/lr_factor", "plasticity/elr/mlp_extractor.policy_net.0", "eval/mean_reward"} <= tags
    ckpts = sorted((run / "checkpoints").glob("step_*.zip"))
    assert [p.name for p in ckpts] == ["step_0000001024.zip"]
    model = PlasticPPO.load(ckpts[0])
    assert model.num_timesteps == 1024 and model.env_id == "CartPole-v1"
    assert PlasticPPO.load(run / "final_model.zip").num_timesteps == 2048
    rows = list(csv.DictReader((run / "evaluations.csv").open()))
    assert [int(r["step"]) for r in rows] == [1024, 2048] and all(float(r["mean_return"]) > 0 for r in rows)
    assert not list(run.rglob(".tmp_*"))  # no temporary files left behind


def test_atari_run_writes_events_and_a_loadable_checkpoint(tmp_path):
    out = train(tmp_path, "env=Atari", "total_timesteps=2048", "checkpoint_freq=1024", "eval_freq=0", *QUICK, timeout=600)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "runs" / "ppo_Atari_elr_seed0"
    assert "plasticity/elr/features_extractor.cnn.0" in scalar_tags(run / "tb")
    model = PlasticPPO.load(sorted((run / "checkpoints").glob("step_*.zip"))[0])
    assert model.observation_space.shape == (4, 84, 84) and model.env_id == "Pong-v5"


def test_sigkill_then_resume_finishes_exactly(tmp_path):
    args = ["total_timesteps=6144", "checkpoint_freq=512", "eval_freq=0", *QUICK]
    proc = subprocess.Popen([sys.executable, "-m", "plastic_rl.train", *args], cwd=tmp_path, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    run = tmp_path / "runs" / "ppo_CartPole_elr_seed0"
    deadline = time.time() + 240
    while not list((run / "checkpoints").glob("step_*.zip")) and time.time() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = sorted((run / "checkpoints").glob("step_*.zip"))
    assert first and not (run / "final_model.zip").exists(), "the run was not killed mid-way"
    out = train(tmp_path, *args, "resume=true")
    assert out.returncode == 0, out.stderr
    assert "resuming" in out.stdout
    final = PlasticPPO.load(run / "final_model.zip")
    assert final.num_timesteps == 6144
    assert final._n_updates == 6144 // 256 * 20  # 256 steps per rollout, 20 epochs: no update done twice
    for ckpt in sorted((run / "checkpoints").glob("step_*.zip")):
        assert zipfile.ZipFile(ckpt).testzip() is None  # none corrupt
        PlasticPPO.load(ckpt)
    # a fresh run into that folder would overwrite it: refused
    again = train(tmp_path, *args)
    assert again.returncode == 2 and "already has checkpoints" in again.stderr


def test_multirun_with_the_joblib_launcher(tmp_path):
    out = train(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", "plasticity=none,elr",
                "total_timesteps=256", "checkpoint_freq=0", "eval_freq=0", *QUICK)  # fmt: skip
    assert out.returncode == 0, out.stderr
    finals = sorted(p.parent.name for p in (tmp_path / "runs" / "multirun").rglob("final_model.zip"))
    assert finals == ["ppo_CartPole_elr_seed0", "ppo_CartPole_elr_seed1", "ppo_CartPole_none_seed0", "ppo_CartPole_none_seed1"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["env=Nope"], "Could not find 'env/Nope' Available options in 'env': Atari CartPole MuJoCo NonStationary"),
        (["env=Atari", "env.id=NoSuchGame-v5"], "env.id='NoSuchGame-v5'"),
        (["total_timesteps=0"], "total_timesteps=0 must be a positive integer"),
        (["total_timesteps=-3"], "total_timesteps=-3 must be a positive integer"),
        (["no_such_key=1"], "Could not override 'no_such_key'"),
        (["resume=/no/such/run"], "resume=/no/such/run: no such run folder or checkpoint"),
        (["agent=sac"], "agent=sac on env=CartPole (CartPole-v1)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    out = train(tmp_path, *args, *QUICK)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_unreadable_resume_checkpoint(tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"not a zip")
    out = train(tmp_path, f"resume={bad}", *QUICK)
    assert out.returncode == 2 and out.stderr.strip().startswith(f"error: resume: cannot load {bad}")
    assert len(out.stderr.strip().splitlines()) == 1
