"""``python -m plastic_rl.diagnose`` and ``plastic_rl.diagnose.diagnose`` on checkpoints made here.

Training is tiny (64-step rollouts): the point is loading, observation batches, the series logic
and the outputs, not learning. Numbers are checked against ``diagnostics.measure`` run directly.
"""

import base64
import csv
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.callbacks import CheckpointCallback

from plastic_rl import PlasticA2C, PlasticDQN, PlasticPPO, PlasticSAC, PlasticTD3, diagnostics
from plastic_rl.agents.forwards import actor_critic_forward, actor_forward, critic_forward
from plastic_rl.diagnose import diagnose, write_csv, write_json, write_plots

from helpers import TinyImageEnv

PPO_KW = dict(n_steps=64, batch_size=64, n_epochs=1, seed=0)
N_OBS = 256


gym.register("DiagnoseTinyImage-v0", entry_point=TinyImageEnv)


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def assert_same_numbers(row, expected):
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    root = tmp_path_factory.mktemp("zips")
    out = {}
    ppo = PPO("MlpPolicy", "CartPole-v1", **PPO_KW).learn(64)
    ppo.save(root / "ppo_cartpole.zip")
    plastic = PlasticPPO("CartPole-v1", **PPO_KW).learn(64)
    plastic.save(root / "plastic_ppo.zip")
    for name in ("ppo_cartpole", "plastic_ppo"):
        out[name] = root / f"{name}.zip"
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Three checkpoints of one PlasticPPO run, renamed so that file names sort against the steps."""
    root = tmp_path_factory.mktemp("run")
    raw = root / "raw"
    model = PlasticPPO("CartPole-v1", **PPO_KW)
    model.learn(192, callback=CheckpointCallback(64, str(raw), name_prefix="ckpt"))
    run = root / "run"
    (run / "sub").mkdir(parents=True)
    shutil.move(raw / "ckpt_64_steps.zip", run / "c_first.zip")
    shutil.move(raw / "ckpt_128_steps.zip", run / "sub" / "b_second.zip")  # found recursively
    shutil.move(raw / "ckpt_192_steps.zip", run / "a_third.zip")
    return run


# -- single checkpoints ------------------------------------------------------------------------------
def test_vanilla_ppo_numbers_equal_measure_and_file_untouched(zips, tmp_path):
    path = zips["ppo_cartpole"]
    before = sha256(path)
    rows = diagnose(path, env="CartPole-v1", n_obs=N_OBS, save_obs=tmp_path / "obs.npy")
    assert sha256(path) == before  # diagnosis never writes to a checkpoint
    (row,) = rows
    assert (row["algorithm"], row["network"], row["step"], row["n_obs"]) == ("PPO", "policy", 64, N_OBS)
    assert row["checkpoint"] == str(path)
    assert "delta_c" not in row and "param_elr" not in row  # no neighbour

    obs = np.load(tmp_path / "obs.npy")
    assert obs.shape == (N_OBS, 4) and np.unique(obs, axis=0).shape[0] > N_OBS // 2  # states visited, not one reset
    model = PPO.load(path, device="cpu")
    expected = diagnostics.measure(model.policy, torch.as_tensor(obs), forward=actor_critic_forward)
    assert set(expected) <= set(row)
    assert_same_numbers(row, expected)
    assert "saturated_ratio/mlp_extractor.policy_net.0" in row and "dead_ratio" not in row  # tanh network

    # The same seed collects the same states; another seed other ones.
    assert diagnose(path, env="CartPole-v1", n_obs=N_OBS)[0] == row
    assert diagnose(path, env="CartPole-v1", n_obs=N_OBS, seed=1)[0]["feature_norm"] != row["feature_norm"]


def test_plastic_ppo_uses_its_recorded_env_and_an_obs_array(zips, tmp_path):
    path = zips["plastic_ppo"]
    (collected,) = diagnose(path, n_obs=N_OBS, save_obs=tmp_path / "obs.npy")  # env id from the zip
    assert collected["algorithm"] == "PlasticPPO" and collected["observations"].startswith("CartPole-v1 seed 0")
    obs = np.load(tmp_path / "obs.npy")
    (given,) = diagnose([path], obs=obs)
    model = PlasticPPO.load(path, device="cpu")
    expected = diagnostics.measure(model.policy, torch.as_tensor(obs), forward=actor_critic_forward)
    assert_same_numbers(given, expected)
    assert_same_numbers(collected, expected)
    assert "weight_norm/mlp_extractor.policy_net.0" in given  # the normalized layers keep their names


# -- a series ------------------------------------------------------------------------------------------
def test_run_folder_is_a_series_ordered_by_step(run_dir, tmp_path):
    files = sorted(run_dir.rglob("*.zip"))
    before = {p: sha256(p) for p in files}
    rows = diagnose(run_dir, n_obs=N_OBS, save_obs=tmp_path / "obs.npy")
    assert {p: sha256(p) for p in files} == before
    assert [r["step"] for r in rows] == [64, 128, 192]
    assert [os.path.basename(r["checkpoint"]) for r in rows] == ["c_first.zip", "b_second.zip", "a_third.zip"]
    assert {r["series"] for r in rows} == {str(run_dir)}
    assert all(r["observations"].endswith("by c_first.zip") for r in rows)  # the first checkpoint collects
    assert "delta_c" not in rows[0]
    for _prev, row in zip(rows, rows[1:]):
        for key in ("delta_c", "delta_a", "param_elr", "delta_c/mlp_extractor.value_net.0", "param_elr/action_net"):
            assert math.isfinite(row[key]) and row[key] >= 0, key

    # Delta and parameter-change ELR recomputed from the loaded models on the same observations.
    obs = torch.as_tensor(np.load(tmp_path / "obs.npy"))
    a, b = (PlasticPPO.load(run_dir / name, device="cpu").policy for name in ("c_first.zip", "sub/b_second.zip"))
    snaps = [diagnostics.FeatureSnapshot(p, obs, forward=actor_critic_forward) for p in (a, b)]
    assert_same_numbers(rows[1], diagnostics.compare(*snaps))
    assert_same_numbers(rows[1], diagnostics.measure(b, obs, forward=actor_critic_forward))
    wa = torch.cat([a.value_net.weight.flatten(), a.value_net.bias]).detach().double()
    wb = torch.cat([b.value_net.weight.flatten(), b.value_net.bias]).detach().double()
    assert rows[1]["param_elr/value_net"] == pytest.approx(float((wb - wa).norm() / wa.norm()), rel=1e-9)

    plots = write_plots(rows, tmp_path / "plots")
    assert {p.name for p in plots} == {"activity.png", "rank.png", "norms.png", "change.png"}
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in plots)


def test_a_final_model_that_repeats_the_last_checkpoint_is_left_out(run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    shutil.copy(run / "a_third.zip", run / "final_model.zip")
    notes = []
    rows = diagnose(run, n_obs=64, log=notes.append)
    assert [os.path.basename(r["checkpoint"]) for r in rows] == ["c_first.zip", "b_second.zip", "a_third.zip"]
    assert any("final_model.zip: left out, same step and parameters as" in n for n in notes)


def test_a_temporary_file_in_a_run_folder_is_not_a_checkpoint(run_dir, tmp_path):  # issue 10.10
    run = shutil.copytree(run_dir, tmp_path / "run")
    raw = (run / "a_third.zip").read_bytes()
    (run / ".tmp_step_0000000256.zip").write_bytes(raw[: len(raw) // 2])  # a checkpoint write killed half-way
    rows = diagnose(run, n_obs=64)
    assert [r["step"] for r in rows] == [64, 128, 192]


def test_an_unreadable_zip_in_a_run_folder_is_skipped_with_a_warning(run_dir, tmp_path):  # issue 22.14
    from plastic_rl.checkpoints import UnreadableCheckpoint

    run = shutil.copytree(run_dir, tmp_path / "run")
    raw = (run / "a_third.zip").read_bytes()
    (run / "a_third.zip").write_bytes(raw[: len(raw) // 2])  # cut short (not a temporary file: a failed copy)
    raw = bytearray((run / "c_first.zip").read_bytes())  # its directory intact, one byte of policy.pth flipped
    info = zipfile.ZipFile(run / "c_first.zip").getinfo("policy.pth")
    raw[info.header_offset + 100] ^= 0xFF
    (run / "c_first.zip").write_bytes(bytes(raw))
    with pytest.warns(UnreadableCheckpoint) as warned:
        rows = diagnose(run, n_obs=64)
    assert [r["step"] for r in rows] == [128]
    assert sorted(str(w.message).split(":")[0] for w in warned) == [str(run / "a_third.zip"), str(run / "c_first.zip")]
    cmd = [sys.executable, "-m", "plastic_rl.diagnose", str(run), "--n-obs", "64", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"warning: {run / 'a_third.zip'}: truncated or corrupt zip archive (its end is missing: the only directory found "
        "belongs to an archive stored inside it); skipped, the other checkpoints are read",
        f"warning: {run / 'c_first.zip'}: corrupt zip archive: its member 'policy.pth' fails its CRC check; skipped, "
        "the other checkpoints are read",
    ]
    shutil.rmtree(run / "sub")  # none readable: exit 2, one line
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {run}: no readable checkpoint in this folder or below it: {run / 'a_third.zip'}")
    assert proc.stderr.rstrip().endswith("(and 1 more unreadable)")


def test_cli_series_outputs(run_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "plastic_rl.diagnose",
        str(run_dir),
        "--n-obs",
        str(N_OBS),
        "--json",
        str(out / "d.json"),
        "--csv",
        str(out / "d.csv"),
        "--out",
        str(out / "plots"),
        "--tensorboard",
        str(out / "tb"),
    ]
    out.mkdir()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "a_third.zip" in proc.stdout and "delta_c" in proc.stdout

    rows = json.loads((out / "d.json").read_text())
    assert [r["step"] for r in rows] == [64, 128, 192] and rows[0]["network"] == "policy"
    with open(out / "d.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [int(r["step"]) for r in table] == [64, 128, 192]
    assert table[0]["delta_c"] == "" and float(table[2]["delta_c"]) == pytest.approx(rows[2]["delta_c"])
    assert all((out / "plots" / f"{f}.png").stat().st_size > 1000 for f in ("activity", "rank", "norms", "change"))

    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "diagnose/policy/srank" in tags and "diagnose/policy/param_elr/action_net" in tags
    assert [e.step for e in acc.Scalars("diagnose/policy/srank")] == [64, 128, 192]
    assert [e.step for e in acc.Scalars("diagnose/policy/delta_a")] == [128, 192]
    assert acc.Scalars("diagnose/policy/delta_a")[-1].value == pytest.approx(rows[2]["delta_a"], rel=1e-6)


def test_json_and_csv_writers_handle_missing_and_infinite_values(tmp_path):
    rows = [
        {"series": "s", "checkpoint": "a.zip", "step": 1, "network": "q", "srank": 3.0},
        {"series": "s", "checkpoint": "b.zip", "step": 2, "network": "q", "srank": 2.0, "delta_c": math.inf},
    ]
    write_json(rows, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())[1]["delta_c"] is None
    write_csv(rows, tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "series,checkpoint,step,network,srank,delta_c" and lines[1].endswith("3.0,")


# -- other algorithms ----------------------------------------------------------------------------------
OFF_POLICY = dict(learning_starts=10, buffer_size=200)


@pytest.mark.parametrize(
    "make, env, algorithm, networks",
    [
        (lambda: A2C("MlpPolicy", "CartPole-v1", n_steps=8, seed=0), "CartPole-v1", "A2C", ["policy"]),
        (lambda: PlasticA2C("CartPole-v1", n_steps=8, seed=0), None, "PlasticA2C", ["policy"]),
        (lambda: DQN("MlpPolicy", "CartPole-v1", seed=0, **OFF_POLICY), "CartPole-v1", "DQN", ["q_net", "q_net_target"]),
        (lambda: PlasticDQN("CartPole-v1", seed=0, **OFF_POLICY), None, "PlasticDQN", ["q_net", "q_net_target"]),
        (
            lambda: SAC("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs=dict(net_arch=[32, 32]), **OFF_POLICY),
            "Pendulum-v1",
            "SAC",
            ["actor", "critic", "critic_target"],
        ),
        (
            lambda: PlasticSAC("Pendulum-v1", seed=0, policy_kwargs=dict(net_arch=[32, 32]), **OFF_POLICY),
            None,
            "PlasticSAC",
            ["actor", "critic", "critic_target"],
        ),
        (
            lambda: TD3("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs=dict(net_arch=[32, 32]), **OFF_POLICY),
            "Pendulum-v1",
            "TD3",
            ["actor", "actor_target", "critic", "critic_target"],
        ),
        (
            lambda: PlasticTD3("Pendulum-v1", seed=0, policy_kwargs=dict(net_arch=[32, 32]), **OFF_POLICY),
            None,
            "PlasticTD3",
            ["actor", "actor_target", "critic", "critic_target"],
        ),
        (
            lambda: DDPG("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs=dict(net_arch=[32, 32]), **OFF_POLICY),
            "Pendulum-v1",
            "DDPG",
            ["actor", "actor_target", "critic", "critic_target"],
        ),
    ],
    ids=["a2c", "plastic_a2c", "dqn", "plastic_dqn", "sac", "plastic_sac", "td3", "plastic_td3", "ddpg"],
)
def test_other_algorithms_give_a_row_per_network(make, env, algorithm, networks, tmp_path):
    model = make()
    model.learn(16)
    model.save(tmp_path / "m.zip")
    rows = diagnose(tmp_path / "m.zip", env=env, n_obs=64)
    assert [r["network"] for r in rows] == networks
    assert {r["algorithm"] for r in rows} == {algorithm}
    assert all(r["srank"] >= 1 and "dormant_ratio" in r for r in rows)


def test_td3_actors_vanilla_and_plastic_show_the_same_layers(tmp_path):
    """SB3's TD3/DDPG actor ends in nn.Tanh, PlasticTD3's in Squash: the output squash is no hidden layer, so
    the same architecture gives the same measured layers, and vanilla's numbers are its hidden layers' own."""

    def kw():  # fresh each time: SB3's DDPG writes n_critics=1 into the policy_kwargs it is given
        return dict(seed=0, policy_kwargs=dict(net_arch=[32, 32]), **OFF_POLICY)

    keys = {}
    for name, make in (("td3", lambda: TD3("MlpPolicy", "Pendulum-v1", **kw())), ("ddpg", lambda: DDPG("MlpPolicy", "Pendulum-v1", **kw())),
                       ("plastic", lambda: PlasticTD3("Pendulum-v1", plasticity="none", **kw()))):  # fmt: skip
        make().save(tmp_path / f"{name}.zip")
        rows = {r["network"]: r for r in diagnose(tmp_path / f"{name}.zip", env="Pendulum-v1", n_obs=64)}
        keys[name] = {net: {k for k in row if "/" in k} for net, row in rows.items()}
    assert keys["td3"] == keys["plastic"] and keys["ddpg"]["actor"] == keys["td3"]["actor"]  # DDPG: one critic
    assert {k.split("/")[1] for k in keys["td3"]["actor"]} == {"mu.0", "mu.2"}  # not mu.4, the action output
    assert not any(k.startswith("saturated_ratio") for k in keys["td3"]["actor"])
    loaded = TD3.load(tmp_path / "td3.zip", device="cpu")
    obs = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (64, 3)).astype(np.float32))
    hidden = torch.nn.Sequential(*list(loaded.actor.mu)[:-1])  # the actor without its squash, measured directly
    (row,) = [r for r in diagnose(tmp_path / "td3.zip", obs=obs.numpy()) if r["network"] == "actor"]
    expected = diagnostics.measure(hidden, obs)
    assert row["srank"] == pytest.approx(expected["srank"]) and row["dormant_ratio"] == pytest.approx(expected["dormant_ratio"])


def test_sac_critic_sees_the_actors_actions_on_the_batch(tmp_path):
    model = SAC("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs=dict(net_arch=[32, 32]), **OFF_POLICY)
    model.save(tmp_path / "sac.zip")
    obs = np.random.default_rng(0).uniform(-1, 1, (64, 3)).astype(np.float32)
    rows = {r["network"]: r for r in diagnose(tmp_path / "sac.zip", obs=obs)}
    loaded = SAC.load(tmp_path / "sac.zip", device="cpu")
    o = torch.as_tensor(obs)
    with torch.no_grad():
        batch = {"observations": o, "actions": loaded.actor(o, deterministic=True)}
    assert_same_numbers(rows["critic"], diagnostics.measure(loaded.critic, batch, forward=critic_forward))
    assert_same_numbers(rows["actor"], diagnostics.measure(loaded.actor, batch, forward=actor_forward))


def test_cnn_policy_collects_from_a_registered_env_and_accepts_channel_last_frames(tmp_path):
    model = PPO("CnnPolicy", TinyImageEnv(), n_steps=32, batch_size=32, n_epochs=1, seed=0)
    model.save(tmp_path / "cnn.zip")
    (collected,) = diagnose(tmp_path / "cnn.zip", env="DiagnoseTinyImage-v0", n_obs=32, save_obs=tmp_path / "obs.npy")
    assert np.load(tmp_path / "obs.npy").shape == (32, 3, 36, 36)  # SB3's channel-first layout, as in training
    frames = np.random.default_rng(0).integers(0, 256, (16, 36, 36, 3), dtype=np.uint8)  # channel last, as envs give
    (row,) = diagnose(tmp_path / "cnn.zip", obs=frames)
    chw = torch.as_tensor(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
    expected = diagnostics.measure(PPO.load(tmp_path / "cnn.zip", device="cpu").policy, chw, forward=actor_critic_forward)
    assert_same_numbers(row, expected)
    assert "dead_ratio/features_extractor.cnn.0" in row and "fau" in row  # ReLU network


# -- bad input ------------------------------------------------------------------------------------------
def unknown_algorithm_zip(source, target):
    """A copy of ``source`` whose policy class is a custom one and whose parameters match no known layout."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            content = zin.read(item.filename)
            if item.filename == "data":
                data = json.loads(content)
                data["policy_class"] = {
                    ":type:": "<class 'abc.ABCMeta'>",
                    "__module__": "my_lab.policies",
                    ":serialized:": base64.b64encode(b"cmy_lab.policies\nFancyPolicy\n.").decode(),
                }
                content = json.dumps(data).encode()
            elif item.filename == "policy.pth":
                buffer = io.BytesIO()
                torch.save({"trunk.0.weight": torch.zeros(2, 2)}, buffer)
                content = buffer.getvalue()
            zout.writestr(item, content)


@pytest.fixture(scope="module")
def bad_inputs(zips, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    ppo = zips["ppo_cartpole"]
    (root / "notes.zip").write_text("not a zip at all\n")
    raw = ppo.read_bytes()
    (root / "truncated.zip").write_bytes(raw[: len(raw) // 2])
    # Cut where a member ends: the last directory left is policy.pth's own (a zip stored uncompressed).
    cut = zipfile.ZipFile(ppo).getinfo("policy.optimizer.pth").header_offset
    (root / "cut.zip").write_bytes(raw[:cut])
    unknown_algorithm_zip(ppo, root / "fancy.zip")
    np.save(root / "wrong.npy", np.zeros((10, 3), dtype=np.float32))
    return {
        "missing path": ([str(root / "nope.zip")], "nope.zip", "no such file"),
        "not a zip": ([str(root / "notes.zip")], "notes.zip", "not a zip file"),
        "truncated zip": ([str(root / "truncated.zip")], "truncated.zip", "truncated"),
        "zip cut after a member": ([str(root / "cut.zip")], "cut.zip", "truncated or corrupt"),  # issue 10.14
        "unknown algorithm": ([str(root / "fancy.zip")], "fancy.zip", "unknown algorithm"),
        "unknown env id": ([str(ppo), "--env", "NoSuchEnv-v7"], "ppo_cartpole.zip", "'NoSuchEnv-v7' does not exist"),
        "no env id": ([str(ppo)], "ppo_cartpole.zip", "pass --env"),
        "obs of the wrong shape": ([str(ppo), "--obs", str(root / "wrong.npy")], "wrong.npy", "(10, 3)"),
    }


CASES = [
    "missing path",
    "not a zip",
    "truncated zip",
    "zip cut after a member",
    "unknown algorithm",
    "unknown env id",
    "no env id",
    "obs of the wrong shape",
]


@pytest.mark.parametrize("case", CASES)
def test_cli_bad_input_is_one_line_and_exit_2(bad_inputs, case):
    args, filename, problem = bad_inputs[case]
    proc = subprocess.run([sys.executable, "-m", "plastic_rl.diagnose", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and filename in lines[0] and problem in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_api_raises_the_same_messages(bad_inputs):
    for case in CASES:
        args, filename, problem = bad_inputs[case]
        env = args[args.index("--env") + 1] if "--env" in args else None
        obs = args[args.index("--obs") + 1] if "--obs" in args else None
        kind = FileNotFoundError if case == "missing path" else ValueError
        with pytest.raises(kind) as info:
            diagnose(args[0], env=env, obs=obs)
        assert filename in str(info.value) and problem in str(info.value), case


# -- sb3-contrib (skipped where it is not installed) ------------------------------------------------------
@pytest.mark.parametrize(
    "name, env, networks",
    [
        ("QRDQN", "CartPole-v1", ["quantile_net", "quantile_net_target"]),
        ("TQC", "Pendulum-v1", ["actor", "critic", "critic_target"]),
        ("TRPO", "CartPole-v1", ["policy"]),
        ("MaskablePPO", "CartPole-v1", ["policy"]),
        ("CrossQ", "Pendulum-v1", ["actor", "critic"]),
    ],
)
def test_sb3_contrib_algorithms(name, env, networks, tmp_path):
    contrib = pytest.importorskip("sb3_contrib")
    cls = getattr(contrib, name)
    kwargs = OFF_POLICY if name in ("QRDQN", "TQC", "CrossQ") else dict(n_steps=64, batch_size=64)
    policy_kwargs = dict(net_arch=[32, 32]) if env == "Pendulum-v1" else None
    cls("MlpPolicy", env, policy_kwargs=policy_kwargs, seed=0, **kwargs).save(tmp_path / "m.zip")
    rows = diagnose(tmp_path / "m.zip", env=env, n_obs=64)
    assert [r["network"] for r in rows] == networks and {r["algorithm"] for r in rows} == {name}


def test_recurrent_ppo_is_refused_by_name(tmp_path):
    contrib = pytest.importorskip("sb3_contrib")
    contrib.RecurrentPPO("MlpLstmPolicy", "CartPole-v1", n_steps=64, batch_size=64).save(tmp_path / "r.zip")
    with pytest.raises(ValueError, match="RecurrentPPO checkpoints are not supported"):
        diagnose(tmp_path / "r.zip", env="CartPole-v1")


def test_envpool_only_id_is_collected_through_plastic_rl_envs(tmp_path):
    """``Pong-v5`` is no gymnasium id here: the frames come from ``plastic_rl.envs.make_vec_env`` (envpool)."""
    pytest.importorskip("envpool")
    envs = pytest.importorskip("plastic_rl.envs")
    venv = envs.make_vec_env("Pong-v5", n_envs=2, seed=0)
    PPO("CnnPolicy", venv, n_steps=8, batch_size=16, seed=0, policy_kwargs=dict(ortho_init=False)).save(tmp_path / "pong.zip")
    venv.close()
    (row,) = diagnose(tmp_path / "pong.zip", env="Pong-v5", n_obs=16, n_envs=2, save_obs=tmp_path / "obs.npy")
    assert row["observations"].startswith("Pong-v5 seed 0") and np.load(tmp_path / "obs.npy").shape == (16, 4, 84, 84)
    assert "fau/features_extractor.cnn.0" in row


# -- one env-backend rule: a checkpoint is diagnosed on the backend it was trained on -----------------------
def test_training_and_diagnose_pick_the_same_backend(tmp_path):
    """Training's env (``make_vec_env``: envpool first) is recorded in the zip, and diagnose makes that one."""
    envs = pytest.importorskip("plastic_rl.envs")
    from plastic_rl.checkpoints import read_checkpoint
    from plastic_rl.env_ids import envpool_ids, resolve_backend

    venv = envs.make_vec_env("CartPole-v1", n_envs=2, seed=0)  # what the training CLI makes
    PlasticPPO("MlpPolicy", venv, **PPO_KW).save(tmp_path / "cli.zip")
    venv.close()
    trained_on = resolve_backend("CartPole-v1")
    assert trained_on == ("envpool" if "CartPole-v1" in envpool_ids() else "gymnasium")
    assert read_checkpoint(tmp_path / "cli.zip").env_backend == trained_on
    (row,) = diagnose(tmp_path / "cli.zip", n_obs=16, n_envs=2)
    assert row["observations"] == f"CartPole-v1 seed 0 ({trained_on}) by cli.zip"
    # another --env than the recorded one: the record says nothing about it, so the SB3 way (gymnasium first)
    (row,) = diagnose(tmp_path / "cli.zip", env="CartPole-v0", n_obs=16, n_envs=2)
    assert row["observations"] == "CartPole-v0 seed 0 (gymnasium) by cli.zip"
    assert "DiagnoseTinyImage-v0" not in envpool_ids()  # envpool lacks it: gymnasium makes it, in both
    assert resolve_backend("DiagnoseTinyImage-v0") == "gymnasium"


def test_a_gymnasium_trained_zip_is_diagnosed_on_gymnasium_and_backend_overrides(tmp_path):
    """``PlasticPPO("CartPole-v1")`` trains on gymnasium (SB3 makes the env): diagnose makes gymnasium's CartPole,
    also where envpool has the id; SB3's own zips record nothing and get gymnasium the same way."""
    pytest.importorskip("envpool")
    from plastic_rl.checkpoints import read_checkpoint

    PlasticPPO("CartPole-v1", **PPO_KW).save(tmp_path / "api.zip")
    PPO("MlpPolicy", "CartPole-v1", **PPO_KW).save(tmp_path / "sb3.zip")
    assert read_checkpoint(tmp_path / "api.zip").env_backend == "gymnasium"
    assert read_checkpoint(tmp_path / "sb3.zip").env_backend is None
    (row,) = diagnose(tmp_path / "api.zip", n_obs=16, n_envs=2)
    assert row["observations"] == "CartPole-v1 seed 0 (gymnasium) by api.zip"
    (row,) = diagnose(tmp_path / "sb3.zip", env="CartPole-v1", n_obs=16, n_envs=2)
    assert row["observations"] == "CartPole-v1 seed 0 (gymnasium) by sb3.zip"
    for backend, made_by in (("auto", "envpool"), ("envpool", "envpool"), ("gymnasium", "gymnasium")):
        (row,) = diagnose(tmp_path / "api.zip", n_obs=16, n_envs=2, backend=backend)
        assert row["observations"] == f"CartPole-v1 seed 0 ({made_by}) by api.zip"
    with pytest.raises(ValueError, match="backend='gym': use 'envpool', 'gymnasium', 'auto' or None"):
        diagnose(tmp_path / "api.zip", backend="gym")
    bad = subprocess.run(
        [sys.executable, "-m", "plastic_rl.diagnose", str(tmp_path / "api.zip"), "--backend", "gym"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "invalid choice: 'gym'" in bad.stderr


def test_diagnosing_a_gymnasium_trained_zip_never_imports_envpool(tmp_path):
    """envpool's import costs about a second (every env family): a zip trained on gymnasium does without it."""
    pytest.importorskip("envpool")
    PlasticPPO("CartPole-v1", **PPO_KW).save(tmp_path / "api.zip")
    code = (
        "import sys; from plastic_rl.diagnose.cli import main; "
        f"rc = main([{str(tmp_path / 'api.zip')!r}, '-q', '--n-obs', '16']); "
        "print(rc, 'envpool' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "False"]


def test_a_zip_trained_on_envpool_without_envpool_says_how_to_go_on(tmp_path, monkeypatch):
    envs = pytest.importorskip("plastic_rl.envs")
    import plastic_rl.env_ids as env_ids

    venv = envs.make_vec_env("CartPole-v1", n_envs=1, seed=0, backend="envpool")
    PlasticPPO("MlpPolicy", venv, **PPO_KW).save(tmp_path / "cli.zip")
    venv.close()
    monkeypatch.setattr(env_ids, "envpool_ids", lambda: frozenset())  # as on macOS, where envpool is not installed
    with pytest.raises(
        ValueError, match=r"cli.zip: env 'CartPole-v1' is to be made by envpool, which is not installed here.*--backend gymnasium"
    ):
        diagnose(tmp_path / "cli.zip", n_obs=16)
    (row,) = diagnose(tmp_path / "cli.zip", n_obs=16, n_envs=2, backend="gymnasium")
    assert row["observations"] == "CartPole-v1 seed 0 (gymnasium) by cli.zip"


def test_writers_are_made_by_name_like_sb3s_logger(tmp_path):
    from plastic_rl.diagnose import make_output_format

    rows = [{"series": "s", "checkpoint": "a.zip", "step": 1, "network": "q", "srank": 3.0}]
    for fmt in ("json", "csv"):
        target = tmp_path / f"r.{fmt}"
        assert make_output_format(fmt, target).write(rows) == [target] and target.stat().st_size > 0
    assert json.loads((tmp_path / "r.json").read_text()) == rows
    with pytest.raises(ValueError, match="unknown output format 'xml'; accepted: json, csv, plots, tensorboard, table"):
        make_output_format("xml", tmp_path)


def test_the_optimizer_start_up_shortcut_applies_only_to_checked_torch_versions():
    code = """
import sys
from plastic_rl.diagnose import cli
cli.EAGER_OPTIMIZERS_TORCH = ((0, 0), (0, 1))
print(cli._eager_optimizers())  # a torch outside the range: nothing changed
cli.EAGER_OPTIMIZERS_TORCH = ((0, 0), (99, 0))
print(cli._eager_optimizers())
import torch
torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
print("torch._dynamo" in sys.modules)  # building an optimizer no longer imports dynamo
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "True", "False"], out.stderr


# -- issue 22.6: scales that do not alarm for nothing ------------------------------------------------
def _panel(fig, title):
    (ax,) = [a for a in fig.axes if a.get_title() == title]
    return ax


def test_ratios_are_drawn_on_a_fixed_axis():
    """One unit of 256 flipping (0 <-> 1/256) is not a deep "W" on an autoscaled axis: ratios below 0.05 go on
    [0, 0.05], others on [0, 1], and the axis label says so."""
    from plastic_rl.diagnose.writers import family_figure

    flips = [0.0, 1 / 256, 0.0, 1 / 256]
    rows = [{"series": "s", "checkpoint": f"{i}.zip", "step": 100 * i, "network": "policy", "dormant_ratio": 0.0,
             "saturated_ratio": v, "fau": 0.5} for i, v in enumerate(flips)]  # fmt: skip
    fig = family_figure("activity", rows)
    for title in ("dormant_ratio", "saturated_ratio"):
        ax = _panel(fig, title)
        assert ax.get_ylim() == pytest.approx((-0.001, 0.05)) and "fixed axis 0-0.05" in ax.get_ylabel()
    assert _panel(fig, "fau").get_ylim() == pytest.approx((-0.02, 1.0)) and "fixed axis 0-1" in _panel(fig, "fau").get_ylabel()
    assert family_figure("norms", rows) is None


def test_rank_panels_show_the_layer_width(zips, tmp_path):
    """srank & co. start at 0 and carry the layer width (64 for PlasticPPO's policy, read from the zip) as a
    dashed line, so a fall from 28 to 18 reads against 64."""
    from plastic_rl.diagnose.writers import family_figure

    rows = diagnose(zips["plastic_ppo"], n_obs=N_OBS)
    fig = family_figure("rank", rows)
    for title in ("srank", "effective_rank", "stable_rank"):
        ax = _panel(fig, title)
        widths = [line for line in ax.lines if line.get_linestyle() == "--"]
        assert [list(w.get_ydata()) for w in widths] == [[64, 64]] and ax.get_ylim()[0] == 0 and ax.get_ylim()[1] > 64
        assert "layer width 64" in [t.get_text() for t in ax.get_legend().get_texts()]
    rows[0]["checkpoint"] = str(tmp_path / "gone.zip")  # no zip to read the width from: no line, still a plot
    assert not [line for line in _panel(family_figure("rank", rows), "srank").lines if line.get_linestyle() == "--"]
    assert write_plots(diagnose(zips["plastic_ppo"], n_obs=N_OBS), tmp_path / "plots")
