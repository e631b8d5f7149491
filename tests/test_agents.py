"""PlasticPPO / PlasticDQN / PlasticSAC: SB3 compatibility, presets, logging, save/load."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.env_util import make_vec_env

from plastic_rl import PlasticDQN, PlasticPPO, PlasticSAC
from plastic_rl.agents import PRESETS, PlasticityConfig
from plastic_rl.agents.policies import FUSED_DEFAULT, PlasticActorCriticCnnPolicy, PlasticActorCriticPolicy
from plastic_rl.layers import iter_blocks

from helpers import AGENT_CASES, PRESET_NAMES, TinyImageEnv, projected_at_init, same_parameters

PPO_KW = dict(n_steps=128, batch_size=64, n_epochs=2)
DQN_KW = dict(learning_starts=100, train_freq=4, target_update_interval=100, buffer_size=2_000)
SAC_KW = dict(learning_starts=100, buffer_size=2_000, policy_kwargs=dict(net_arch=[32, 32]))


# -- call forms ------------------------------------------------------------------------------------
def test_env_first_and_sb3_call_forms(tmp_path):
    env_first = PlasticPPO("CartPole-v1", **PPO_KW)
    assert isinstance(env_first.policy, PlasticActorCriticPolicy)
    sb3_form = PlasticPPO("MlpPolicy", "CartPole-v1", plasticity="elr", **PPO_KW)
    assert type(sb3_form.policy) is type(env_first.policy)
    env_object = PlasticDQN(gym.make("CartPole-v1"), **DQN_KW)
    assert env_object.get_env().num_envs == 1
    for model in (env_first, sb3_form):
        model.save(tmp_path / "m.zip")
        loaded = PlasticPPO.load(tmp_path / "m.zip")
        assert same_parameters(model, loaded)
        assert loaded.env_id == "CartPole-v1"  # recorded for diagnose
    assert env_object.env_id == "CartPole-v1"
    assert PlasticPPO(TinyImageEnv(), n_steps=32, batch_size=32).env_id is None


def test_policy_is_chosen_from_the_observation_space():
    assert isinstance(PlasticPPO(TinyImageEnv(), n_steps=32, batch_size=32).policy, PlasticActorCriticCnnPolicy)


def test_cnn_policy_on_an_image_env_trains_normalized():
    model = PlasticPPO("CnnPolicy", TinyImageEnv(), n_steps=32, batch_size=32, n_epochs=1, seed=0)
    cnn = model.policy.features_extractor.cnn
    assert [type(m).__name__ for m in cnn][:3] == ["Conv2d", "GroupNorm", "ReLU"]
    model.learn(64)
    projected_at_init(model)
    assert any(k.startswith("elr/features_extractor.cnn.0") for k in model.plasticity.metrics())


# -- presets ---------------------------------------------------------------------------------------
cases = pytest.mark.parametrize("case", AGENT_CASES, ids=[c.id for c in AGENT_CASES])


@pytest.mark.parametrize("preset", PRESET_NAMES)
@cases
def test_every_preset_trains(case, preset):
    model = case.make(preset, seed=0).learn(case.steps)
    config = PRESETS[preset]
    metrics = model.plasticity.metrics()
    assert any(k.startswith("elr/") and v > 0 for k, v in metrics.items())
    norms = [b for elr_net in model.plasticity.networks.values() for b in iter_blocks(elr_net.module) if b.norm is not None]
    assert bool(norms) == (config.norm is not None)
    if config.project:
        projected_at_init(model)
    if config.schedule is None:
        assert metrics["lr_factor"] == 1.0
    else:
        assert metrics["lr_factor"] != 1.0  # inside the first warm-up


@cases
def test_none_is_exactly_the_sb3_parent(case):
    a = case.make_sb3(seed=3).learn(case.steps)
    b = case.make("none", diagnostics_freq=1, seed=3).learn(case.steps)
    assert same_parameters(a, b)
    assert b.plasticity.metrics()  # it still measured the ELR


def test_fields_override_presets():
    model = PlasticPPO("CartPole-v1", plasticity={"preset": "elr", "peak": 3.0, "warmup": 10, "norm": "rms"}, **PPO_KW)
    assert model.plasticity_config == PlasticityConfig(peak=3.0, warmup=10, norm="rms")
    assert type(model.policy.mlp_extractor.policy_net[1]).__name__ == "RMSNorm"
    assert PlasticPPO("CartPole-v1", plasticity=PlasticityConfig(schedule="cusum"), **PPO_KW).plasticity_config.schedule == "cusum"


def optimizers(model):
    policy = model.policy
    return [policy.actor.optimizer, policy.critic.optimizer] if hasattr(policy, "actor") else [policy.optimizer]


@cases
def test_normalized_policies_use_the_fused_optimizer_unless_told_otherwise(tmp_path, case):
    model = case.make("elr")
    if not all(isinstance(opt, FUSED_DEFAULT) for opt in optimizers(model)):  # A2C's RMSprop: foreach, else as SB3 builds it
        assert optimizers(model)[0].defaults == {**optimizers(case.make("none"))[0].defaults, "foreach": True}
        return
    assert all(opt.defaults["fused"] is True for opt in optimizers(model))
    if case.plastic is PlasticPPO:  # SB3's own optimizer default (eps=1e-5 for PPO's Adam) is kept
        assert model.policy.optimizer.defaults["eps"] == 1e-5
    model.learn(case.steps)
    model.save(tmp_path / "m.zip")
    assert all(opt.defaults["fused"] is True for opt in optimizers(case.plastic.load(tmp_path / "m.zip")))
    assert all(not opt.defaults["fused"] for opt in optimizers(case.make("none")))
    told = case.make("elr", policy_kwargs={"optimizer_kwargs": {"fused": False}})
    assert all(not opt.defaults["fused"] and opt.defaults["foreach"] is None for opt in optimizers(told))


# -- the schedule and SB3's own lr -----------------------------------------------------------------
class Rewarm(BaseCallback):
    def __init__(self, at):
        super().__init__()
        self.at, self.factors = at, []

    def _on_rollout_start(self):
        self.factors.append(self.model.plasticity.lr_factor)
        if self.model.num_timesteps == self.at:
            self.model.plasticity.rewarm()

    def _on_step(self):
        return True


def test_a_callback_can_rewarm():
    cb = Rewarm(at=512)
    model = PlasticPPO("CartPole-v1", plasticity={"warmup": 40, "period": 400}, n_steps=128, batch_size=128, n_epochs=4, seed=0)
    model.learn(1024, callback=cb)
    # 4 optimizer steps per rollout: factors climb through the warm-up, then restart after the rewarm
    first = PlasticityConfig(warmup=40, period=400).make_schedule().factor()
    assert cb.factors[0] == pytest.approx(first)
    assert cb.factors[4] > cb.factors[0]
    steps_since = (1024 - 512) // 128 * 4
    assert model.plasticity.elrs["policy"].schedule.t == steps_since


def test_the_factor_multiplies_sb3s_learning_rate_schedule():
    seen = []
    model = PlasticPPO("CartPole-v1", plasticity={"warmup": 10, "period": 100, "peak": 2.0}, learning_rate=lambda p: 1e-3 * p, **PPO_KW)
    model.policy.optimizer.register_step_pre_hook(lambda o, a, k: seen.append(o.param_groups[0]["lr"]))
    factors = []
    model.policy.optimizer.register_step_pre_hook(lambda o, a, k: factors.append(model.plasticity.lr_factor))
    model.learn(256)
    # hooks run in registration order: ELR's hook (applies the factor) ran first
    lr_owner = model.policy.optimizer.param_groups[0]["lr"]
    assert lr_owner == pytest.approx(model.lr_schedule(model._current_progress_remaining))  # SB3's value is back
    ratios = [lr / f for lr, f in zip(seen, factors)]
    assert all(r <= 1e-3 + 1e-12 for r in ratios) and max(factors) > 1.0


# -- logging ---------------------------------------------------------------------------------------
def test_tensorboard_gets_the_plasticity_tags(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = PlasticPPO("CartPole-v1", tensorboard_log=str(tmp_path), diagnostics_freq=1, **PPO_KW)
    model.learn(512)
    run = tmp_path / "PlasticPPO_1"
    assert run.is_dir()
    events = EventAccumulator(str(run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in (
        "plasticity/lr_factor",
        "plasticity/elr/mlp_extractor.policy_net.0",
        "plasticity/param_norm/mlp_extractor.value_net.2",
        "plasticity/dormant_ratio",
        "plasticity/dormant_ratio/mlp_extractor.policy_net.0",
        "plasticity/saturated_ratio/mlp_extractor.policy_net.2",
        "plasticity/srank/mlp_extractor.value_net.0",
        "plasticity/effective_rank",
    ):
        assert tag in tags, tag
    assert "plasticity/dead_ratio" not in tags  # Tanh: "dead" means nothing


def test_dqn_and_sac_diagnostics_keys():
    dqn = PlasticDQN("CartPole-v1", diagnostics_freq=1, **DQN_KW).learn(300)
    keys = dqn.plasticity.measure(dqn._diagnostic_inputs())
    assert "dead_ratio/q_net.0" in keys and "fau" in keys  # ReLU network
    sac = PlasticSAC("Pendulum-v1", diagnostics_freq=1, **SAC_KW).learn(150)
    keys = sac.plasticity.measure(sac._diagnostic_inputs())
    assert "dormant_ratio/critic.qf0.0" in keys and "dormant_ratio/actor.latent_pi.0" in keys
    assert "dormant_ratio/critic" in keys and "elr/actor.mu" in sac.plasticity.metrics()


# -- save / load -----------------------------------------------------------------------------------
def rng_state():
    return torch.get_rng_state(), np.random.get_state()


def test_save_load_continues_exactly_like_an_uninterrupted_run(tmp_path):
    kwargs = dict(plasticity={"preset": "elr-cusum", "warmup": 20, "decay": 100}, n_steps=128, batch_size=64, n_epochs=2, seed=7)
    straight = PlasticPPO("CartPole-v1", **kwargs)
    straight.learn(1024)
    straight.learn(1024, reset_num_timesteps=False)

    first = PlasticPPO("CartPole-v1", **kwargs)
    first.learn(1024)
    env = first.get_env()
    first.save(tmp_path / "half.zip")
    state = rng_state()  # loading builds fresh networks, which draws from torch's RNG: put it back
    resumed = PlasticPPO.load(tmp_path / "half.zip", env=env, force_reset=False)
    torch.set_rng_state(state[0])
    np.random.set_state(state[1])
    assert resumed.plasticity.state_dict() == first.plasticity.state_dict()
    resumed.learn(1024, reset_num_timesteps=False)
    assert same_parameters(straight, resumed)
    assert resumed.plasticity.state_dict() == straight.plasticity.state_dict()


@pytest.mark.parametrize("preset", PRESET_NAMES)
@cases
def test_save_load_keeps_the_plasticity_state(tmp_path, case, preset):
    model = case.make(preset, diagnostics_freq=5, seed=0).learn(case.steps)
    model.save(tmp_path / "m.zip")
    loaded = case.plastic.load(tmp_path / "m.zip")
    assert loaded.plasticity.state_dict() == model.plasticity.state_dict()
    assert loaded.plasticity_config == model.plasticity_config and loaded.diagnostics_freq == 5
    assert same_parameters(model, loaded)
    loaded.set_env(model.get_env())
    loaded.learn(case.steps // 2, reset_num_timesteps=False)
    projected_at_init(loaded)


@cases
def test_a_vanilla_sb3_zip_loads_as_plasticity_none(tmp_path, case):
    sb3 = case.make_sb3(seed=0).learn(case.steps)
    sb3.save(tmp_path / "sb3.zip")
    model = case.plastic.load(tmp_path / "sb3.zip", env=sb3.get_env())
    assert model.plasticity_config == PRESETS["none"]
    assert same_parameters(model, sb3)
    obs = np.stack([model.observation_space.sample() for _ in range(16)])
    assert np.array_equal(model.predict(obs, deterministic=True)[0], sb3.predict(obs, deterministic=True)[0])
    model.learn(case.steps // 2, reset_num_timesteps=False)
    assert model.plasticity.metrics()["lr_factor"] == 1.0
    model.save(tmp_path / "ours.zip")  # and from then on it is one of ours
    assert case.plastic.load(tmp_path / "ours.zip").plasticity_config == PRESETS["none"]


def test_sb3_api_keeps_working(tmp_path):
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = PlasticPPO("MlpPolicy", env, **PPO_KW)
    model.learn(512, callback=CheckpointCallback(256, str(tmp_path), name_prefix="ck"), progress_bar=True)
    assert sorted(p.name for p in tmp_path.glob("ck_*.zip"))
    params = model.get_parameters()
    other = PlasticPPO("MlpPolicy", env, **PPO_KW)
    other.set_parameters(params)
    assert same_parameters(model, other)
    action, _ = other.predict(env.reset(), deterministic=True)
    assert action.shape == (2,)
    other.set_env(make_vec_env("CartPole-v1", n_envs=2, seed=1))
    other.learn(256, reset_num_timesteps=False)
    projected_at_init(other)


# -- bad input -------------------------------------------------------------------------------------
def test_bad_plasticity_settings():
    with pytest.raises(ValueError, match="plasticity='elr2' is not a preset; accepted: none, nap, elr, elr-cusum"):
        PlasticPPO("CartPole-v1", plasticity="elr2")
    with pytest.raises(ValueError, match=r"plasticity fields \['peek'\] are unknown; accepted: preset, norm, affine, project"):
        PlasticPPO("CartPole-v1", plasticity={"peek": 2})
    with pytest.raises(ValueError, match="norm='batch' is not accepted"):
        PlasticPPO("CartPole-v1", plasticity={"norm": "batch"})
    with pytest.raises(ValueError, match="schedule='cosine' is not accepted; accepted: None, cyclic, cusum, on-demand"):
        PlasticPPO("CartPole-v1", plasticity={"schedule": "cosine"})
    with pytest.raises(ValueError, match="'MlpPolcy' is neither a policy"):
        PlasticPPO("MlpPolcy", "CartPole-v1")
    with pytest.raises(TypeError, match="got an environment twice"):
        PlasticPPO("CartPole-v1", "CartPole-v1")
    with pytest.raises(ValueError, match=r"diagnostics_freq=-1 must be an int >= 0 \(0 turns diagnostics off\)"):
        PlasticPPO("CartPole-v1", diagnostics_freq=-1)
    with pytest.raises(ValueError, match=r"diagnostics_batch=0 must be an int >= 1 \(diagnostics_freq=0 turns diagnostics off\)"):
        PlasticDQN("CartPole-v1", diagnostics_batch=0)  # a batch of 0 once measured the whole buffer ([-0:])
    with pytest.raises(ValueError, match=r"diagnostics_tau=1.0 is outside \[0, 1\)"):
        PlasticSAC("Pendulum-v1", diagnostics_tau=1.0)


def test_wrong_action_spaces_keep_sb3s_errors():
    with pytest.raises(AssertionError, match="only supports"):
        PlasticDQN("Pendulum-v1")
    with pytest.raises(AssertionError, match="only supports"):
        PlasticSAC("CartPole-v1")
