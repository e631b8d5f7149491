"""PlasticSAC: SB3's SAC with the ELR plasticity module on the actor and the critic."""

from __future__ import annotations

from typing import Any, ClassVar

from stable_baselines3 import SAC

from plastic_rl.agents.base import PlasticMixin
from plastic_rl.agents.registry import ALGOS, NetworkSpec


class SharedExtractorToActor:
    """Mixin for actor-critic off-policy agents: a features extractor shared with the actor is trained
    by the actor's optimizer (as in SB3), so the critic's ELR leaves it out."""

    # The agent's policy (SACPolicy or TD3Policy). Any: each SB3 class types it its own way (BaseAlgorithm:
    # BasePolicy, SAC: SACPolicy, TD3: TD3Policy) and a mixin's type must match them all.
    policy: Any

    def _network_options(self, spec: NetworkSpec) -> dict[str, Any]:
        if spec.name == "critic" and self.policy.share_features_extractor:
            return {"exclude": ("features_extractor.*",)}
        return {}


class PlasticSAC(SharedExtractorToActor, PlasticMixin, SAC):
    """SAC whose actor and critic keep their plasticity: ``PlasticSAC("Pendulum-v1").learn(20_000)``."""

    policy_aliases: ClassVar[dict[str, type]] = ALGOS["PlasticSAC"].policy_aliases()
