"""PlasticTD3: SB3's TD3 with the ELR plasticity module on the actor and the critic.

TD3's actor is deterministic and its whole MLP, output layer and tanh squash included, is ``mu``. Our
actor swaps SB3's final ``nn.Tanh`` for ``Squash`` (the same function, no parameters, same state dict):
the squash maps the output into the action box, it is not a hidden unit, so the output layer stays a
head -- never normalized, found by ``reset_layers="heads"``, and not counted as a saturated unit. The
critic is SAC's (``PlasticContinuousCritic``); the target actor and critic get every intervention's edit.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from stable_baselines3 import TD3
from stable_baselines3.td3.policies import Actor, CnnPolicy, MultiInputPolicy, TD3Policy

from plastic_rl.agents.base import PlasticMixin
from plastic_rl.agents.policies import NormalizedNetwork, _ActorCriticContinuousNorm
from plastic_rl.agents.registry import ALGOS
from plastic_rl.agents.sac import SharedExtractorToActor


class Squash(torch.nn.Module):
    """tanh as an output transform (into the action box), not an activation of hidden units."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


class _SquashedActor(Actor):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(self.mu[-1], torch.nn.Tanh):
            self.mu[-1] = Squash()


class PlasticTD3Actor(NormalizedNetwork, _SquashedActor):
    pass


class _TD3Norm(_ActorCriticContinuousNorm):
    def make_actor(self, features_extractor=None) -> PlasticTD3Actor:  # type: ignore[override]  # TD3's actor, not SAC's
        # SB3's TD3Policy.make_actor with our class (the actor target too)
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return PlasticTD3Actor(**actor_kwargs, **self._norm_kwargs).to(self.device)


class PlasticTD3Policy(_TD3Norm, TD3Policy):
    pass


class PlasticTD3CnnPolicy(_TD3Norm, CnnPolicy):
    pass


class PlasticTD3MultiInputPolicy(_TD3Norm, MultiInputPolicy):
    pass


class PlasticTD3(SharedExtractorToActor, PlasticMixin, TD3):
    """TD3 whose actor and critic keep their plasticity: ``PlasticTD3("Pendulum-v1").learn(20_000)``."""

    policy_aliases: ClassVar[dict[str, type]] = ALGOS["PlasticTD3"].policy_aliases()
