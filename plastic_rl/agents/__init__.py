"""SB3-compatible agents that keep their plasticity: ``PlasticPPO``, ``PlasticDQN``, ``PlasticSAC``, ...

Thin subclasses of SB3's algorithms (sb3-contrib style): SB3 runs the algorithm; ``base.PlasticMixin``
adds the call forms, the ``plasticity=`` settings, logging and saving; ``controller`` drives the core
``ELR`` from SB3's optimizers; ``policies`` inserts the normalization where SB3 builds the networks;
``registry`` holds one record per algorithm. The agent classes are imported on first use, so that
``plastic_rl.agents.registry`` (read by ``diagnose`` before it loads anything) imports neither SB3 nor torch.
``PlasticQRDQN`` and ``PlasticTQC`` need sb3-contrib (optional): without it they are left out of ``__all__``
(``from plastic_rl.agents import *`` still works) and naming one raises an ImportError saying what to install.
"""

from __future__ import annotations

import importlib
from typing import Any

from plastic_rl.agents.registry import ALGOS, PLASTIC

_CONFIG = ("PlasticityConfig", "PRESETS", "resolve_plasticity")
__all__ = [*(name for name in PLASTIC if ALGOS[name].installed()), *_CONFIG]


def __getattr__(name: str) -> Any:
    if name in PLASTIC:
        return ALGOS[name].load_class()
    if name in _CONFIG:
        return getattr(importlib.import_module("plastic_rl.agents.config"), name)
    raise AttributeError(f"module 'plastic_rl.agents' has no attribute {name!r}")
