"""PlasticDQN: SB3's DQN with the ELR plasticity module (online Q-network projected, target kept consistent).

The target network gets every intervention's edit on the same entries (the registry's ``target_of``):
what was re-initialized matches the online network, the rest keeps its lag until SB3's next copy.
"""

from __future__ import annotations

from typing import ClassVar

from stable_baselines3 import DQN

from plastic_rl.agents.base import PlasticMixin
from plastic_rl.agents.registry import ALGOS


class PlasticDQN(PlasticMixin, DQN):
    """DQN whose Q-network keeps its plasticity: ``PlasticDQN("CartPole-v1").learn(100_000)``."""

    policy_aliases: ClassVar[dict[str, type]] = ALGOS["PlasticDQN"].policy_aliases()
