"""PlasticA2C: SB3's A2C with the ELR plasticity module (PPO's policies, so the same normalization)."""

from __future__ import annotations

from typing import ClassVar

from stable_baselines3 import A2C

from plastic_rl.agents.base import PlasticMixin
from plastic_rl.agents.ppo import ActorCriticInit
from plastic_rl.agents.registry import ALGOS


class PlasticA2C(ActorCriticInit, PlasticMixin, A2C):
    """A2C whose policy keeps its plasticity: ``PlasticA2C("CartPole-v1", plasticity="elr").learn(100_000)``.

    SB3's A2C steps RMSprop by default (``use_rms_prop=True``): the normalized policy keeps it, as torch's foreach
    implementation (the same values in fewer dispatched ops; RMSprop has no fused CPU kernel).
    """

    policy_aliases: ClassVar[dict[str, type]] = ALGOS["PlasticA2C"].policy_aliases()
