"""PlasticTQC: sb3-contrib's TQC with the ELR plasticity module on the actor and the quantile critics.

TQC is SAC with distributional critics: sb3-contrib's own ``Actor`` (SAC's layout) and ``Critic``
(``n_critics`` MLPs of ``n_quantiles`` outputs each), built in ``TQCPolicy.make_actor``/``make_critic``.
Ours build ``PlasticTQCActor`` and ``PlasticTQCCritic``, sb3-contrib's classes that normalize their
hidden layers in their constructor, so optimizers, the critic target and ``load`` see the normalized
networks and ``norm=None`` is sb3-contrib's networks unchanged. The actor's ``mu`` (with gSDE:
``Sequential(Linear, Hardtanh)``) and both output layers are heads, never normalized.

Needs sb3-contrib (``pip install sb3-contrib``, in the ``test`` extra); ``plastic_rl.agents`` imports this
module only when ``PlasticTQC`` is first used.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sb3_contrib import TQC
from sb3_contrib.tqc.policies import Actor, CnnPolicy, Critic, MultiInputPolicy, TQCPolicy
from torch import nn

from plastic_rl.agents.base import PlasticMixin
from plastic_rl.agents.policies import NormalizedNetwork, NormalizedPolicy
from plastic_rl.agents.registry import ALGOS
from plastic_rl.agents.sac import SharedExtractorToActor


class PlasticTQCActor(NormalizedNetwork, Actor):
    norm_exclude = ("mu", "mu.*")  # with use_sde, mu is Sequential(Linear, Hardtanh): an output head


class PlasticTQCCritic(NormalizedNetwork, Critic):
    """sb3-contrib's TQC critic, which also remembers how it was built: sb3-contrib's own saves only the
    spaces, so ``Critic.load`` cannot rebuild it; this one round-trips through ``save``/``load``."""

    def __init__(
        self,
        observation_space,
        action_space,
        net_arch: list[int],
        features_extractor: nn.Module,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        n_quantiles: int = 25,
        n_critics: int = 2,
        share_features_extractor: bool = False,
        **norm_kwargs: Any,
    ):
        super().__init__(observation_space, action_space, net_arch, features_extractor, features_dim, activation_fn,
                         normalize_images, n_quantiles, n_critics, share_features_extractor, **norm_kwargs)  # fmt: skip
        self._built_with = dict(net_arch=list(net_arch), features_extractor=features_extractor, features_dim=features_dim,
                                activation_fn=activation_fn, n_quantiles=n_quantiles, n_critics=n_critics,
                                share_features_extractor=share_features_extractor)  # fmt: skip

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), **self._built_with}


class _TQCNorm(NormalizedPolicy):
    actor_kwargs: dict[str, Any]  # set by TQCPolicy.__init__
    critic_kwargs: dict[str, Any]
    replaces = ("make_actor", "make_critic")

    # sb3-contrib's TQCPolicy.make_actor / make_critic with our classes (the critic target too)
    def make_actor(self, features_extractor=None) -> PlasticTQCActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return PlasticTQCActor(**actor_kwargs, **self._norm_kwargs).to(self.device)

    def make_critic(self, features_extractor=None) -> PlasticTQCCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return PlasticTQCCritic(**critic_kwargs, **self._norm_kwargs).to(self.device)


class PlasticTQCPolicy(_TQCNorm, TQCPolicy):
    pass


class PlasticTQCCnnPolicy(_TQCNorm, CnnPolicy):
    pass


class PlasticTQCMultiInputPolicy(_TQCNorm, MultiInputPolicy):
    pass


class PlasticTQC(SharedExtractorToActor, PlasticMixin, TQC):
    """TQC whose actor and critics keep their plasticity: ``PlasticTQC("Pendulum-v1").learn(20_000)``."""

    policy_aliases: ClassVar[dict[str, type]] = ALGOS["PlasticTQC"].policy_aliases()
