"""The metric table: one row per metric -- its family, where it applies, how layers combine, its short label.

``measure`` reads it (which activation families a metric applies to, how a network's aggregate is formed
from its layers) and ``diagnose`` reads it too (plot families, column order, table labels), so a new
metric is one row here plus its computation. The exact definitions are in the package docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

# How a network's aggregate (the key without "/<layer>") is formed from its layers' values.
AGGREGATES = {
    "units": "unit-weighted: sum_l U_l r_l / sum_l U_l",
    "mean": "mean over layers",
    "rss": "root of the sum of squares over layers",
    "pairs": "from two checkpoints (compare, diagnose's param_elr): defined where it is computed",
}


@dataclass(frozen=True)
class Metric:
    """One row of the metric table.

    :param name: the metric's key in ``measure``'s and ``diagnose``'s rows (``<name>`` and ``<name>/<layer>``).
    :param family: diagnose's plot family: ``"activity"``, ``"rank"``, ``"norms"`` or ``"change"``.
    :param aggregate: how a network's value is formed from its layers': a key of ``AGGREGATES``.
    :param applies: the activation families (``layers.activation_family``) it means something for; None: all.
    :param short: diagnose's column label, where the name is long; None: the name.
    """

    name: str
    family: str
    aggregate: str
    applies: tuple[str, ...] | None = None
    short: str | None = None

    @property
    def label(self) -> str:
        return self.short or self.name

    def applies_to(self, family: str) -> bool:
        return self.applies is None or family in self.applies


METRICS: tuple[Metric, ...] = (
    Metric("dormant_ratio", "activity", "units", short="dormant"),
    Metric("dead_ratio", "activity", "units", ("relu",), short="dead"),
    Metric("fau", "activity", "units", ("relu", "smooth")),
    Metric("saturated_ratio", "activity", "units", ("saturating",), short="saturated"),
    Metric("srank", "rank", "mean"),
    Metric("effective_rank", "rank", "mean", short="eff_rank"),
    Metric("stable_rank", "rank", "mean"),
    Metric("weight_norm", "norms", "rss", short="w_norm"),
    Metric("feature_norm", "norms", "mean", short="feat_norm"),
    Metric("grad_norm", "norms", "rss"),
    Metric("delta_c", "change", "pairs"),
    Metric("delta_a", "change", "pairs"),
    Metric("param_elr", "change", "pairs"),
)
METRIC: dict[str, Metric] = {m.name: m for m in METRICS}
FAMILIES: dict[str, tuple[str, ...]] = {}
for _m in METRICS:
    FAMILIES[_m.family] = (*FAMILIES.get(_m.family, ()), _m.name)
assert all(m.aggregate in AGGREGATES for m in METRICS)
