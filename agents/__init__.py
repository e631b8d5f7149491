"""SB3-compatible agents that keep their plasticity: ``PlasticPPO``, ``PlasticDQN``, ``PlasticSAC``.

Thin subclasses of SB3's algorithms (sb3-contrib style): SB3 runs the algorithm; ``base.PlasticMixin``
adds the call forms, the ``plasticity=`` settings, logging and saving; ``controller`` drives the core
``ELR`` from SB3's optimizers; ``policies`` inserts the normalization where SB3 builds the networks.
"""

from plastic_rl.agents.config import PRESETS, PlasticityConfig, resolve_plasticity
from plastic_rl.agents.dqn import PlasticDQN
from plastic_rl.agents.ppo import PlasticPPO
from plastic_rl.agents.sac import PlasticSAC

__all__ = ["PlasticPPO", "PlasticDQN", "PlasticSAC", "PlasticityConfig", "PRESETS", "resolve_plasticity"]
