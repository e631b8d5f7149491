"""plastic_rl: give deep-RL agents their plasticity back.

The core (``elr``, ``norm``, ``diagnostics``) is plain PyTorch; the SB3 agents live in
``plastic_rl.agents``.
"""

__version__ = "0.1.0"
