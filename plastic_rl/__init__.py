"""plastic_rl: give deep-RL agents their plasticity back.

The core (``elr``, ``norm``, ``diagnostics``) is plain PyTorch; the SB3 agents live in
``plastic_rl.agents`` and are imported lazily here, so ``import plastic_rl.elr`` never loads SB3.
"""

__version__ = "0.1.0"

from plastic_rl.agents.registry import ALGOS, PLASTIC  # no SB3, no torch: the names of the agents

_AGENTS = (*PLASTIC, "PlasticityConfig")


def __getattr__(name: str):
    if name in _AGENTS:
        from plastic_rl import agents

        return getattr(agents, name)
    raise AttributeError(f"module 'plastic_rl' has no attribute {name!r}")


# `from plastic_rl import *` names only the agents whose library is installed (sb3-contrib's are optional)
__all__ = [*(name for name in PLASTIC if ALGOS[name].installed()), "PlasticityConfig"]
