"""What SB3 users do every day, on every agent and preset: one shared list of cases (helpers.AGENT_CASES).

save/load of every object SB3 can save (algorithm, policy, q_net, actor, critic) with random parameters,
every logger format at verbose 0/1/2, odd net_archs including [], callbacks, predict, same-seed
determinism, SB3's own warnings, and SB3's env checker on the envs the cases use.
"""

from __future__ import annotations

import csv
import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor

from plastic_rl.agents import PRESETS
from plastic_rl.envs.wrappers import CartPolePhysics
from plastic_rl.layers import architecture

from helpers import AGENT_CASES, PRESET_NAMES, TinyImageEnv, projected_at_init, same_parameters, short_pendulum

cases = pytest.mark.parametrize("case", AGENT_CASES, ids=[c.id for c in AGENT_CASES])
presets = pytest.mark.parametrize("preset", PRESET_NAMES)


# -- helpers ---------------------------------------------------------------------------------------
def randomize(module: torch.nn.Module, seed: int = 123) -> None:
    """Replace every parameter by random values: a load that silently keeps fresh weights shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


def batch(model, n: int = 16):
    space = model.observation_space
    space.seed(0)
    model.action_space.seed(0)
    obs = np.stack([space.sample() for _ in range(n)])
    actions = np.stack([model.action_space.sample() for _ in range(n)])
    obs_t = model.policy.obs_to_tensor(obs)[0]
    act_t = torch.as_tensor(actions, dtype=torch.float32).reshape(n, -1)
    return obs, obs_t, act_t


def tensors(out) -> list[torch.Tensor]:
    """The tensors of a forward's output (nested tuples flattened; SAC's extra dict left out)."""
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for item in out for t in tensors(item)] if isinstance(out, (tuple, list)) else []


def outputs(net, obs, actions, algo, name: str = "policy") -> list[torch.Tensor]:
    """Everything a network computes from a batch, sampling nothing: the registry's forward of the
    network called ``name`` (the policy: of every network it holds)."""
    inputs = {"observations": obs, "actions": actions} if algo.needs_actions else obs
    specs = [s for s in algo.networks if s.path == name]
    with torch.no_grad():
        if specs:
            return tensors(specs[0].forward(net, inputs))
        return [t for s in algo.networks for t in tensors(s.forward(s.module(net), inputs))]


def assert_same_outputs(a, b, obs, actions, algo, name: str = "policy"):
    out_a, out_b = outputs(a, obs, actions, algo, name), outputs(b, obs, actions, algo, name)
    assert len(out_a) == len(out_b) and all(torch.equal(x, y) for x, y in zip(out_a, out_b))


def sb3_class(cls: type) -> type:
    """The SB3 (or sb3-contrib) class that ``cls`` extends."""
    return next(c for c in cls.__mro__ if c.__module__.startswith(("stable_baselines3.", "sb3_contrib.")))


def has_norm(module) -> bool:
    return any(isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.RMSNorm)) for m in module.modules())


# -- save / load -----------------------------------------------------------------------------------
@presets
@cases
def test_every_saveable_object_rebuilds_the_same_network(tmp_path, case, preset):
    model = case.make(preset, seed=0)
    randomize(model.policy)
    obs, obs_t, act_t = batch(model)

    model.save(tmp_path / "algo.zip")
    loaded = case.plastic.load(tmp_path / "algo.zip")
    assert architecture(loaded.policy) == architecture(model.policy)
    assert_same_outputs(model.policy, loaded.policy, obs_t, act_t, case.plastic.algo())
    assert np.array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])

    for name in case.sub_networks:
        net = getattr(model, name)
        path = tmp_path / f"{name}.pth"
        net.save(str(path))
        rebuilt = type(net).load(str(path))
        assert type(rebuilt) is type(net), name
        assert architecture(rebuilt) == architecture(net), name
        assert_same_outputs(net, rebuilt, obs_t, act_t, case.plastic.algo(), name)
        # SB3's own class: the same network when nothing was normalized, a loud error otherwise
        if PRESETS[preset].norm is None:
            assert_same_outputs(net, sb3_class(type(net)).load(str(path)), obs_t, act_t, case.plastic.algo(), name)
        else:
            assert has_norm(rebuilt)
            with pytest.raises(TypeError, match="norm"):
                sb3_class(type(net)).load(str(path))


@cases
def test_loading_into_a_different_architecture_fails_loudly(tmp_path, case):
    model = case.make("elr", seed=0)
    for name in case.sub_networks:
        path = tmp_path / f"{name}.pth"
        getattr(model, name).save(str(path))
        saved = torch.load(path, weights_only=False)
        saved["data"]["norm"] = None  # same state-dict keys (affine-free norms have none), other network
        torch.save(saved, path)
        with pytest.raises(ValueError, match=r"\.load\(.*the saved network does not match the rebuilt one: module \d+ was saved as"):
            type(getattr(model, name)).load(str(path))
    model.save(tmp_path / "algo.zip")
    other = PRESETS["none"]  # the rebuilt policy takes its normalization from the saved config: none here
    with pytest.raises(ValueError, match=f"{case.plastic.__name__}.load: the saved policy does not match the rebuilt one"):
        case.plastic.load(tmp_path / "algo.zip", custom_objects={"plasticity_config": other})


@cases
def test_the_zip_records_the_env_and_backend_last_trained_on(tmp_path, case):
    """``diagnose`` re-creates the env a zip records, on the backend it records: construction, ``set_env`` and
    ``load(path, env=...)`` each update the record (a model moved to another env must not name the old one)."""
    model = case.make("elr", seed=0)
    spec = case.make_env().spec
    if spec is None:  # TinyImageEnv: no registered id, nothing diagnose could re-create
        assert (model.env_id, model.env_backend) == (None, None)
        return
    assert (model.env_id, model.env_backend) == (spec.id, "gymnasium")
    envs = pytest.importorskip("plastic_rl.envs")
    pool = envs.make_vec_env(spec.id, n_envs=1, seed=0, backend="envpool")
    model.set_env(pool)
    assert (model.env_id, model.env_backend) == (spec.id, "envpool")
    model.save(tmp_path / "pool.zip")
    assert case.plastic.load(tmp_path / "pool.zip").env_backend == "envpool"
    loaded = case.plastic.load(tmp_path / "pool.zip", env=case.make_env())
    assert (loaded.env_id, loaded.env_backend) == (spec.id, "gymnasium")
    loaded.set_env(envs.make_vec_env(spec.id, n_envs=1, seed=0, backend="envpool"))
    loaded.set_env(envs.make_vec_env(spec.id, n_envs=1, seed=0, backend="gymnasium"))
    assert loaded.env_backend == "gymnasium"


# -- logging ---------------------------------------------------------------------------------------
FORMATS = ["stdout", "log", "csv", "json", "tensorboard"]


def tensorboard_tags(folder) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events_file in folder.rglob("events.out.tfevents.*"):
        events = EventAccumulator(str(events_file))
        events.Reload()
        tags |= set(events.Tags()["scalars"])
    return tags


@presets
@cases
def test_every_logger_format_at_every_verbose_level(tmp_path, capsys, case, preset):
    model = case.make(preset, seed=0, tensorboard_log=str(tmp_path / "tb"), diagnostics_freq=0)  # on for the last learn()
    layer = next(iter(model.plasticity.metrics().keys() - {"lr_factor"}))  # e.g. elr/mlp_extractor.policy_net.0
    for verbose in (0, 1, 2):  # SB3's own logger: TensorBoard, and stdout from verbose 1 on
        model.verbose = verbose
        model.learn(case.steps, log_interval=1, reset_num_timesteps=False)
        printed = capsys.readouterr().out
        if verbose:
            assert "| plasticity/" in printed and "lr_factor" in printed and "|    elr" in printed, printed
            assert "param_norm" not in printed  # per-layer series stay out of the console table
        else:
            assert "| plasticity/" not in printed
    assert f"plasticity/{layer}" in tensorboard_tags(tmp_path / "tb")

    folder = tmp_path / "all"
    model.set_logger(configure(str(folder), FORMATS))
    model.diagnostics_freq = 1  # the diagnostics' per-layer series must stay off the console too
    model.learn(case.steps, log_interval=1, reset_num_timesteps=False)
    printed = capsys.readouterr().out
    assert "| plasticity/" in printed and "param_norm" not in printed
    log_txt = (folder / "log.txt").read_text()
    assert "lr_factor" in log_txt and "param_norm" not in log_txt
    header = next(csv.reader((folder / "progress.csv").open()))
    assert {"plasticity/lr_factor", f"plasticity/{layer}"} <= set(header)
    assert any(key.startswith("plasticity/dormant_ratio") for key in header)
    rows = [json.loads(line) for line in (folder / "progress.json").read_text().splitlines()]
    assert any(f"plasticity/{layer}" in row for row in rows)
    assert {f"plasticity/{layer}", "plasticity/lr_factor"} <= tensorboard_tags(folder)


# -- net_arch ---------------------------------------------------------------------------------------
def odd_net_archs(algo) -> list:
    """[] and an uneven layout in the form the algorithm's policy takes (from its registry record)."""
    if algo.on_policy:
        return [[], dict(pi=[8], vf=[16, 8])]
    return [[], dict(pi=[8], qf=[16, 8])] if algo.needs_actions else [[], [8]]


@pytest.mark.parametrize("arch", [0, 1], ids=["empty", "uneven"])
@presets
@cases
def test_odd_net_archs_train_measure_and_project(case, preset, arch):
    net_arch = odd_net_archs(case.plastic.algo())[arch]
    config = PRESETS[preset]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = case.make(preset, seed=0, diagnostics_freq=1, policy_kwargs=dict(net_arch=net_arch))
    nothing_to_project = [str(w.message) for w in caught if "nothing there is scale-invariant" in str(w.message)]
    hidden_free = net_arch == [] and case.policy == "MlpPolicy"  # a CNN extractor has nonlinearities to normalize
    assert len(nothing_to_project) == (1 if config.project and hidden_free else 0), nothing_to_project
    model.learn(case.steps)
    metrics = model.plasticity.metrics()
    assert any(k.startswith("elr/") and np.isfinite(v) and v > 0 for k, v in metrics.items())  # still measured
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())
    projected = [n for elr in model.plasticity.elrs.values() for n in elr.projected_names]
    assert bool(projected) == (config.project and not hidden_free)
    if config.project:
        projected_at_init(model)
    if case.policy == "CnnPolicy" and config.norm is not None:
        assert any(".cnn." in n or n.startswith("cnn.") or "features_extractor" in n for n in projected)


def test_sac_with_sde_keeps_its_clipped_mean_head_unnormalized():
    from plastic_rl import PlasticSAC

    model = PlasticSAC(short_pendulum(), use_sde=True, learning_starts=10, policy_kwargs=dict(net_arch=[16]))
    mu = model.actor.mu
    assert [type(m).__name__ for m in mu] == ["Linear", "Hardtanh"]
    model.learn(30)


# -- callbacks, predict, determinism ----------------------------------------------------------------
class Counter(BaseCallback):
    def __init__(self):
        super().__init__()
        self.calls = {"training_start": 0, "rollout_start": 0, "rollout_end": 0, "step": 0, "training_end": 0}

    def _on_training_start(self):
        self.calls["training_start"] += 1

    def _on_rollout_start(self):
        self.calls["rollout_start"] += 1

    def _on_rollout_end(self):
        self.calls["rollout_end"] += 1

    def _on_step(self):
        self.calls["step"] += 1
        return True

    def _on_training_end(self):
        self.calls["training_end"] += 1


def learn_with_callbacks(case, preset, folder):
    model = case.make(preset, seed=3)
    counter = Counter()
    checkpoints = CheckpointCallback(save_freq=case.steps // 2, save_path=str(folder), name_prefix="ck")
    eval_env = case.plastic._wrap_env(Monitor(case.make_env()))  # SB3's wrapping (image transpose) for both
    evaluation = EvalCallback(eval_env, eval_freq=case.steps // 2, n_eval_episodes=1, verbose=0)
    model.learn(case.steps, callback=[counter, checkpoints, evaluation])
    return model, counter, evaluation


@presets
@cases
def test_callbacks_predict_and_same_seed_determinism(tmp_path, case, preset):
    a, counter, evaluation = learn_with_callbacks(case, preset, tmp_path / "a")
    b, _, _ = learn_with_callbacks(case, preset, tmp_path / "b")
    assert same_parameters(a, b)  # same seed, same callbacks: the same agent

    calls = counter.calls
    assert calls["training_start"] == calls["training_end"] == 1
    assert calls["step"] == a.num_timesteps >= case.steps  # one env: one call per env step
    assert calls["rollout_start"] == calls["rollout_end"] >= 1
    assert len(evaluation.evaluations_results) == 0 or evaluation.last_mean_reward > -np.inf
    assert evaluation.n_calls == calls["step"]
    saved = sorted((tmp_path / "a").glob("ck_*.zip"))
    assert saved, "CheckpointCallback wrote nothing"
    assert case.plastic.load(saved[-1]).num_timesteps <= a.num_timesteps

    obs, _, _ = batch(a, n=5)
    single, _ = a.predict(obs[0], deterministic=True)
    assert a.action_space.contains(single.astype(a.action_space.dtype) if a.action_space.shape else int(single))
    many, _ = a.predict(obs, deterministic=True)
    assert many.shape == (5, *a.action_space.shape)
    assert np.array_equal(many, b.predict(obs, deterministic=True)[0])


# -- SB3's own warnings ------------------------------------------------------------------------------
ON_POLICY = [c for c in AGENT_CASES if hasattr(c.sb3, "_maybe_recommend_cpu")]


@pytest.mark.parametrize("case", ON_POLICY, ids=[c.id for c in ON_POLICY])
def test_sb3s_own_warnings_still_fire(case):
    """PPO's advice to keep MLP policies on the CPU keys on SB3's policy class; ours extend it."""
    for cls in (case.sb3, case.plastic):
        model = case.make_sb3() if cls is case.sb3 else case.make()
        model.device = torch.device("cuda")  # this machine has no GPU: ask the check directly
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model._maybe_recommend_cpu()
        on_gpu = [w for w in caught if "on the GPU" in str(w.message)]
        assert len(on_gpu) == (1 if case.policy == "MlpPolicy" else 0), cls


# -- SB3's env checker ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make_env",
    [TinyImageEnv, lambda: TinyImageEnv(continuous=True), lambda: CartPolePhysics(gym.make("CartPole-v1"), length=1.0, force_mag=5.0)],
    ids=["tiny-image", "tiny-image-continuous", "cartpole-physics"],
)
def test_sb3s_env_checker_accepts_our_envs(make_env):
    """check_env takes single gymnasium envs: plastic_rl's own (CartPolePhysics) and the test cases' own."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env reports problems as warnings
        check_env(make_env())
