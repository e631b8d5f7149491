"""PlasticPPO: SB3's PPO with the ELR plasticity module."""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn
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


def sb3_actor_critic_init(policy) -> Callable[[nn.Module, str], None]:
    """Re-initialize a module of an SB3 actor-critic policy as SB3 built it (for interventions).

    With ``ortho_init`` (SB3's default) SB3 gives Linear/Conv layers orthogonal weights with a gain per
    part (sqrt(2) hidden, 0.01 the action head, 1 the value head) and zero biases; everything else
    (normalizations, or ``ortho_init=False``) keeps PyTorch's own ``reset_parameters``.
    """
    gains = {"features_extractor": np.sqrt(2), "pi_features_extractor": np.sqrt(2), "vf_features_extractor": np.sqrt(2),
             "mlp_extractor": np.sqrt(2), "action_net": 0.01, "value_net": 1.0}  # fmt: skip

    def init(module: nn.Module, name: str) -> None:
        gain = gains.get(name.split(".")[0])
        if policy.ortho_init and gain is not None and isinstance(module, (nn.Linear, nn.Conv2d)):
            policy.init_weights(module, gain=gain)
        else:
            module.reset_parameters()

    return init


class PlasticPPO(PlasticMixin, PPO):
    """PPO whose policy keeps its plasticity: ``PlasticPPO("CartPole-v1", plasticity="elr").learn(100_000)``."""

    policy_aliases: ClassVar[dict[str, type]] = {
        "MlpPolicy": PlasticActorCriticPolicy,
        "CnnPolicy": PlasticActorCriticCnnPolicy,
        "MultiInputPolicy": PlasticMultiInputActorCriticPolicy,
    }

    def _plastic_networks(self) -> list[Network]:
        return [Network("policy", self.policy, self.policy.optimizer, actor_critic_forward, primary=True, init=sb3_actor_critic_init(self.policy))]

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
