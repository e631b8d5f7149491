"""Drop-in habits of SB3 users, on every agent and preset (helpers.AGENT_CASES, issue 22):

- a policy compiled with ``torch.compile`` saves and loads as in SB3 (SB3's GH#2137);
- ``load(path, env=env, policy_kwargs=...)`` with the policy_kwargs the model was trained with;
- a user's own subclass of an SB3 policy class: normalized under the normalizing presets, its overrides run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sb3_contrib.qrdqn import policies as qrdqn
from sb3_contrib.tqc import policies as tqc
from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy
from stable_baselines3.dqn import policies as dqn
from stable_baselines3.sac import policies as sac
from stable_baselines3.td3 import policies as td3

from plastic_rl import PlasticDQN
from plastic_rl.agents import PRESETS
from plastic_rl.agents import base as agent_base
from plastic_rl.layers import architecture

from helpers import AGENT_CASES, PRESET_NAMES, same_parameters

cases = pytest.mark.parametrize("case", AGENT_CASES, ids=[c.id for c in AGENT_CASES])
presets = pytest.mark.parametrize("preset", PRESET_NAMES)


def has_norm(module) -> bool:
    return any(isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.RMSNorm)) for m in module.modules())


def observations(model, n: int = 8) -> np.ndarray:
    model.observation_space.seed(0)
    return np.stack([model.observation_space.sample() for _ in range(n)])


# -- torch.compile ---------------------------------------------------------------------------------
@presets
@cases
def test_a_compiled_policy_saves_and_loads_as_in_sb3(tmp_path, case, preset):
    model = case.make(preset, seed=0)
    model.policy = torch.compile(model.policy)  # SB3's test_save_load (GH#2137): no forward pass needed
    model.save(tmp_path / "compiled.zip")
    loaded = case.plastic.load(tmp_path / "compiled.zip")
    assert type(loaded.policy) is type(model.policy._orig_mod)  # as SB3: the loaded policy is not compiled
    assert architecture(loaded.policy) == architecture(model.policy._orig_mod)
    saved, back = model.policy._orig_mod.state_dict(), loaded.policy.state_dict()  # SB3 saves them by their own names
    assert saved.keys() == back.keys() and all(torch.equal(saved[k], back[k]) for k in saved)


def test_a_zip_that_recorded_the_compiled_wrapper_loads(tmp_path, monkeypatch):
    """Zips saved before the fix recorded the wrapper's architecture (``.: OptimizedModule()``, ``_orig_mod...``)."""
    case = AGENT_CASES[0]
    model = case.make("elr", seed=0)
    model.policy = torch.compile(model.policy)
    monkeypatch.setattr(agent_base, "uncompiled", lambda module: module)  # the old save
    model.save(tmp_path / "old.zip")
    monkeypatch.undo()
    loaded = case.plastic.load(tmp_path / "old.zip")
    assert architecture(loaded.policy) == architecture(model.policy._orig_mod)


# -- load(path, env=..., policy_kwargs=...) -----------------------------------------------------------
@presets
@cases
def test_load_takes_the_policy_kwargs_the_model_was_trained_with(tmp_path, case, preset):
    trained_with = {"net_arch": [32]}
    model = case.make(preset, seed=0, policy_kwargs=dict(trained_with))
    assert model.policy_kwargs == trained_with  # what the agent adds to build the policy is not the user's
    model.save(tmp_path / "m.zip")

    loaded = case.plastic.load(tmp_path / "m.zip", env=case.make_env(), policy_kwargs=dict(trained_with))
    assert architecture(loaded.policy) == architecture(model.policy)
    assert same_parameters(model, loaded)
    assert has_norm(loaded.policy) == (PRESETS[preset].norm is not None)
    loaded.learn(case.steps)  # continues training

    other = {"net_arch": [64]}  # a genuinely different policy: refused as SB3 refuses it
    with pytest.raises(ValueError) as refused:
        case.plastic.load(tmp_path / "m.zip", env=case.make_env(), policy_kwargs=other)
    assert str(refused.value) == (
        f"The specified policy kwargs do not equal the stored policy kwargs.Stored kwargs: {trained_with}, specified kwargs: {other}"
    )


def test_the_rebuilt_policy_keeps_what_the_algorithm_added_to_its_kwargs(tmp_path):
    """SB3's A2C builds RMSprop by writing it into the policy kwargs: the model keeps it, load rebuilds it."""
    from plastic_rl import PlasticA2C

    a2c = next(c for c in AGENT_CASES if c.plastic is PlasticA2C)
    model = a2c.make("elr", policy_kwargs={"net_arch": [32]}, rms_prop_eps=1e-3)
    assert isinstance(model.policy.optimizer, torch.optim.RMSprop) and model.policy.optimizer.defaults["eps"] == 1e-3
    model.save(tmp_path / "a2c.zip")
    loaded = PlasticA2C.load(tmp_path / "a2c.zip", policy_kwargs={"net_arch": [32]})
    assert isinstance(loaded.policy.optimizer, torch.optim.RMSprop) and loaded.policy.optimizer.defaults["eps"] == 1e-3
    assert loaded.policy.optimizer.state_dict()["param_groups"] == model.policy.optimizer.state_dict()["param_groups"]


# -- a user's own policy class ------------------------------------------------------------------------
PREDICTED: list[str] = []  # every call of the users' _predict override
PINNED_VALUE = 7.0


class Pinned:
    """A user's override (SB3's docs subclass a policy and override ``forward``/``_predict``): the actions
    are pinned to 0 (the middle of a [-a, a] box once SB3 unscales them), and every call is counted."""

    def _predict(self, observation, deterministic=False):
        actions = super()._predict(observation, deterministic)  # type: ignore[misc]
        PREDICTED.append(type(self).__name__)
        return torch.zeros_like(actions)


class PinnedValue(Pinned):
    """An actor-critic one also pins the value in ``forward`` (what PPO's rollouts store)."""

    def forward(self, obs, deterministic=False):
        actions, values, log_prob = super().forward(obs, deterministic)  # type: ignore[misc]
        return actions, torch.full_like(values, PINNED_VALUE), log_prob


# Module-level classes, as a user's would be: SB3's zip refers to them by name.
class UserActorCriticPolicy(PinnedValue, ActorCriticPolicy): ...


class UserActorCriticCnnPolicy(PinnedValue, ActorCriticCnnPolicy): ...


class UserDQNPolicy(Pinned, dqn.DQNPolicy): ...


class UserDQNCnnPolicy(Pinned, dqn.CnnPolicy): ...


class UserSACPolicy(Pinned, sac.SACPolicy): ...


class UserSACCnnPolicy(Pinned, sac.CnnPolicy): ...


class UserTD3Policy(Pinned, td3.TD3Policy): ...


class UserTD3CnnPolicy(Pinned, td3.CnnPolicy): ...


class UserQRDQNPolicy(Pinned, qrdqn.QRDQNPolicy): ...


class UserQRDQNCnnPolicy(Pinned, qrdqn.CnnPolicy): ...


class UserTQCPolicy(Pinned, tqc.TQCPolicy): ...


class UserTQCCnnPolicy(Pinned, tqc.CnnPolicy): ...


USER_POLICIES = [UserActorCriticPolicy, UserActorCriticCnnPolicy, UserDQNPolicy, UserDQNCnnPolicy,
                 UserSACPolicy, UserSACCnnPolicy, UserTD3Policy, UserTD3CnnPolicy,
                 UserQRDQNPolicy, UserQRDQNCnnPolicy, UserTQCPolicy, UserTQCCnnPolicy]  # fmt: skip


def user_policy(case) -> type:
    """The user's subclass of the SB3 class the case's alias names (the most specific one that fits)."""
    sb3 = case.sb3.policy_aliases[case.policy]
    return next(cls for cls in USER_POLICIES if cls.__bases__[1] is sb3)


@presets
@cases
def test_a_users_policy_subclass_is_normalized_and_its_overrides_run(tmp_path, case, preset):
    user = user_policy(case)
    model = case.plastic(user, case.make_env(), plasticity=preset, seed=0, **case.agent_kwargs())
    assert isinstance(model.policy, user)
    assert has_norm(model.policy) == (PRESETS[preset].norm is not None)
    obs = observations(model)
    PREDICTED.clear()
    assert not np.any(model.predict(obs, deterministic=True)[0])  # pinned to 0
    assert len(PREDICTED) == 1  # the user's override ran, once
    model.learn(case.steps)
    if case.plastic.algo().on_policy:  # PPO's and A2C's rollouts store what forward() returned
        assert np.all(model.rollout_buffer.values == PINNED_VALUE)

    model.save(tmp_path / "user.zip")
    loaded = case.plastic.load(tmp_path / "user.zip", env=case.make_env())
    assert isinstance(loaded.policy, user)
    assert architecture(loaded.policy) == architecture(model.policy)
    assert same_parameters(model, loaded)
    PREDICTED.clear()
    assert not np.any(loaded.predict(obs, deterministic=True)[0]) and len(PREDICTED) == 1
    loaded.learn(case.steps)


@cases
def test_a_policy_of_another_kind_is_refused_in_one_line(case):
    on_policy = case.plastic.algo().on_policy
    wrong, found = (UserDQNPolicy, "DQNPolicy") if on_policy else (UserActorCriticPolicy, "ActorCriticPolicy")
    wants = {"PlasticPPO": "ActorCriticPolicy", "PlasticA2C": "ActorCriticPolicy", "PlasticDQN": "DQNPolicy",
             "PlasticSAC": "SACPolicy", "PlasticTD3": "TD3Policy", "PlasticQRDQN": "QRDQNPolicy",
             "PlasticTQC": "TQCPolicy"}[case.plastic.__name__]  # fmt: skip
    with pytest.raises(ValueError) as refused:
        case.plastic(wrong, case.make_env(), plasticity="elr", **case.agent_kwargs())
    assert str(refused.value) == (
        f"plasticity norm='layer' cannot normalize the networks of {wrong!r}: it extends {found}, "
        f"not {wants} ({case.plastic.__name__}'s policies) nor a plastic_rl policy"
    )


class OwnQNet(dqn.DQNPolicy):
    """Builds its Q-networks itself: plastic_rl cannot rebuild them normalized."""

    def make_q_net(self):
        return super().make_q_net()


def test_a_policy_that_builds_its_networks_itself_is_refused_in_one_line():
    with pytest.raises(ValueError) as refused:
        PlasticDQN(OwnQNet, "CartPole-v1", plasticity="elr")
    assert str(refused.value) == (
        f"plasticity norm='layer' cannot normalize the networks of {OwnQNet!r}: it overrides make_q_net, "
        "which plastic_rl replaces to build them normalized (plasticity='none' takes it as it is)"
    )
    PlasticDQN(OwnQNet, "CartPole-v1", plasticity="none")  # SB3's own networks: taken as they are
