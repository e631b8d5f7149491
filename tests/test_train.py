"""``python -m plastic_rl.train``: runs, outputs, kills and resumes, refusals, sweeps, and bad input.

Issue 10's symptoms (points 6-15) are tests here, each named after what went wrong.
"""

import csv
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from plastic_rl.agents import PRESETS, PlasticPPO, registry
from plastic_rl.agents.callbacks import KILL_DURING_SAVE
from plastic_rl.checkpoints import find_checkpoints
from plastic_rl.tools.config import load_config

ROOT = Path(__file__).resolve().parents[1]

QUICK = ["progress_bar=false", "eval_episodes=2", "diagnostics_freq=20"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
RUN = "ppo_CartPole_norm-rewarm_seed0"  # the default preset (agents.config.DEFAULT_PRESET)
GYMNASIUM = ["+env.kwargs.backend=gymnasium", "+env.eval_kwargs.backend=gymnasium"]  # picklable envs: exact resumes


def train(cwd: Path, *args: str, timeout: int = 300, kill_during_save: str | None = None) -> subprocess.CompletedProcess:
    env = {**ENV, KILL_DURING_SAVE: kill_during_save} if kill_during_save else ENV
    return subprocess.run(
        [sys.executable, "-m", "plastic_rl.train", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def train_until(cwd: Path, *args: str, ready, timeout: float = 240) -> str:
    """Start a run, SIGKILL it from outside as soon as ``ready()`` holds; returns its stdout."""
    log = cwd / "killed.out"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "plastic_rl.train", *args], cwd=cwd, env=ENV, stdout=out,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.time() + timeout
        while not ready() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return log.read_text()


def scalars(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar's (step, value) points as TensorBoard shows them (purged events dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = [p for p in tb_dir.iterdir() if p.is_dir()]
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def scalar_tags(tb_dir: Path) -> set[str]:
    return set(scalars(tb_dir))


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: content hash and modification time."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def complete_checkpoints(files: dict, folder: Path) -> dict:
    """The entries of a snapshot of ``checkpoints/`` that belong to a complete checkpoint (its zip exists)."""
    zip_of = lambda name: re.sub(r"_(state|replay_buffer)\.pkl$", ".zip", name)  # noqa: E731
    return {name: v for name, v in files.items() if not name.startswith(".tmp_") and (folder / zip_of(name)).exists()}


def same_parameters(a: Path, b: Path) -> bool:
    pa, pb = (PlasticPPO.load(p).policy.state_dict() for p in (a, b))
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def test_configs_compose_and_presets_match_the_agents():
    agents = sorted(p.stem for p in (ROOT / "plastic_rl" / "configs" / "agent").glob("*.yaml"))
    algorithms = set()
    for env in ("CartPole", "Atari", "MuJoCo", "NonStationary"):
        for agent in agents:
            cfg = load_config("config", [f"env={env}", f"agent={agent}"])
            assert cfg.env.name == env and cfg.agent.name == agent
            algorithms.add(cfg.agent.algorithm)
    assert algorithms == set(registry.PLASTIC)  # one agent config per plastic algorithm of the registry
    td3 = load_config("config", ["env=MuJoCo", "agent=td3"]).agent.kwargs  # rl-zoo3's MuJoCo TD3
    assert (td3.noise_type, td3.noise_std, td3.batch_size) == ("normal", 0.1, 256)
    assert load_config("config", ["agent=a2c"]).agent.kwargs.ent_coef == 0.0  # rl-zoo3's CartPole A2C
    a2c_atari = load_config("config", ["env=Atari", "agent=a2c"])  # rl-zoo3's Atari A2C: 16 envs, RMSprop
    assert (a2c_atari.n_envs, a2c_atari.agent.kwargs.vf_coef) == (16, 0.25)
    assert load_config("config", ["env=Atari", "agent=a2c", "n_envs=4"]).n_envs == 4  # the command line wins
    assert load_config("config", ["env=Atari", "agent=ppo"]).n_envs == 8
    assert load_config("config", ["env=Atari"]).agent.kwargs.n_steps == 128  # rl-zoo3's Atari PPO
    assert load_config("config", []).agent.kwargs.learning_rate == "lin_0.001"  # rl-zoo3's CartPole PPO
    for name, preset in PRESETS.items():
        values = dict(load_config("config", [f"plasticity={name}"]).plasticity)
        assert values.pop("preset") == name
        assert values == {k: getattr(preset, k) for k in values} and len(values) == len(preset.__dataclass_fields__)


def test_cartpole_run_writes_everything(tmp_path):
    out = train(tmp_path, "total_timesteps=2048", "checkpoint_freq=1024", "eval_freq=1024", *QUICK)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "runs" / RUN
    assert f"outputs in {run}" in out.stdout
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    assert config["total_timesteps"] == 2048 and config["plasticity"]["preset"] == "norm-rewarm"
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
    assert (run / "checkpoints" / "step_0000001024_state.pkl").is_file()  # what an exact resume needs


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A short run evaluated twice on 3 episodes -> (stdout, evaluations.csv rows)."""
    cwd = tmp_path_factory.mktemp("evaluated")
    out = train(cwd, "total_timesteps=512", "checkpoint_freq=0", "eval_freq=256", "eval_episodes=3", "progress_bar=false")
    assert out.returncode == 0, out.stderr
    return out.stdout, list(csv.DictReader((cwd / "runs" / RUN / "evaluations.csv").open()))


def test_evaluations_csv_has_a_std_return(evaluated):  # issue 10.15: the std_return column was always empty
    _, rows = evaluated
    assert [r["step"] for r in rows] == ["256", "512"] and all(r["episodes"] == "3" for r in rows)
    assert all(float(r["std_return"]) >= 0 for r in rows)  # np.std of the 3 episode returns, not ""


def test_the_run_ends_by_saying_how_the_agent_did(evaluated):  # issue 10.13: it said only where the outputs are
    stdout, rows = evaluated
    last = rows[-1]
    line = (f"final evaluation: {float(last['mean_return']):.1f} +- {float(last['std_return']):.1f} at step 512 "
            "(3 episodes); wall time ")  # fmt: skip
    assert re.search(re.escape(line) + r"\d+ s\n", stdout), stdout


def outputs_line(stdout: str) -> str:
    (line,) = [line for line in stdout.splitlines() if line.startswith("outputs in ")]
    return line


def test_the_closing_message_names_only_what_was_written(evaluated, tmp_path):  # issue 22.11
    out = train(tmp_path, "total_timesteps=512", *QUICK)  # both frequencies (10,000) are above the budget
    assert out.returncode == 0, out.stderr
    run, line = tmp_path / "runs" / RUN, outputs_line(out.stdout)
    assert not (run / "evaluations.csv").exists() and not list(run.glob("checkpoints/step_*.zip"))
    assert "checkpoints/" not in line and "evaluations.csv" not in line, line
    assert line.endswith(": config .hydra/config.yaml, TensorBoard tb/, final model final_model.zip (step 512)"), line
    line = outputs_line(evaluated[0])  # eval_freq=256, checkpoint_freq=0: evaluations, no checkpoints
    assert "evaluations evaluations.csv" in line and "checkpoints/" not in line, line


def test_verbose_1_prints_sb3s_table_with_the_plasticity_summary(tmp_path):  # issue 10.1: it exited 1
    out = train(tmp_path, "verbose=1", "total_timesteps=1024", "checkpoint_freq=0", "eval_freq=0", *QUICK)
    assert out.returncode == 0, out.stderr
    assert "| plasticity/" in out.stdout and "|    lr_factor" in out.stdout and "param_norm" not in out.stdout
    assert "plasticity/param_norm/mlp_extractor.policy_net.0" in scalar_tags(tmp_path / "runs" / RUN / "tb")


def test_intervention_presets_train_from_the_cli(tmp_path):
    out = train(tmp_path, "plasticity=redo", "plasticity.every=20", "plasticity.redo_tau=0.5", "total_timesteps=2048",
                "checkpoint_freq=0", "eval_freq=0", *QUICK)  # fmt: skip
    assert out.returncode == 0, out.stderr
    run = tmp_path / "runs" / "ppo_CartPole_redo_seed0"
    tags = scalars(run / "tb")
    assert {"plasticity/redo/units_reset", "plasticity/redo/count"} <= set(tags)
    model = PlasticPPO.load(run / "final_model.zip")
    assert model.plasticity_config.intervention == "redo" and model.plasticity_config.every == 20
    # rl-zoo3's CartPole PPO: 8 rollouts of 256 steps, 20 optimizer steps each: one intervention per train()
    assert model.plasticity.interventions == model.plasticity.elrs["policy"].steps // 20 == 8


def test_atari_run_writes_events_and_a_loadable_checkpoint(tmp_path):
    out = train(tmp_path, "env=Atari", "total_timesteps=2048", "checkpoint_freq=1024", "eval_freq=0", *QUICK, timeout=600)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "runs" / "ppo_Atari_norm-rewarm_seed0"
    assert "plasticity/elr/features_extractor.cnn.0" in scalar_tags(run / "tb")
    model = PlasticPPO.load(sorted((run / "checkpoints").glob("step_*.zip"))[0])
    assert model.observation_space.shape == (4, 84, 84) and model.env_id == "Pong-v5"


KILL_ARGS = ["total_timesteps=4000", "checkpoint_freq=768", "eval_freq=1000", *QUICK, *GYMNASIUM]


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """One run killed with SIGKILL at four points, resumed with resume=true after each, and the same run
    uninterrupted. The kills: during the first checkpoint write, from outside at an arbitrary moment, during
    a later checkpoint write, during the final model's write. -> what each stage saw."""
    root = tmp_path_factory.mktemp("killed")
    (root / "reference").mkdir()
    (root / "killed").mkdir()
    cwd, seen = root / "killed", {}
    seen["reference"] = train(root / "reference", *KILL_ARGS)
    run, ckpts = cwd / "runs" / RUN, cwd / "runs" / RUN / "checkpoints"
    seen["first write"] = train(cwd, *KILL_ARGS, kill_during_save="step_0000000768.zip")
    seen["after first write"] = sorted(p.name for p in ckpts.iterdir())
    seen["config"] = snapshot(run / ".hydra")
    seen["anywhere"] = train_until(cwd, *KILL_ARGS, "resume=true", ready=(ckpts / "step_0000001536.zip").exists)
    seen["written"] = complete_checkpoints(snapshot(ckpts), ckpts)
    seen["later write"] = train(cwd, *KILL_ARGS, "resume=true", kill_during_save="step_0000003072.zip")
    seen["after later write"] = sorted(p.name for p in ckpts.iterdir())
    seen["found by diagnose"] = [p.name for p in find_checkpoints(run)]
    seen["final write"] = train(cwd, *KILL_ARGS, "resume=true", kill_during_save="final_model.zip")
    seen["end"] = train(cwd, *KILL_ARGS, "resume=true")
    seen["run"], seen["reference run"] = run, root / "reference" / "runs" / RUN
    return seen


def test_every_kill_resumes_or_restarts_cleanly(killed):
    assert killed["reference"].returncode == 0, killed["reference"].stderr
    for stage in ("first write", "later write", "final write"):
        assert killed[stage].returncode == -signal.SIGKILL, (stage, killed[stage].stderr)
    assert "starting it again from step 0" in killed["anywhere"]  # no checkpoint yet: a restart
    assert "it continues exactly" in killed["later write"].stdout
    assert killed["end"].returncode == 0, killed["end"].stderr
    final = PlasticPPO.load(killed["run"] / "final_model.zip")
    assert final.num_timesteps == 4096 and final._n_updates == 16 * 20  # 16 rollouts of 256, 20 epochs: none twice
    for ckpt in find_checkpoints(killed["run"]):
        assert zipfile.ZipFile(ckpt).testzip() is None
        PlasticPPO.load(ckpt)


def test_nothing_already_written_is_modified_by_a_resume(killed):
    assert snapshot(killed["run"] / ".hydra") == killed["config"]  # a resumed run keeps the config it started with
    now = snapshot(killed["run"] / "checkpoints")
    assert {name: now.get(name) for name in killed["written"]} == killed["written"]


def test_a_kill_during_a_checkpoint_write_leaves_no_temporary_file_to_read(killed):  # issue 10.10
    assert killed["after first write"] == [".tmp_step_0000000768.zip", ".tmp_step_0000000768_state.pkl"]
    assert ".tmp_step_0000003072.zip" in killed["after later write"]
    assert not [name for name in killed["found by diagnose"] if name.startswith(".tmp_")]
    assert not list(killed["run"].rglob(".tmp_*"))  # the next run cleaned them up


def test_resumed_tensorboard_curves_have_one_value_per_step(killed):  # issue 10.8
    curves, reference = scalars(killed["run"] / "tb"), scalars(killed["reference run"] / "tb")
    assert curves.keys() == reference.keys() and "train/loss" in curves
    for tag, points in curves.items():
        steps = [step for step, _ in points]
        assert steps == sorted(set(steps)), (tag, steps)  # unique, increasing
        assert steps == [step for step, _ in reference[tag]], tag
        if tag.startswith(("train/", "eval/", "rollout/")):
            assert points == reference[tag], tag


def test_resumed_evaluations_and_checkpoints_stay_on_schedule(killed):  # issue 10.9
    run = killed["run"]
    rows = list(csv.DictReader((run / "evaluations.csv").open()))
    assert [int(r["step"]) for r in rows] == [1000, 2000, 3000, 4000]
    # PPO checkpoints at the first rollout boundary (256 steps) at or after each multiple of 768
    steps = [768, 1536, 2304, 3072, 3840]
    assert [p.name for p in find_checkpoints(run / "checkpoints")] == [f"step_{s:010d}.zip" for s in steps]


def test_a_resumed_run_ends_as_an_uninterrupted_one(killed):  # issue 10.11
    assert "total_timesteps=4,000 ends at step 4,096" in killed["reference"].stdout  # SB3's whole rollouts, stated
    run, reference = killed["run"], killed["reference run"]
    assert same_parameters(run / "final_model.zip", reference / "final_model.zip")
    assert (run / "evaluations.csv").read_text() == (reference / "evaluations.csv").read_text()


FINISHED_ARGS = ["total_timesteps=512", "checkpoint_freq=256", "eval_freq=0", *QUICK]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run with a checkpoint -> (cwd, snapshot of everything under cwd)."""
    cwd = tmp_path_factory.mktemp("finished")
    assert train(cwd, *FINISHED_ARGS).returncode == 0
    return cwd, snapshot(cwd)


def test_resume_of_a_finished_run_says_it_is_complete_and_changes_nothing(finished):  # issue 10.7
    cwd, before = finished
    out = train(cwd, *FINISHED_ARGS, "resume=true")
    assert out.returncode == 0 and "is complete: final_model.zip at step 512" in out.stdout, out.stderr
    assert snapshot(cwd) == before


def test_a_refused_run_writes_nothing(finished):  # issue 10.6: it overwrote .hydra/config.yaml and friends
    cwd, before = finished
    out = train(cwd, f"run_name={RUN}", "seed=99", "plasticity=none", *QUICK)
    assert out.returncode == 2 and "already has checkpoints" in out.stderr, out.stderr
    assert snapshot(cwd) == before
    assert yaml.safe_load((cwd / "runs" / RUN / ".hydra" / "config.yaml").read_text())["seed"] == 0


def test_an_override_that_would_change_a_resumed_runs_config_is_refused(finished):
    cwd, before = finished
    out = train(cwd, f"run_name={RUN}", "seed=99", "resume=true", *QUICK)
    assert out.returncode == 2 and "resume: seed=99 differs from the config" in out.stderr, out.stderr
    assert snapshot(cwd) == before


def test_a_config_key_the_package_gained_since_a_run_started_does_not_block_its_resume(tmp_path):
    """A run started before env.fresh_buffer_on_switch existed resumes with `env=NonStationary` (it keeps
    its saved config); a value the user changes is still refused, in a group or by its key."""
    from omegaconf import OmegaConf

    from plastic_rl.train.plan import keep_config

    runtime = {"progress_bar": False, "verbose": 0, "device": "cpu", "torch_threads": 1, "resume": "auto"}
    saved = OmegaConf.create({**runtime, "seed": 0, "env": {"name": "NonStationary", "kwargs": {"n_tasks": 5}}})
    cfg = OmegaConf.create({**runtime, "seed": 0, "env": {"name": "NonStationary", "kwargs": {"n_tasks": 5},
                                                           "fresh_buffer_on_switch": False}})  # fmt: skip
    kept = keep_config(cfg, saved, ["env=NonStationary", "seed=0"], tmp_path)
    assert "fresh_buffer_on_switch" not in kept.env and kept.env.kwargs.n_tasks == 5
    changed = OmegaConf.merge(cfg, {"env": {"kwargs": {"n_tasks": 4}}})
    with pytest.raises(SystemExit):
        keep_config(changed, saved, ["env=NonStationary"], tmp_path)
    with pytest.raises(SystemExit):
        keep_config(OmegaConf.merge(cfg, {"env": {"fresh_buffer_on_switch": True}}), saved, ["env.fresh_buffer_on_switch=true"], tmp_path)


def test_resume_skips_a_truncated_checkpoint(tmp_path):  # issue 22.14: it refused to start
    args = ["total_timesteps=768", "checkpoint_freq=256", "eval_freq=0", *QUICK]
    assert train(tmp_path, *args).returncode == 0
    run = tmp_path / "runs" / RUN
    (run / "final_model.zip").unlink()  # as if killed after its last checkpoint
    complete, newest = find_checkpoints(run / "checkpoints")  # steps 256 and 512
    raw = newest.read_bytes()
    newest.write_bytes(raw[: len(raw) // 2])  # a checkpoint cut short (a full disk, a failed copy)
    out = train(tmp_path, *args, "resume=true")
    assert out.returncode == 0, out.stderr
    (skipped,) = [line for line in out.stdout.splitlines() if line.startswith("skipped ")]
    assert newest.name in skipped and "truncated" in skipped, out.stdout
    assert f"/checkpoints/{complete.name} at step 256;" in out.stdout, out.stdout
    assert PlasticPPO.load(run / "final_model.zip").num_timesteps == 768
    assert PlasticPPO.load(newest).num_timesteps == 512  # written again, whole


def test_a_run_folder_being_trained_is_refused_to_a_second_process(tmp_path):
    """Two processes in one folder interleaved their evaluation rows (a continual run, 2026-12-07): one holds it."""
    import fcntl

    run = tmp_path / "runs" / RUN
    run.mkdir(parents=True)
    with open(run / ".lock", "w") as held:  # this test process is the one training it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        out = train(tmp_path, "total_timesteps=256", "eval_freq=0", *QUICK)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert out.stderr.startswith(f"error: {run} is being trained by another process (pid 4242)"), out.stderr
        assert [p.name for p in run.iterdir()] == [".lock"]  # nothing of it was touched
    # released (as the kernel releases it when its holder dies, however it dies): the next process gets it
    from plastic_rl.train.lock import exclusive

    with exclusive(run):
        assert (run / ".lock").read_text() == f"{os.getpid()}\n"


def test_multirun_with_the_joblib_launcher(tmp_path):
    out = train(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", "plasticity=none,elr",
                "total_timesteps=256", "checkpoint_freq=0", "eval_freq=0", *QUICK)  # fmt: skip
    assert out.returncode == 0, out.stderr
    finals = sorted(p.parent.name for p in (tmp_path / "runs" / "multirun").rglob("final_model.zip"))
    assert finals == ["ppo_CartPole_elr_seed0", "ppo_CartPole_elr_seed1", "ppo_CartPole_none_seed0", "ppo_CartPole_none_seed1"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["env=Nope"], "Could not find 'env/Nope' Available options in 'env': Atari CartPole MinAtar MinAtarSequence MuJoCo NonStationary"),
        (["env=Atari", "env.id=NoSuchGame-v5"], "env.id='NoSuchGame-v5'"),
        (["total_timesteps=0"], "total_timesteps=0 must be a positive integer"),
        (["total_timesteps=-3"], "total_timesteps=-3 must be a positive integer"),
        (["no_such_key=1"], "Could not override 'no_such_key'"),
        (["resume=/no/such/run"], "resume=/no/such/run: no such run folder or checkpoint"),
        (["agent=sac"], "agent=sac on env=CartPole (CartPole-v1)"),
        # issue 22.12: a bad top-level key is named (not env.id), before anything is built
        (["seed=abc"], "error: seed='abc' must be an integer >= 0"),
        (["seed=-1"], "error: seed=-1 must be an integer >= 0"),
        (["seed=1.5"], "error: seed=1.5 must be an integer >= 0"),
        (["verbose=abc"], "error: verbose='abc' is not accepted; accepted: 0, 1, 2"),
        (["device=foo"], "error: device='foo' is not accepted; accepted: auto, cpu, cuda, cuda:N, mps"),
        # issue 22.13: no random "close matches", the families instead
        (["env.id=NotAnEnv-v9"], "No close match; the ids are in: classic control (e.g. CartPole-v1), Atari (e.g. Pong-v5)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    out = train(tmp_path, *args, *QUICK)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # 10.6: a refused run leaves no folder behind


def test_a_bad_top_level_key_is_named_before_start_up(tmp_path):  # issue 22.12: the error came after ~3 s of set-up
    out = train(tmp_path, "progress_bar=abc", "seed=abc")
    assert out.returncode == 2 and out.stderr == "error: seed='abc' must be an integer >= 0\n", out.stderr
    out = train(tmp_path, "progress_bar=abc", *QUICK[1:])
    assert out.returncode == 2 and out.stderr == "error: progress_bar='abc' must be true or false\n", out.stderr
    assert not (tmp_path / "runs").exists()


def test_unreadable_resume_checkpoint(tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"not a zip")
    out = train(tmp_path, f"resume={bad}", *QUICK)
    assert out.returncode == 2 and out.stderr.strip().startswith(f"error: resume: cannot load {bad}")
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_a_nonstationary_run_is_diagnosable_without_flags(tmp_path):  # issue 10.12: its checkpoints had no env id
    args = ["env=NonStationary", "env.kwargs.switch_every=512", "env.kwargs.n_tasks=2", "total_timesteps=1024",
            "checkpoint_freq=512", "eval_freq=0", *QUICK]  # fmt: skip
    assert train(tmp_path, *args).returncode == 0
    run = tmp_path / "runs" / "ppo_NonStationary_norm-rewarm_seed0"
    assert PlasticPPO.load(run / "checkpoints" / "step_0000000512.zip").env_id == "CartPole-v1"
    # env.rewarm_on_switch=auto (the sequences' default): the default preset re-warms at each announced switch
    elr = PlasticPPO.load(run / "final_model.zip").plasticity.elrs["policy"]
    # switches at steps 512 and 1024 (back to task 0): two re-warms
    assert elr.project == "from-rewarm" and elr.rewarms == 2 and elr.steps == 1024 // 256 * 20
    assert elr.projecting  # a change seen: projected from the first switch on
    out = subprocess.run([sys.executable, "-m", "plastic_rl.diagnose", str(run), "--n-obs", "64"], env=ENV,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "2 checkpoint(s), 64 observations from CartPole-v1" in out.stderr


def test_rewarm_on_switch_auto_leaves_a_self_restarting_schedule_alone(tmp_path):
    args = ["env=NonStationary", "env.kwargs.switch_every=512", "env.kwargs.n_tasks=2", "total_timesteps=1024", "plasticity=elr",
            "checkpoint_freq=0", "eval_freq=0", *QUICK]  # fmt: skip
    assert train(tmp_path, *args).returncode == 0
    elr = PlasticPPO.load(tmp_path / "runs" / "ppo_NonStationary_elr_seed0" / "final_model.zip").plasticity.elrs["policy"]
    assert elr.schedule.t == elr.steps and elr.rewarms == elr.steps // 10_000  # cyclic: never restarted by the switch
    bad = train(tmp_path, *args, "env.rewarm_on_switch=sometimes")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: env.rewarm_on_switch='sometimes' is not accepted; accepted: true, false, auto"
    )
    not_a_bool = train(tmp_path, *args, "env.fresh_buffer_on_switch=maybe")
    assert not_a_bool.returncode == 2 and not_a_bool.stderr.strip() == (
        "error: env.fresh_buffer_on_switch='maybe' is not accepted; accepted: true, false"
    )
    on_policy = train(tmp_path, *args, "env.fresh_buffer_on_switch=true")
    assert on_policy.returncode == 2 and on_policy.stderr.strip() == (
        "error: env.fresh_buffer_on_switch=true needs an off-policy agent (a replay buffer); agent.algorithm='PlasticPPO' has none"
    )


@pytest.mark.parametrize(
    "schedule, project, rewarms",
    [(None, "on-rewarm", True), (None, "from-rewarm", True), ("on-demand", "from-rewarm", True), ("decay", True, True), ("on-demand", True, True), ("cyclic", True, False),
     ("cusum", "on-rewarm", False), (None, True, False), (None, False, False)],
)  # fmt: skip
def test_rewarm_on_switch_auto_rewarms_what_waits_to_be_told(schedule, project, rewarms):
    from omegaconf import OmegaConf

    from plastic_rl.train.build import rewarm_on_switch

    cfg = OmegaConf.create({"env": {"rewarm_on_switch": "auto"}, "plasticity": {"schedule": schedule, "project": project}})
    assert rewarm_on_switch(cfg) is rewarms
    assert rewarm_on_switch(OmegaConf.merge(cfg, {"env": {"rewarm_on_switch": False}})) is False


def test_a_nonstationary_run_can_intervene_at_each_task_switch(tmp_path):
    args = ["env=NonStationary", "env.kwargs.switch_every=512", "env.kwargs.n_tasks=3", "env.intervene_on_switch=true",
            "plasticity=shrink-perturb", "plasticity.every=0", "total_timesteps=1536", "checkpoint_freq=0", "eval_freq=0",
            *QUICK]  # fmt: skip
    out = train(tmp_path, *args)
    assert out.returncode == 0, out.stderr
    model = PlasticPPO.load(tmp_path / "runs" / "ppo_NonStationary_shrink-perturb_seed0" / "final_model.zip")
    assert model.plasticity.interventions == 3  # at 512, 1024 and 1536: one per switch, none in between


def test_rl_zoo_noise_settings_become_sb3_action_noise():
    import gymnasium as gym
    from stable_baselines3.common.noise import NormalActionNoise

    from plastic_rl.train.build import with_action_noise

    space = gym.spaces.Box(-1, 1, (3,))
    kwargs = with_action_noise({"noise_type": "normal", "noise_std": 0.2, "batch_size": 8}, space)
    assert kwargs["batch_size"] == 8 and isinstance(kwargs["action_noise"], NormalActionNoise)
    assert kwargs["action_noise"]._sigma.tolist() == [0.2, 0.2, 0.2]
    assert with_action_noise({"batch_size": 8}, space) == {"batch_size": 8}
    with pytest.raises(SystemExit):
        with_action_noise({"noise_type": "pink", "noise_std": 0.1}, space)
