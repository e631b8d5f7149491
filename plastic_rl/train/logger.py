"""The training run's SB3 logger: SB3's own formats, with a TensorBoard writer that purges a killed run's events.

Imports SB3 and TensorBoard: ``train.build.make_logger`` imports this module only when a run starts.
"""

from __future__ import annotations

from pathlib import Path

from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat, make_output_format
from torch.utils.tensorboard import SummaryWriter


class PurgingTensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard format whose writer drops the events at or after ``purge_step`` (SB3's signature
    plus ``purge_step``): a resumed run writes those steps again."""

    def __init__(self, folder: str, purge_step: int | None = None):
        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def make_logger(model, folder: Path, purge_step: int | None) -> Logger:
    """stdout at verbose >= 1 (as SB3 configures it) and ``PurgingTensorBoard`` in ``folder``."""
    formats = [make_output_format("stdout", str(folder))] if model.verbose >= 1 else []
    logger = Logger(str(folder), [*formats, PurgingTensorBoard(str(folder), purge_step)])
    logger.log(f"Logging to {folder}")
    return logger
