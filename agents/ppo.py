"""PlasticPPO: SB3's PPO with the ELR plasticity module."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from stable_baselines3 import PPO

from plastic_rl.agents.base import PlasticMixin, as_tensor, recent_rows
from plastic_rl.agents.controller import Network
from plastic_rl.agents.policies import (
    PlasticActorCriticCnnPolicy,
    PlasticActorCriticPolicy,
    PlasticMultiInputActorCriticPolicy,
)


def actor_critic_forward(policy, obs) -> Any:
    """Run the features extractor(s), both MLP branches and both heads once, sampling nothing."""
    features = policy.extract_features(obs)
    if policy.share_features_extractor:
        latent_pi, latent_vf = policy.mlp_extractor(features)
    else:
        pi_features, vf_features = features
        latent_pi = policy.mlp_extractor.forward_actor(pi_features)
        latent_vf = policy.mlp_extractor.forward_critic(vf_features)
    return policy.action_net(latent_pi), policy.value_net(latent_vf)


class PlasticPPO(PlasticMixin, PPO):
    """PPO whose policy keeps its plasticity: ``PlasticPPO("CartPole-v1", plasticity="elr").learn(100_000)``."""

    policy_aliases: ClassVar[dict[str, type]] = {
        "MlpPolicy": PlasticActorCriticPolicy,
        "CnnPolicy": PlasticActorCriticCnnPolicy,
        "MultiInputPolicy": PlasticMultiInputActorCriticPolicy,
    }

    def _plastic_networks(self) -> list[Network]:
        return [Network("policy", self.policy, self.policy.optimizer, actor_critic_forward, primary=True)]

    def _diagnostic_inputs(self) -> Any:
        buffer = self.rollout_buffer
        if buffer is None or not (buffer.full or buffer.pos):
            return None
        end, full = (buffer.buffer_size, True) if buffer.full else (buffer.pos, False)

        def recent(array):
            if buffer.generator_ready:  # after train(), SB3 has flattened (steps, envs, ...) to (steps * envs, ...)
                return array[-self.diagnostics_batch :]
            return recent_rows(array, end, self.diagnostics_batch, full)

        obs = buffer.observations
        batch = {k: recent(v) for k, v in obs.items()} if isinstance(obs, dict) else recent(obs)
        return as_tensor(batch, self.device)
