"""Plasticity settings of an agent: one dataclass, named presets, and the parser for ``plasticity=``.

Schedules count *optimizer steps* (SB3's ``n_updates``), not environment steps: that is the clock the
effective learning rate lives on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Mapping

from plastic_rl.elr import GAIN_MODES, CusumRewarm, CyclicRewarm, OnDemandRewarm, Schedule
from plastic_rl.norm import NORM_KINDS

SCHEDULE_KINDS = (None, "cyclic", "cusum", "on-demand")


@dataclass(frozen=True)
class PlasticityConfig:
    """What the agent does to keep its networks plastic.

    ``norm``: normalization inserted before each hidden nonlinearity (``"layer"``, ``"rms"``, None);
    ``affine``: whether it has learnable gains and biases. Off by default: the next layer can rescale
    anyway, and on SB3's small networks the extra parameter tensors cost more than the
    normalization itself (a PPO gradient step: +13% without them, +39% with; tools/bench_agents).
    ``project``/``project_every``/``gains``: ``ELR`` projection of the scale-invariant layers.
    ``schedule``: the lr re-warm: None, ``"cyclic"`` (restart every ``period`` steps), ``"cusum"``
    (restart when the training loss jumps) or ``"on-demand"`` (factor 1 until ``model.plasticity.rewarm()``,
    e.g. from ``plastic_rl.envs.RewarmOnSwitch`` at a task switch); each (re)start warms up over
    ``warmup`` steps from ``floor`` to ``peak`` (factors of the agent's own lr) and decays back (cosine,
    over the rest of the period for cyclic, over ``decay`` steps otherwise). ``threshold``/``drift``:
    the CUSUM detector.
    ``measure_every``: optimizer steps between ELR measurements; 0 (default) measures the first
    optimizer step of every ``train()`` call, which is what gets logged (``ELR.measure_next``).
    With ``norm=None, project=False, schedule=None`` ("none") the agent is exactly its SB3 parent; the
    ELR is still measured and logged, which changes no parameter.
    """

    norm: str | None = "layer"
    affine: bool = False
    project: bool = True
    project_every: int = 1
    gains: str = "project"
    schedule: str | None = "cyclic"
    period: int = 10_000
    warmup: int = 1_000
    peak: float = 2.0
    floor: float = 1.0
    decay: int = 9_000
    threshold: float = 16.0
    drift: float = 0.5
    measure_every: int = 0

    def __post_init__(self) -> None:
        if self.norm not in (None, *NORM_KINDS):
            raise ValueError(f"norm={self.norm!r} is not accepted; accepted: None, {', '.join(NORM_KINDS)}")
        if self.gains not in GAIN_MODES:
            raise ValueError(f"gains={self.gains!r} is not accepted; accepted: {', '.join(GAIN_MODES)}")
        if self.schedule not in SCHEDULE_KINDS:
            raise ValueError(f"schedule={self.schedule!r} is not accepted; accepted: None, {', '.join(SCHEDULE_KINDS[1:])}")
        if self.project and self.norm is None:
            raise ValueError("project=True needs norm='layer' or 'rms': only normalized layers are scale-invariant")
        self.make_schedule()  # validates the schedule's numbers now, not at the first step

    def make_schedule(self) -> Schedule | None:
        if self.schedule == "cyclic":
            return CyclicRewarm(period=self.period, warmup=self.warmup, peak=self.peak, floor=self.floor)
        if self.schedule == "cusum":
            return CusumRewarm(
                warmup=self.warmup, decay=self.decay, peak=self.peak, floor=self.floor, threshold=self.threshold, drift=self.drift
            )
        if self.schedule == "on-demand":
            return OnDemandRewarm(warmup=self.warmup, decay=self.decay, peak=self.peak, floor=self.floor)
        return None


PRESETS: dict[str, PlasticityConfig] = {
    "none": PlasticityConfig(norm=None, project=False, schedule=None),
    "nap": PlasticityConfig(schedule=None),
    "elr": PlasticityConfig(),
    "elr-cusum": PlasticityConfig(schedule="cusum"),
}


def resolve_plasticity(plasticity: str | PlasticityConfig | Mapping[str, Any] | None) -> PlasticityConfig:
    """``"elr"`` | ``PlasticityConfig(...)`` | ``{"preset": "elr", "peak": 3.0}`` -> a PlasticityConfig.

    A dict overrides fields of its ``preset`` (default ``"elr"``); None means ``"none"``.
    """
    if plasticity is None:
        return PRESETS["none"]
    if isinstance(plasticity, PlasticityConfig):
        return plasticity
    if isinstance(plasticity, str):
        if plasticity not in PRESETS:
            raise ValueError(f"plasticity={plasticity!r} is not a preset; accepted: {', '.join(PRESETS)}")
        return PRESETS[plasticity]
    if isinstance(plasticity, Mapping):
        overrides = dict(plasticity)
        base = resolve_plasticity(overrides.pop("preset", "elr"))
        known = [f.name for f in fields(PlasticityConfig)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"plasticity fields {unknown} are unknown; accepted: preset, {', '.join(known)}")
        return dataclasses.replace(base, **overrides)
    raise TypeError(
        f"plasticity={plasticity!r} must be a preset name ({', '.join(PRESETS)}), a PlasticityConfig or a dict"
    )
