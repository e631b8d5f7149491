"""configs/plasticity/*.yaml come from one source, ``PRESETS``: a field or value that drifts fails here."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from plastic_rl.agents.config import PRESETS, PlasticityConfig
from plastic_rl.tools import plasticity_configs
from plastic_rl.tools.config import load_config
from plastic_rl.tools.plasticity_configs import folder, main, render, stale, write

FIELDS = [f.name for f in dataclasses.fields(PlasticityConfig)]


def test_the_default_preset_is_one_everywhere():
    """PlasticX(env), python -m plastic_rl.train and agents.config.DEFAULT_PRESET name the same preset (issue 20)."""
    import inspect

    from plastic_rl import agents
    from plastic_rl.agents.config import DEFAULT_PRESET

    assert DEFAULT_PRESET == "norm-rewarm" and PRESETS[DEFAULT_PRESET].project == "from-rewarm"
    for name in agents.registry.PLASTIC:
        assert inspect.signature(getattr(agents, name).__init__).parameters["plasticity"].default == DEFAULT_PRESET, name
    assert load_config("config", []).plasticity.preset == DEFAULT_PRESET
    assert agents.PlasticPPO("CartPole-v1").plasticity.config == PRESETS[DEFAULT_PRESET]


def test_every_preset_file_is_what_presets_generate():
    assert stale() == []  # exact text: run python -m plastic_rl.tools.plasticity_configs after changing PRESETS
    assert sorted(p.stem for p in folder().glob("*.yaml")) == sorted(PRESETS)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_yaml_holds_every_field_with_the_presets_value(name):
    values = yaml.safe_load((folder() / f"{name}.yaml").read_text())
    assert values.pop("preset") == name
    assert list(values) == FIELDS  # all of them, in the dataclass's order
    assert values == dataclasses.asdict(PRESETS[name])
    composed = dict(load_config("config", [f"plasticity={name}"]).plasticity)  # what Hydra hands plastic_rl.train
    assert composed == {"preset": name, **values}


def test_a_missing_field_a_changed_value_or_a_new_field_is_caught(tmp_path, monkeypatch):
    write(tmp_path)
    assert stale(tmp_path) == []
    elr = tmp_path / "elr.yaml"
    elr.write_text("\n".join(line for line in render("elr").splitlines() if not line.startswith("drift:")) + "\n")
    nap = tmp_path / "nap.yaml"
    nap.write_text(render("nap").replace("peak: 2.0", "peak: 3.0"))
    (tmp_path / "old.yaml").write_text("preset: old\n")
    assert sorted(stale(tmp_path)) == ["elr.yaml", "nap.yaml", "old.yaml"]
    assert main(["--check", "--out", str(tmp_path)]) == 1

    write(tmp_path)
    (tmp_path / "old.yaml").unlink()
    assert main(["--check", "--out", str(tmp_path)]) == 0
    # a field added to the dataclass (here: to a subclass standing in for it) makes every file stale
    grown = dataclasses.make_dataclass("Grown", [("new_knob", int, 1)], bases=(PlasticityConfig,), frozen=True)
    presets = {name: grown(**dataclasses.asdict(config)) for name, config in PRESETS.items()}
    monkeypatch.setattr(plasticity_configs, "PRESETS", presets)
    assert stale(tmp_path) == [f"{name}.yaml" for name in PRESETS]
    assert "new_knob: 1" in render("elr")
