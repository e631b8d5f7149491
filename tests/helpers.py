"""Test fixtures shared by several test modules (pytest puts this folder on sys.path).

``AGENT_CASES`` is the one list of (agent, policy, env) cases the agent tests run over, crossed with
every preset (``PRESET_NAMES``): a behaviour checked for one agent is checked for all of them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import QRDQN, TQC  # the test extra installs it; the package itself does not need it
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3

from plastic_rl import PlasticA2C, PlasticDQN, PlasticPPO, PlasticQRDQN, PlasticSAC, PlasticTD3, PlasticTQC
from plastic_rl.agents import PRESETS
from plastic_rl.elr import SHRINK_MODES


def same_parameters(a, b) -> bool:
    """Two agents' policies hold bit-identical parameters under the same names."""
    sa, sb = a.policy.state_dict(), b.policy.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def projected_at_init(model) -> None:
    """Every layer an agent projects sits at its initial norm: after every step with ``project=True``; with
    ``project="on-rewarm"`` (or ``"from-rewarm"`` before its first re-warm) the norms have moved while training, and
    a shrink back (done here) brings them back."""
    for elr in model.plasticity.elrs.values():
        if elr.project in SHRINK_MODES and not elr.projecting:
            norms = elr._norms(elr._flat.views[elr._first_projected : elr._n_measured])
            initial = elr.init_norms[: elr._n_measured - elr._first_projected]
            assert elr.steps == 0 or not torch.allclose(norms, initial, rtol=1e-7, atol=0), (
                f"project={elr.project!r} projected while training"
            )
            elr.restore_norms()
        norms = dict(zip(elr._flat.names, elr._norms(elr._flat.views).tolist()))
        for name, init in zip(elr.projected_names, elr.init_norms.tolist()):
            assert norms[name] == pytest.approx(init, rel=1e-5), name


class TinyImageEnv(gym.Env):
    """36x36x3 uint8 frames (NatureCNN's smallest input), 20-step episodes; seeded by reset().

    Two discrete actions, or (``continuous=True``) one action in [-1, 1] for SAC's CnnPolicy.
    """

    observation_space = gym.spaces.Box(0, 255, (36, 36, 3), dtype=np.uint8)

    def __init__(self, continuous: bool = False):
        self.action_space = gym.spaces.Box(-1, 1, (1,), dtype=np.float32) if continuous else gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.integers(0, 256, (36, 36, 3), dtype=np.uint8), {}

    def step(self, action):
        self.t += 1
        reward = float(np.asarray(action).sum())
        return self.np_random.integers(0, 256, (36, 36, 3), dtype=np.uint8), reward, False, self.t >= 20, {}


def short_pendulum() -> gym.Env:
    """Pendulum with 50-step episodes: SB3's off-policy agents log per episode, so tests see several dumps."""
    return gym.make("Pendulum-v1", max_episode_steps=50)


PPO_SMALL = dict(n_steps=32, batch_size=32, n_epochs=1)
OFF_POLICY_SMALL = dict(learning_starts=40, buffer_size=1_000, batch_size=16, policy_kwargs=dict(net_arch=[16, 16]))


@dataclass(frozen=True)
class AgentCase:
    """One agent on one env with one policy, and what a test needs to know about it."""

    id: str
    plastic: type
    sb3: type
    policy: str
    make_env: Callable[[], Any]
    kwargs: dict = field(default_factory=dict)
    steps: int = 128  # a learn() long enough for two logger dumps and a few gradient steps
    sub_networks: tuple[str, ...] = ()  # attributes of the algorithm SB3 can save()/load() on their own

    def agent_kwargs(self, **overrides: Any) -> dict:
        """A fresh copy of the case's keywords (SB3 writes into the policy_kwargs it is given) plus overrides."""
        kwargs = {**copy.deepcopy(self.kwargs), **overrides}
        if "policy_kwargs" in self.kwargs and "policy_kwargs" in overrides:
            kwargs["policy_kwargs"] = {**copy.deepcopy(self.kwargs["policy_kwargs"]), **overrides["policy_kwargs"]}
        return kwargs

    def make(self, plasticity: str = "elr", **overrides: Any):
        return self.plastic(self.policy, self.make_env(), plasticity=plasticity, **self.agent_kwargs(**overrides))

    def make_sb3(self, **overrides: Any):
        return self.sb3(self.policy, self.make_env(), **self.agent_kwargs(**overrides))


AGENT_CASES = [
    AgentCase("ppo-mlp", PlasticPPO, PPO, "MlpPolicy", lambda: gym.make("CartPole-v1"), PPO_SMALL, 64, ("policy",)),
    AgentCase("ppo-cnn", PlasticPPO, PPO, "CnnPolicy", TinyImageEnv, PPO_SMALL, 64, ("policy",)),
    AgentCase("a2c-mlp", PlasticA2C, A2C, "MlpPolicy", lambda: gym.make("CartPole-v1"), dict(n_steps=8), 64, ("policy",)),
    AgentCase("a2c-cnn", PlasticA2C, A2C, "CnnPolicy", TinyImageEnv, dict(n_steps=8), 32, ("policy",)),
    AgentCase(
        "dqn-mlp",
        PlasticDQN,
        DQN,
        "MlpPolicy",
        lambda: gym.make("CartPole-v1"),
        dict(OFF_POLICY_SMALL, train_freq=4),
        200,
        ("policy", "q_net", "q_net_target"),
    ),  # fmt: skip
    AgentCase(
        "dqn-cnn",
        PlasticDQN,
        DQN,
        "CnnPolicy",
        TinyImageEnv,
        dict(OFF_POLICY_SMALL, train_freq=4, buffer_size=200),
        100,
        ("policy", "q_net", "q_net_target"),
    ),  # fmt: skip
    AgentCase(
        "sac-mlp", PlasticSAC, SAC, "MlpPolicy", short_pendulum, OFF_POLICY_SMALL, 100, ("policy", "actor", "critic", "critic_target")
    ),  # fmt: skip
    AgentCase(
        "sac-cnn",
        PlasticSAC,
        SAC,
        "CnnPolicy",
        lambda: TinyImageEnv(continuous=True),
        dict(OFF_POLICY_SMALL, buffer_size=200, train_freq=4),
        60,
        ("policy", "actor", "critic", "critic_target"),
    ),  # fmt: skip
    AgentCase(
        "td3-mlp",
        PlasticTD3,
        TD3,
        "MlpPolicy",
        short_pendulum,
        dict(OFF_POLICY_SMALL, policy_delay=1),
        100,
        ("policy", "actor", "actor_target", "critic", "critic_target"),
    ),  # fmt: skip
    AgentCase(
        "td3-cnn",
        PlasticTD3,
        TD3,
        "CnnPolicy",
        lambda: TinyImageEnv(continuous=True),
        dict(OFF_POLICY_SMALL, buffer_size=200, train_freq=4),
        60,
        ("policy", "actor", "critic"),
    ),  # fmt: skip
    # sb3-contrib's: QR-DQN (a DQN whose network has n_actions * n_quantiles outputs), TQC (SAC with quantile critics)
    AgentCase(
        "qrdqn-mlp",
        PlasticQRDQN,
        QRDQN,
        "MlpPolicy",
        lambda: gym.make("CartPole-v1"),
        dict(OFF_POLICY_SMALL, train_freq=4),
        200,
        ("policy", "quantile_net", "quantile_net_target"),
    ),  # fmt: skip
    AgentCase(
        "qrdqn-cnn",
        PlasticQRDQN,
        QRDQN,
        "CnnPolicy",
        TinyImageEnv,
        dict(OFF_POLICY_SMALL, train_freq=4, buffer_size=200),
        100,
        ("policy", "quantile_net", "quantile_net_target"),
    ),  # fmt: skip
    AgentCase(
        "tqc-mlp", PlasticTQC, TQC, "MlpPolicy", short_pendulum, OFF_POLICY_SMALL, 100, ("policy", "actor", "critic", "critic_target")
    ),  # fmt: skip
    AgentCase(
        "tqc-cnn",
        PlasticTQC,
        TQC,
        "CnnPolicy",
        lambda: TinyImageEnv(continuous=True),
        dict(OFF_POLICY_SMALL, buffer_size=200, train_freq=4),
        60,
        ("policy", "actor", "critic", "critic_target"),
    ),  # fmt: skip
]
# The ELR family; the intervention presets run SB3's own networks like "none" and have their own tests
# (tests/test_agent_interventions.py).
PRESET_NAMES = ["none", "nap", "elr", "elr-cusum", "norm-rewarm"]
assert set(PRESET_NAMES) <= set(PRESETS)
