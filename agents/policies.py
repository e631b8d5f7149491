"""SB3 policies that insert a normalization into their networks *before* SB3 builds the optimizers.

Each class is SB3's own policy plus one keyword, ``norm`` ("layer", "rms" or None). The normalization
goes in where SB3 builds the networks (``_build_mlp_extractor``, ``make_q_net``, ``make_actor``,
``make_critic``), so the optimizers, the target networks and SB3's save/load see the final
architecture, and ``norm=None`` is SB3's policy unchanged (same parameters from the same seed).

A normalized policy also builds its Adam/AdamW with ``fused=True`` unless ``optimizer_kwargs`` chooses
an implementation (``fused``/``foreach``): the same update computed in one kernel per tensor instead of
~10 Python-dispatched ops, which on small RL networks pays for the normalization and ELR's projection
(``python -m plastic_rl.tools.bench_agents gradstep``). ``optimizer_kwargs=dict(fused=False)`` restores
torch's default; the ``"none"`` preset never changes it, so it stays identical to SB3.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy, MultiInputActorCriticPolicy
from stable_baselines3.dqn.policies import CnnPolicy as DQNCnnPolicy
from stable_baselines3.dqn.policies import DQNPolicy
from stable_baselines3.dqn.policies import MultiInputPolicy as DQNMultiInputPolicy
from stable_baselines3.sac.policies import CnnPolicy as SACCnnPolicy
from stable_baselines3.sac.policies import MultiInputPolicy as SACMultiInputPolicy
from stable_baselines3.sac.policies import SACPolicy
import torch
from torch import nn

from plastic_rl.layers import iter_blocks
from plastic_rl.norm import insert_norm


FUSED_DEFAULT = (torch.optim.Adam, torch.optim.AdamW)  # fused on CPU and CUDA in torch >= 2.4
_IMPLEMENTATION_KEYS = ("fused", "foreach", "differentiable")


def with_fused_default(optimizer_class: type, optimizer_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``optimizer_kwargs`` plus ``fused=True`` for Adam/AdamW, unless the caller chose an implementation."""
    if optimizer_class in FUSED_DEFAULT and not any(key in optimizer_kwargs for key in _IMPLEMENTATION_KEYS):
        return {**optimizer_kwargs, "fused": True}
    return optimizer_kwargs


class NormalizedPolicy:
    """Mixin: the ``norm`` keyword and the one place that inserts it into a network."""

    norm: str | None
    norm_affine: bool

    def __init__(self, *args: Any, norm: str | None = None, norm_affine: bool = False, **kwargs: Any):
        self.norm = norm  # set before SB3's __init__, which builds the networks
        self.norm_affine = norm_affine
        super().__init__(*args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "norm": self.norm, "norm_affine": self.norm_affine}

    def _build(self, *args: Any, **kwargs: Any) -> None:
        # Every SB3 policy builds its optimizers in _build from self.optimizer_kwargs (set by its __init__).
        if self.norm is not None:
            self.optimizer_kwargs = with_fused_default(self.optimizer_class, self.optimizer_kwargs)
        super()._build(*args, **kwargs)

    def _normalize(self, what: str, *modules: nn.Module) -> None:
        """Normalize every hidden layer of ``modules``; fail, naming ``what``, if none has one."""
        if self.norm is None:
            return
        candidates = [m for m in modules if any(b.activation is not None or b.norm is not None for b in iter_blocks(m))]
        if not candidates:
            raise ValueError(
                f"plasticity norm={self.norm!r}: {what} of {type(self).__name__} has no Linear/Conv followed by an "
                f"activation to normalize (net_arch={getattr(self, 'net_arch', None)!r}); give it hidden layers "
                "or use plasticity='none'"
            )
        for module in candidates:
            insert_norm(module, kind=self.norm, affine=self.norm_affine)


class _ActorCriticNorm(NormalizedPolicy):
    def _build_mlp_extractor(self) -> None:
        super()._build_mlp_extractor()
        extractors = [self.features_extractor] if self.share_features_extractor else [self.pi_features_extractor, self.vf_features_extractor]
        self._normalize("the policy and value networks", *extractors, self.mlp_extractor)


class PlasticActorCriticPolicy(_ActorCriticNorm, ActorCriticPolicy):
    pass


class PlasticActorCriticCnnPolicy(_ActorCriticNorm, ActorCriticCnnPolicy):
    pass


class PlasticMultiInputActorCriticPolicy(_ActorCriticNorm, MultiInputActorCriticPolicy):
    pass


class _QNetworkNorm(NormalizedPolicy):
    def make_q_net(self):
        q_net = super().make_q_net()  # called for the online and the target network alike
        self._normalize("the Q-network", q_net)
        return q_net


class PlasticDQNPolicy(_QNetworkNorm, DQNPolicy):
    pass


class PlasticDQNCnnPolicy(_QNetworkNorm, DQNCnnPolicy):
    pass


class PlasticDQNMultiInputPolicy(_QNetworkNorm, DQNMultiInputPolicy):
    pass


class _ActorCriticContinuousNorm(NormalizedPolicy):
    def make_actor(self, features_extractor=None):
        actor = super().make_actor(features_extractor)
        self._normalize("the actor", actor)
        return actor

    def make_critic(self, features_extractor=None):
        critic = super().make_critic(features_extractor)  # critic and critic target alike
        self._normalize("the critic", critic)
        return critic


class PlasticSACPolicy(_ActorCriticContinuousNorm, SACPolicy):
    pass


class PlasticSACCnnPolicy(_ActorCriticContinuousNorm, SACCnnPolicy):
    pass


class PlasticSACMultiInputPolicy(_ActorCriticContinuousNorm, SACMultiInputPolicy):
    pass
