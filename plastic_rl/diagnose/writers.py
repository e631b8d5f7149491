"""diagnose's outputs, in the shape of SB3's ``logger.py``: a ``RowWriter`` per destination (SB3's
``KVWriter``) and ``make_output_format`` to build one by name.

Every writer takes the rows ``diagnose`` returns (one per checkpoint x network) whole, since a plot or a
series' table needs all of them: ``json``, ``csv``, ``plots`` (PNG per metric family), ``tensorboard``
(scalars at each checkpoint's step) and ``table`` (rich tables on the console). Column order, plot
families and labels come from the metric table (``plastic_rl.diagnostics.table``).
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plastic_rl.diagnostics.table import FAMILIES, METRIC
from plastic_rl.diagnostics.table import METRICS as _TABLE

ID_KEYS = ("series", "checkpoint", "step", "algorithm", "network", "n_obs", "observations")
METRICS: tuple[str, ...] = tuple(m.name for m in _TABLE)  # aggregate metrics in display order
SHORT = {m.name: m.short for m in _TABLE if m.short}


class RowWriter(ABC):
    """One destination of diagnose's rows (SB3's ``KVWriter``, for whole tables of rows)."""

    @abstractmethod
    def write(self, rows: list[dict]) -> list[Path]:
        """Write the rows; returns the files or folders written (nothing for the console)."""

    def close(self) -> None:  # noqa: B027 - optional hook, like SB3's KVWriter.close
        """Release what the writer holds (files are written whole by ``write``: nothing by default)."""


def _columns(rows: list[dict]) -> list[str]:
    """ID keys, aggregates in display order, then per-layer keys in order of appearance."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    layered = [k for k in keys if "/" in k]
    return (
        [k for k in ID_KEYS if k in keys]
        + [m for m in METRICS if m in keys]
        + [k for k in keys if k not in ID_KEYS and k not in METRICS and k not in layered]
        + layered
    )


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class JSONOutputFormat(RowWriter):
    """A JSON array of the rows; non-finite numbers (an infinite Delta_C) are written as null."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def write(self, rows: list[dict]) -> list[Path]:
        with open(self.path, "w") as f:
            json.dump([{k: _finite(v) for k, v in row.items()} for row in rows], f, indent=1, allow_nan=False)
        return [self.path]


class CSVOutputFormat(RowWriter):
    """One line per row, one column per key of any row (empty where a metric does not apply)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def write(self, rows: list[dict]) -> list[Path]:
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=_columns(rows), restval="")
            writer.writeheader()
            writer.writerows(rows)
        return [self.path]


def _line_label(row: dict, many_series: bool) -> str:
    return f"{row['series']} · {row['network']}" if many_series else row["network"]


RATIOS = (*FAMILIES["activity"], "delta_a")  # fractions (of units, of on/off patterns): a fixed axis, never autoscaled
RANKS = FAMILIES["rank"]  # bounded by the layer width: drawn with it as a reference line


def _mean_width(row: dict, metric: str) -> float | None:
    """The mean width of the layers a network's ``metric`` aggregate is the mean of (from its checkpoint zip)."""
    from plastic_rl.diagnose.series import layer_widths

    layers = [k.split("/", 1)[1] for k in row if k.startswith(f"{metric}/")]
    widths = layer_widths(row["checkpoint"], row["network"], layers)
    return sum(widths.values()) / len(widths) if widths and len(widths) == len(layers) else None


def family_figure(family: str, rows: list[dict]):
    """The figure of one metric family (None if no row has one of its metrics): one panel per metric, one
    line per network (per series and network when there are several series), with markers.

    Ratios (``RATIOS``) go on a fixed axis ([0, 0.05] if every value is below 0.05, else [0, 1]; the
    axis label says which), so one unit of 256 flipping is not drawn as a collapse. Ranks (``RANKS``)
    start at 0 and show the layer width (mean over the network's layers, from its checkpoint) as a
    dashed line, so a fall from 28 to 18 of 64 reads as what it is.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    from plastic_rl.report.plots import ratio_axis

    metrics = [m for m in FAMILIES[family] if any(_finite(r.get(m)) is not None for r in rows)]
    if not metrics:
        return None
    many = len({r["series"] for r in rows}) > 1
    lines: dict[str, list[dict]] = {}
    for row in rows:
        lines.setdefault(_line_label(row, many), []).append(row)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        values, widths = [], {}
        for label, members in lines.items():
            pts = [(r["step"], r[metric]) for r in members if _finite(r.get(metric)) is not None]
            if pts:
                (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=label)
                values += [p[1] for p in pts]
                if metric in RANKS:
                    width = _mean_width(members[-1], metric)
                    if width is not None:
                        widths[label] = (width, line.get_color())
        if metric in RATIOS:
            top, note = ratio_axis(values)
            ax.set_ylim(-0.02 * top, top)  # a value of 0 stays in sight
            ax.set_ylabel(f"fraction ({note})", fontsize=8)
        if metric in RANKS:
            same = len({w for w, _ in widths.values()}) == 1
            for i, (label, (width, color)) in enumerate(widths.items()):
                if same and i:
                    break
                ax.axhline(width, ls="--", lw=1, color="0.4" if same else color,
                           label=f"layer width {width:g}" if same else f"{label}: layer width {width:g}")  # fmt: skip
            ax.set_ylim(0, max([*values, *(w for w, _ in widths.values())]) * 1.08 or 1)
            ax.set_ylabel("rank (dashed: layer width)" if widths else "rank", fontsize=8)
        ax.set_title(metric)
        ax.set_xlabel("training step")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 10k, not 10000 (neighbours overlap)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"plasticity diagnostics: {family}")
    fig.tight_layout()
    return fig


class PlotOutputFormat(RowWriter):
    """``<folder>/<family>.png`` for every family with data (``family_figure``): one panel per metric, one line per network."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def write(self, rows: list[dict]) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.folder.mkdir(parents=True, exist_ok=True)
        written = []
        for family in FAMILIES:
            fig = family_figure(family, rows)
            if fig is None:
                continue
            path = self.folder / f"{family}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
        return written


def _tag_dir(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "series"


class TensorBoardOutputFormat(RowWriter):
    """Scalars ``diagnose/<network>/<metric>[/<layer>]`` at each checkpoint's training step.

    One series goes to ``logdir`` itself; several go to one subfolder each (named after the series).
    """

    def __init__(self, logdir: str | Path):
        self.logdir = Path(logdir)

    def write(self, rows: list[dict]) -> list[Path]:
        from torch.utils.tensorboard import SummaryWriter

        by_series: dict[str, list[dict]] = {}
        for row in rows:
            by_series.setdefault(row["series"], []).append(row)
        dirs = []
        for label, members in by_series.items():
            target = self.logdir if len(by_series) == 1 else self.logdir / _tag_dir(label)
            writer = SummaryWriter(log_dir=str(target))
            try:
                for row in members:
                    for key, value in row.items():
                        if key not in ID_KEYS and isinstance(value, (int, float)) and math.isfinite(value):
                            writer.add_scalar(f"diagnose/{row['network']}/{key}", value, global_step=row["step"])
            finally:
                writer.close()
            dirs.append(target)
        return dirs


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e6):
        return str(int(value))
    return f"{value:.4g}"


def _console(file=None):
    from rich.console import Console

    console = Console(file=file or sys.stdout)
    return console if console.is_terminal else Console(file=file or sys.stdout, width=240)


def _name(row: dict) -> str:
    path, series = Path(row["checkpoint"]), Path(row["series"])
    try:
        return str(path.relative_to(series)) if series.is_dir() else path.name
    except ValueError:
        return path.name


class TableOutputFormat(RowWriter):
    """A summary table per series (aggregates per checkpoint x network) and, for a single checkpoint or
    when ``layers`` is true, a per-layer table of each network. ``–``: the metric does not apply (see
    plastic_rl.diagnostics) or, for delta_c/delta_a/param_elr, there is no previous checkpoint."""

    def __init__(self, file=None, layers: bool | None = None):
        self.file, self.layers = file, layers

    def write(self, rows: list[dict]) -> list[Path]:
        from rich.table import Table

        console = _console(self.file)
        metrics = [m for m in METRICS if any(m in r for r in rows)]
        for label in dict.fromkeys(r["series"] for r in rows):
            members = [r for r in rows if r["series"] == label]
            table = Table(title=f"{label}  ({members[0]['n_obs']} observations: {members[0]['observations']})", title_justify="left")
            table.add_column("checkpoint", no_wrap=True)
            table.add_column("step", justify="right")
            table.add_column("network", no_wrap=True)
            for m in metrics:
                table.add_column(METRIC[m].label, justify="right")
            for r in members:
                table.add_row(_name(r), str(r["step"]), r["network"], *(_fmt(r.get(m)) for m in metrics))
            console.print(table)
            show_layers = self.layers if self.layers is not None else len({r["checkpoint"] for r in members}) == 1
            if show_layers:
                for r in members:
                    _layer_table(console, r)
        return []


def _layer_table(console, row: dict) -> None:
    from rich.table import Table

    per_layer: dict[str, dict[str, Any]] = {}
    for key, value in row.items():
        metric, sep, layer = key.partition("/")
        if sep and metric in METRICS:
            per_layer.setdefault(layer, {})[metric] = value
    metrics = [m for m in METRICS if any(m in v for v in per_layer.values())]
    table = Table(title=f"{_name(row)} (step {row['step']}) · {row['network']}: per layer", title_justify="left")
    table.add_column("layer", no_wrap=True)
    for m in metrics:
        table.add_column(METRIC[m].label, justify="right")
    for layer, values in per_layer.items():
        table.add_row(layer, *(_fmt(values.get(m)) for m in metrics))
    console.print(table)


FORMATS: dict[str, Callable[..., RowWriter]] = {"json": JSONOutputFormat, "csv": CSVOutputFormat, "plots": PlotOutputFormat,
                                       "tensorboard": TensorBoardOutputFormat, "table": TableOutputFormat}  # fmt: skip


def make_output_format(_format: str, target: Any = None, **kwargs: Any) -> RowWriter:
    """A writer by name (SB3's ``make_output_format``): ``_format`` is a key of ``FORMATS``; other keywords go to the writer.

    :param target: the file (json, csv) or folder (plots, tensorboard) to write to; for table, the console's file (None: stdout).
    """
    if _format not in FORMATS:
        raise ValueError(f"unknown output format {_format!r}; accepted: {', '.join(FORMATS)}")
    if _format == "table":
        return TableOutputFormat(target, **kwargs)
    return FORMATS[_format](target, **kwargs)


def write_json(rows: list[dict], path) -> None:
    """A JSON array of the rows; non-finite numbers (an infinite Delta_C) are written as null.

    :param rows: the rows ``diagnose`` returns.
    :param path: the ``.json`` file to write (overwritten).
    """
    JSONOutputFormat(path).write(rows)


def write_csv(rows: list[dict], path) -> None:
    """One line per row, one column per key of any row (empty where a metric does not apply).

    :param rows: the rows ``diagnose`` returns.
    :param path: the ``.csv`` file to write (overwritten).
    """
    CSVOutputFormat(path).write(rows)


def write_plots(rows: list[dict], out) -> list[Path]:
    """``<out>/<family>.png`` for every family with data: one panel per metric, one line per network.

    :param rows: the rows ``diagnose`` returns.
    :param out: the folder to write the PNGs to (created if missing).
    :return: the files written.
    """
    return PlotOutputFormat(out).write(rows)


def write_tensorboard(rows: list[dict], logdir) -> list[Path]:
    """Scalars ``diagnose/<network>/<metric>[/<layer>]`` at each checkpoint's step (see TensorBoardOutputFormat).

    :param rows: the rows ``diagnose`` returns.
    :param logdir: the TensorBoard log folder (several series: one subfolder each).
    :return: the folders written.
    """
    return TensorBoardOutputFormat(logdir).write(rows)


def print_tables(rows: list[dict], layers: bool | None = None, file=None) -> None:
    """The console tables (see TableOutputFormat).

    :param rows: the rows ``diagnose`` returns.
    :param layers: print each network's per-layer table; None: only for a series of a single checkpoint.
    :param file: the file to print to; None: stdout.
    """
    TableOutputFormat(file, layers).write(rows)
