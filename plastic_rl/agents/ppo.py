"""PlasticPPO: SB3's PPO with the ELR plasticity module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from stable_baselines3 import PPO
from torch import nn

from plastic_rl.agents.base import PlasticMixin
from plastic_rl.agents.registry import ALGOS, NetworkSpec


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
            module.reset_parameters()  # type: ignore[operator]  # Module.__getattr__ says Tensor | Module; it is the layer's method

    return init


class ActorCriticInit:
    """Mixin for on-policy agents: interventions re-initialize as SB3's actor-critic policy does."""

    # The agent's policy (an ActorCriticPolicy for PPO and A2C). Any: each SB3 class types it its own way
    # (BaseAlgorithm: BasePolicy, OnPolicyAlgorithm: ActorCriticPolicy) and a mixin's type must match them all.
    policy: Any

    def _network_options(self, spec: NetworkSpec) -> dict[str, Any]:
        return {"init": sb3_actor_critic_init(self.policy)}


class PlasticPPO(ActorCriticInit, PlasticMixin, PPO):
    """PPO whose policy keeps its plasticity: ``PlasticPPO("CartPole-v1", plasticity="elr").learn(100_000)``."""

    policy_aliases: ClassVar[dict[str, type]] = ALGOS["PlasticPPO"].policy_aliases()
