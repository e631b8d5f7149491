"""Train an agent: ``python -m plastic_rl.train [env=... agent=... plasticity=...]``.

One job per module: ``plan`` decides whether a run starts, resumes or is refused (before anything is
written), ``build`` makes its envs, agent, callbacks and logger, ``logger`` is SB3's logger with
TensorBoard, and ``cli`` is the Hydra entry point that runs the plan.
"""

from plastic_rl.train.cli import main

__all__ = ["main"]
