"""``python -m plastic_rl.diagnose PATH [PATH...]``: plasticity diagnostics of saved SB3 checkpoints.

A PATH is a checkpoint zip or a run folder. Each folder is one time series (every ``*.zip`` under it,
ordered by the ``num_timesteps`` recorded in the zip, not by file name); the zip arguments together
are one more series. Every network of every checkpoint (the algorithm registry's) is measured layer by
layer with ``plastic_rl.diagnostics.measure`` on one fixed observation batch per series; between
neighbours of a series come Delta_C, Delta_A (``FeatureSnapshot`` / ``compare``) and the parameter-change
ELR. See docs/diagnose.md for the options, the observation batch and the exact definitions.

One module per job: ``series`` (which checkpoints, cheap checks), ``measuring`` (:func:`diagnose`, the
Python API), ``writers`` (JSON, CSV, plots, TensorBoard, console tables: SB3 logger-style writers) and
``cli`` (:func:`main`). Heavy imports (torch, SB3, matplotlib, TensorBoard) happen inside functions, so
bad input is reported before any of them load.
"""

from plastic_rl.diagnose.cli import main
from plastic_rl.diagnose.measuring import diagnose
from plastic_rl.diagnose.writers import (
    FORMATS,
    ID_KEYS,
    METRICS,
    RowWriter,
    make_output_format,
    print_tables,
    write_csv,
    write_json,
    write_plots,
    write_tensorboard,
)

__all__ = ["diagnose", "main", "write_json", "write_csv", "write_plots", "write_tensorboard", "print_tables",
           "make_output_format", "RowWriter", "FORMATS", "ID_KEYS", "METRICS"]  # fmt: skip
