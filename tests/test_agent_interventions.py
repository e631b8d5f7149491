"""Interventions on the agents: every agent x every intervention preset, logged, saved, continued exactly."""

from __future__ import annotations

import csv
import random

import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import configure

from plastic_rl.agents import PRESETS, PlasticityConfig

from helpers import AGENT_CASES, projected_at_init, same_parameters

INTERVENTIONS = ["redo", "shrink-perturb", "reset"]
cases = pytest.mark.parametrize("case", AGENT_CASES, ids=[c.id for c in AGENT_CASES])
kinds = pytest.mark.parametrize("kind", INTERVENTIONS)
EVERY = 2


@kinds
@cases
def test_every_agent_trains_with_every_intervention_logged_at_its_frequency(tmp_path, case, kind):
    model = case.make({"preset": kind, "every": EVERY, "redo_tau": 0.5}, seed=0, diagnostics_freq=0)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(case.steps * 2, log_interval=1)
    model.logger.dump(model.num_timesteps)  # SB3 dumps a train()'s records at the next iteration: flush the last
    steps = model.plasticity.elrs[model.plasticity.primary].steps
    # one gradient step per train() in these cases: exactly one intervention per EVERY steps
    assert model.plasticity.interventions == steps // EVERY > 0
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())
    rows = list(csv.DictReader((tmp_path / "progress.csv").open()))
    counts = [int(float(r[f"plasticity/{kind}/count"])) for r in rows if r.get(f"plasticity/{kind}/count")]
    assert counts and counts == sorted(counts) and counts[-1] == model.plasticity.interventions
    per_layer = [k for k in rows[0] if k.startswith(f"plasticity/{kind}/units_reset/")]
    assert per_layer and f"plasticity/{kind}/units_reset" in rows[0]
    if kind != "redo":  # whole layers: every intervention resets the same units
        totals = {float(r[f"plasticity/{kind}/units_reset"]) for r in rows if r.get(f"plasticity/{kind}/units_reset")}
        assert len(totals) == 1 and totals.pop() > 0


@kinds
def test_interventions_print_at_verbose_1(capsys, kind):
    case = AGENT_CASES[0]
    case.make({"preset": kind, "every": 1}, seed=0, verbose=1).learn(case.steps * 2)
    printed = capsys.readouterr().out
    assert f"|    {kind}/units_reset" in printed and f"|    {kind}/count" in printed
    assert "units_reset/" not in printed  # per-layer counts: machine formats only


@cases
def test_interventions_combine_with_elr_and_keep_its_projection(case):
    model = case.make({"preset": "elr", "intervention": "shrink-perturb", "every": 0}, seed=0)  # 0: when asked
    model.learn(case.steps)
    elr = model.plasticity.elrs[model.plasticity.primary]
    before = elr._norms(elr._flat.views).clone()
    model.plasticity.intervene()
    assert not torch.allclose(elr._norms(elr._flat.views), before)  # shrunk: off the initial norms
    model.learn(case.steps // 2, reset_num_timesteps=False)
    projected_at_init(model)  # projected back
    assert model.plasticity.interventions == 1
    assert any(k.startswith("elr/") and v > 0 for k, v in model.plasticity.metrics().items())


def primary_and_target(case) -> tuple[str, str] | None:
    """(primary network, its target copy) from the registry, or None for an agent without targets."""
    algo = case.plastic.algo()
    primary = algo.trained()[0].name
    target = next((t.path for t in algo.targets_of(primary)), None)
    return (primary, target) if target else None


WITH_TARGETS = [c for c in AGENT_CASES if primary_and_target(c)]


@pytest.mark.parametrize("case", WITH_TARGETS, ids=[c.id for c in WITH_TARGETS])
def test_target_networks_get_the_same_edit(case):
    targets = primary_and_target(case)
    model = case.make({"preset": "reset", "reset_layers": "heads"}, seed=0)
    model.learn(case.steps)
    online, target = (getattr(model, name) for name in targets)
    lagged = {n: p.clone() for n, p in target.named_parameters()}
    heads = model.plasticity._layers(model.plasticity.networks[targets[0]], "heads")
    model.plasticity.intervene()
    for name, p in target.named_parameters():
        if name.rsplit(".", 1)[0] in heads:
            assert torch.equal(p, dict(online.named_parameters())[name]), name  # the fresh head, in both
        else:
            assert torch.equal(p, lagged[name]), name  # the rest keeps its lag


@kinds
@cases
def test_save_load_continues_exactly(tmp_path, case, kind):
    plasticity = {"preset": kind, "every": EVERY, "redo_tau": 0.5}
    straight = case.make(plasticity, seed=7)
    straight.learn(case.steps)
    straight.learn(case.steps, reset_num_timesteps=False)

    first = case.make(plasticity, seed=7)
    first.learn(case.steps)
    env = first.get_env()
    first.save(tmp_path / "m.zip")
    off_policy = hasattr(first, "replay_buffer")
    if off_policy:
        first.save_replay_buffer(tmp_path / "buffer.pkl")
    # SB3's load re-seeds python, numpy, torch and the action space with the run's seed: put them back
    rng = random.getstate(), np.random.get_state(), torch.get_rng_state(), first.action_space.np_random.bit_generator.state
    resumed = case.plastic.load(tmp_path / "m.zip", env=env, force_reset=False)
    if off_policy:
        resumed.load_replay_buffer(tmp_path / "buffer.pkl")
    random.setstate(rng[0])
    np.random.set_state(rng[1])
    torch.set_rng_state(rng[2])
    resumed.action_space.np_random.bit_generator.state = rng[3]
    assert resumed.plasticity.state_dict() == first.plasticity.state_dict()
    assert resumed.plasticity_config == PlasticityConfig(**{**PRESETS[kind].__dict__, "every": EVERY, "redo_tau": 0.5})
    resumed.learn(case.steps, reset_num_timesteps=False)
    assert resumed.plasticity.interventions == straight.plasticity.interventions > 0
    assert same_parameters(straight, resumed)


def test_bad_intervention_settings():
    case = AGENT_CASES[0]
    with pytest.raises(ValueError, match="intervention='redu' is not accepted; accepted: None, redo, shrink-perturb, reset"):
        case.make({"preset": "none", "intervention": "redu"})
    with pytest.raises(ValueError, match="every=-1 must be an int >= 0"):
        case.make({"preset": "redo", "every": -1})
    with pytest.raises(ValueError, match=r"redo_tau=1.5 is outside \[0, 1\)"):
        case.make({"preset": "redo", "redo_tau": 1.5})
    with pytest.raises(RuntimeError, match="has no intervention"):
        case.make("elr").plasticity.intervene()
    model = case.make({"preset": "reset", "reset_layers": "no_such_layer"})
    with pytest.raises(ValueError, match=r"unknown layer names \['no_such_layer'\]"):
        model.plasticity.intervene()
