"""The algorithm registry: one record per algorithm, and what reads it (agents, checkpoints, diagnose)."""

import json
import subprocess
import sys
import zipfile

import pytest
from stable_baselines3 import A2C, PPO

from plastic_rl import checkpoints
from plastic_rl.agents import registry
from plastic_rl.diagnose import diagnose

from helpers import AGENT_CASES

cases = pytest.mark.parametrize("case", AGENT_CASES, ids=[c.id for c in AGENT_CASES])
MLP_CASES = [c for c in AGENT_CASES if c.policy == "MlpPolicy"]


def rewrite_data(source, target, **changes):
    """A copy of the zip ``source`` whose saved data has ``changes`` (None removes a key)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            content = zin.read(item.filename)
            if item.filename == "data":
                data = json.loads(content)
                for key, value in changes.items():
                    data.pop(key) if value is None else data.__setitem__(key, value)
                content = json.dumps(data).encode()
            zout.writestr(item, content)


@cases
def test_each_agent_records_its_class_and_its_networks_exist(case, tmp_path):
    model = case.make(seed=0)
    algo = case.plastic.algo()
    assert algo.name == case.plastic.__name__ and algo.base == case.sb3.__name__
    assert algo.policy_aliases()[case.policy] is type(model.policy)
    assert algo.on_policy == (not hasattr(model, "replay_buffer"))
    for spec in algo.networks:
        assert spec.module(model.policy) is getattr(model, spec.path) if spec.path else model.policy
    assert list(model.plasticity.networks) == [s.name for s in algo.trained()]
    model.save(tmp_path / "m.zip")
    data = json.loads(zipfile.ZipFile(tmp_path / "m.zip").read("data"))
    assert data[registry.CLASS_KEY] == case.plastic.__name__
    assert checkpoints.read_checkpoint(tmp_path / "m.zip").algo is algo


def test_the_recorded_class_decides_not_the_policy_class(tmp_path):
    model = AGENT_CASES[0].make(seed=0)  # a PlasticPPO
    model.save(tmp_path / "ppo.zip")
    rewrite_data(tmp_path / "ppo.zip", tmp_path / "a2c.zip", **{registry.CLASS_KEY: "PlasticA2C"})
    assert checkpoints.read_checkpoint(tmp_path / "a2c.zip").algo.name == "PlasticA2C"
    # a zip of ours saved before the class was recorded: its policy class and hyperparameters decide
    rewrite_data(tmp_path / "ppo.zip", tmp_path / "old.zip", **{registry.CLASS_KEY: None})
    assert checkpoints.read_checkpoint(tmp_path / "old.zip").algo.name == "PlasticPPO"
    rewrite_data(tmp_path / "ppo.zip", tmp_path / "bad.zip", **{registry.CLASS_KEY: "PlasticFoo"})
    with pytest.raises(ValueError, match="bad.zip: unknown algorithm: the zip records 'PlasticFoo'"):
        checkpoints.read_checkpoint(tmp_path / "bad.zip")


def test_vanilla_a2c_and_ppo_are_told_apart_by_their_hyperparameters(tmp_path):
    for cls in (A2C, PPO):
        cls("MlpPolicy", "CartPole-v1", n_steps=8, **({"batch_size": 8} if cls is PPO else {})).save(tmp_path / f"{cls.__name__}.zip")
        assert checkpoints.read_checkpoint(tmp_path / f"{cls.__name__}.zip").algo.name == cls.__name__


def test_every_plastic_record_extends_a_vanilla_one_with_the_same_networks():
    for name in registry.PLASTIC:
        algo, base = registry.ALGOS[name], registry.ALGOS[registry.ALGOS[name].base]
        assert not base.plastic and algo.networks == base.networks and algo.on_policy == base.on_policy
        assert sum(s.primary for s in algo.networks) == 1
        assert all(registry.ALGOS[name].trained()[0].primary for name in registry.PLASTIC)
    with pytest.raises(ValueError, match="unknown algorithm 'PPO2'; accepted: PPO, A2C"):
        registry.get("PPO2")


def test_reading_the_registry_imports_neither_sb3_nor_torch():
    code = "import sys, plastic_rl.agents.registry; print('stable_baselines3' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


@cases
def test_vanilla_zips_and_ours_without_the_recorded_class_are_identified(case, tmp_path):
    """SB3's and sb3-contrib's zips by their policy module (and hyperparameters); ours by their policy class."""
    case.make_sb3(seed=0).save(tmp_path / "vanilla.zip")
    assert checkpoints.read_checkpoint(tmp_path / "vanilla.zip").algo.name == case.sb3.__name__
    case.make(seed=0).save(tmp_path / "ours.zip")
    rewrite_data(tmp_path / "ours.zip", tmp_path / "old.zip", **{registry.CLASS_KEY: None})
    assert checkpoints.read_checkpoint(tmp_path / "old.zip").algo.name == case.plastic.__name__


def test_sb3_contrib_is_optional():
    """Without sb3-contrib the package imports, star-imports and trains the SB3 agents; its agents say what to install."""
    code = (
        "import sys; sys.modules['sb3_contrib'] = None  # as if not installed\n"
        "import plastic_rl.agents as agents\n"
        "from plastic_rl.agents import *\n"
        "assert 'PlasticQRDQN' not in agents.__all__ and 'PlasticPPO' in agents.__all__\n"
        "agents.PlasticDQN('CartPole-v1', learning_starts=10).learn(20)\n"
        "for name in ('PlasticQRDQN', 'PlasticTQC'):\n"
        "    try:\n"
        "        getattr(agents, name)\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [f"Plastic{name} needs sb3-contrib: pip install sb3-contrib" for name in ("QRDQN", "TQC")]


@pytest.mark.parametrize("case", MLP_CASES, ids=[c.id for c in MLP_CASES])
def test_diagnose_measures_ours_under_none_as_the_vanilla_agent(case, tmp_path):
    """The same seed, plasticity="none": diagnose names each zip's own algorithm and measures the same networks alike."""
    env_id = case.make_env().spec.id
    case.make_sb3(seed=0).save(tmp_path / "vanilla.zip")
    case.make("none", seed=0).save(tmp_path / "ours.zip")
    vanilla, ours = (diagnose(tmp_path / f"{name}.zip", env=env_id, n_obs=64) for name in ("vanilla", "ours"))
    assert {r["algorithm"] for r in vanilla} == {case.sb3.__name__} and {r["algorithm"] for r in ours} == {case.plastic.__name__}
    assert [r["network"] for r in vanilla] == [r["network"] for r in ours] == [s.name for s in case.plastic.algo().networks]
    for a, b in zip(vanilla, ours):
        metrics = {k for k, v in a.items() if isinstance(v, float)}
        assert metrics and metrics == {k for k, v in b.items() if isinstance(v, float)}
        assert all(a[k] == pytest.approx(b[k], nan_ok=True) for k in metrics), a["network"]
