"""Plasticity settings of an agent: one dataclass, named presets, and the parser for ``plasticity=``.

Schedules count *optimizer steps* (SB3's ``n_updates``), not environment steps: that is the clock the
effective learning rate lives on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from plastic_rl.elr import GAIN_MODES, PROJECT_MODES, SHRINK_MODES, CusumRewarm, CyclicRewarm, ImplicitDecay, OnDemandRewarm, Schedule
from plastic_rl.norm import NORM_KINDS

SCHEDULE_KINDS = (None, "cyclic", "cusum", "on-demand", "decay")
INTERVENTIONS = (None, "redo", "shrink-perturb", "reset")


@dataclass(frozen=True)
class PlasticityConfig:
    """What the agent does to keep its networks plastic.

    Schedules and intervention periods count optimizer steps (module docstring). With ``norm=None,
    project=False, schedule=None`` (preset ``"none"``) the agent is exactly its SB3 parent; the ELR is
    still measured and logged, which changes no parameter.

    :param norm: normalization inserted before each hidden nonlinearity: ``"layer"``, ``"rms"`` or None.
    :param affine: whether the inserted normalization has learnable gains and biases. Off by default:
        the next layer can rescale anyway, and on SB3's small networks the extra parameter tensors cost
        more than the normalization itself (a PPO gradient step: +13% without them, +39% with;
        tools/bench_agents).
    :param project: ``ELR`` projection: True pins every scale-invariant layer (a Linear/Conv followed by the
        normalization) to its initial norm, so its effective learning rate is set by the lr alone;
        ``"on-rewarm"`` lets the norm grow (the ELR decays as the user's lr was tuned for) and shrinks it
        back, with the optimizer state and target networks, only at a re-warm (``model.plasticity.rewarm()``,
        an announced task switch, a CUSUM alarm or cyclic restart); ``"from-rewarm"`` does the same until the
        first re-warm and projects at every step after it (a change seen, the data is taken to keep
        changing: the ELR is held where the re-warm put it); False never. Needs ``norm``.
    :param project_every: optimizer steps between projections.
    :param gains: ``"project"`` also projects each normalization gain vector to its initial norm;
        ``"none"`` leaves the gains to the optimizer.
    :param schedule: the lr re-warm: None, ``"cyclic"`` (restart every ``period`` steps), ``"cusum"``
        (restart when the training loss jumps) or ``"on-demand"`` (factor 1 until
        ``model.plasticity.rewarm()``, e.g. from ``plastic_rl.agents.callbacks.RewarmOnSwitch`` at a task
        switch), or ``"decay"`` (the decay a normalized network without projection would have, derived
        from the lr, the optimizer and the projected layers: ``schedules.implicit_decay_rate``; restarted
        by ``model.plasticity.rewarm()``; its fields below are unused).
    :param period: ``"cyclic"``: optimizer steps between restarts (warm-up plus cosine decay).
    :param warmup: optimizer steps of each (re)start's linear warm-up from ``floor`` to ``peak``.
    :param peak: the lr factor at the end of the warm-up (a multiple of the agent's own lr).
    :param floor: the lr factor the warm-up starts from and the decay ends at.
    :param decay: ``"cusum"``, ``"on-demand"``: optimizer steps of the cosine decay from ``peak`` back to
        ``floor`` (``"cyclic"`` decays over the rest of its ``period``).
    :param threshold: ``"cusum"``: the CUSUM statistic (in standard deviations of the loss) that raises
        an alarm and a re-warm.
    :param drift: ``"cusum"``: the slack subtracted at every step, in standard deviations of the loss.
    :param measure_every: optimizer steps between ELR measurements; 0 (default) measures the first
        optimizer step of the first ``train()`` call after each write of SB3's logger, which is what its
        next write shows (``ELR.measure_next``); values measured while one awaits writing would be overwritten.
    :param intervention: a standard plasticity intervention (``plastic_rl.interventions``) on every
        network: ``"redo"``, ``"shrink-perturb"``, ``"reset"`` or None. Target networks receive the same
        edit on the same entries.
    :param every: optimizer steps of the primary network between interventions; 0: only when asked
        (``model.plasticity.intervene()``, e.g. at each task switch).
    :param redo_tau: ``"redo"``: a unit whose score on a batch of recent observations is at most this is
        dormant and recycled.
    :param shrink: ``"shrink-perturb"``: theta <- ``shrink`` theta + ``perturb`` theta_fresh.
    :param perturb: ``"shrink-perturb"``: the weight of the fresh initialization (see ``shrink``).
    :param reset_layers: ``"reset"``: which layers are re-initialized: ``"heads"`` (the output layers),
        ``"all"``, or comma-separated layer names/patterns.
    """

    norm: str | None = "layer"
    affine: bool = False
    project: bool | str = True
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
    intervention: str | None = None
    every: int = 0
    redo_tau: float = 0.1
    shrink: float = 0.4
    perturb: float = 0.1
    reset_layers: str = "heads"

    def __post_init__(self) -> None:
        if self.norm not in (None, *NORM_KINDS):
            raise ValueError(f"norm={self.norm!r} is not accepted; accepted: None, {', '.join(NORM_KINDS)}")
        if self.gains not in GAIN_MODES:
            raise ValueError(f"gains={self.gains!r} is not accepted; accepted: {', '.join(GAIN_MODES)}")
        if self.schedule not in SCHEDULE_KINDS:
            raise ValueError(f"schedule={self.schedule!r} is not accepted; accepted: None, {', '.join(SCHEDULE_KINDS[1:])}")
        if not any(self.project is mode if isinstance(mode, bool) else self.project == mode for mode in PROJECT_MODES):
            raise ValueError(f"project={self.project!r} is not accepted; accepted: {', '.join(map(repr, PROJECT_MODES))}")
        if self.project and self.norm is None:
            raise ValueError(f"project={self.project!r} needs norm='layer' or 'rms': only normalized layers are scale-invariant")
        self.make_schedule()  # validates the schedule's numbers now, not at the first step
        if self.intervention not in INTERVENTIONS:
            raise ValueError(f"intervention={self.intervention!r} is not accepted; accepted: None, {', '.join(INTERVENTIONS[1:])}")
        if isinstance(self.every, bool) or not (isinstance(self.every, int) and self.every >= 0):
            raise ValueError(f"every={self.every!r} must be an int >= 0 (optimizer steps between interventions; 0: only when asked)")
        if not 0 <= self.redo_tau < 1:
            raise ValueError(f"redo_tau={self.redo_tau!r} is outside [0, 1)")
        for key in ("shrink", "perturb"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 0")
        if not (isinstance(self.reset_layers, str) and self.reset_layers.strip()):
            raise ValueError(f"reset_layers={self.reset_layers!r}: give 'heads', 'all' or comma-separated layer names")

    @property
    def can_rewarm(self) -> bool:
        """Whether ``model.plasticity.rewarm()`` does anything: a schedule to restart or norms to shrink back."""
        return self.schedule is not None or self.project in SHRINK_MODES

    def make_schedule(self, decay_rate: float = 0.0) -> Schedule | None:
        """The schedule these fields describe; ``decay_rate``: ``"decay"``'s rate (``schedules.implicit_decay_rate``
        of the network it drives, which the agent computes once its networks exist)."""
        if self.schedule == "decay":
            return ImplicitDecay(decay_rate)
        if self.schedule == "cyclic":
            return CyclicRewarm(period=self.period, warmup=self.warmup, peak=self.peak, floor=self.floor)
        if self.schedule == "cusum":
            return CusumRewarm(
                warmup=self.warmup, decay=self.decay, peak=self.peak, floor=self.floor, threshold=self.threshold, drift=self.drift
            )
        if self.schedule == "on-demand":
            return OnDemandRewarm(warmup=self.warmup, decay=self.decay, peak=self.peak, floor=self.floor)
        return None


# configs/plasticity/<name>.yaml are generated from these (python -m plastic_rl.tools.plasticity_configs);
# tests/test_configs.py fails when a file and its preset differ.
PRESETS: dict[str, PlasticityConfig] = {
    "none": PlasticityConfig(norm=None, project=False, schedule=None),
    "nap": PlasticityConfig(schedule=None),
    "elr": PlasticityConfig(),
    "elr-cusum": PlasticityConfig(schedule="cusum"),
    # NaP with the ELR decay an unprojected normalized network would have, restarted at each re-warm
    # (model.plasticity.rewarm(), an announced task switch): safe on a stationary task (docs/elr_rule.md).
    "elr-decay": PlasticityConfig(schedule="decay"),
    # The default. While the task holds: normalized, the user's constant lr, no projection (the ELR decays
    # by the layers' own norm growth, as the user's lr was tuned for). At a re-warm (an announced switch,
    # model.plasticity.rewarm()): the layers shrink back to their initial norm (each layer's ELR returns to
    # its starting value, the function is unchanged), and from then on projection holds the ELR there: a
    # task that changed once is taken to keep changing (docs/elr_rule.md). The lr itself is never raised.
    "norm-rewarm": PlasticityConfig(project="from-rewarm", schedule=None),
    # The standard interventions on SB3's own networks (no normalization, constant lr): the baselines.
    "redo": PlasticityConfig(norm=None, project=False, schedule=None, intervention="redo", every=1000),
    "shrink-perturb": PlasticityConfig(norm=None, project=False, schedule=None, intervention="shrink-perturb", every=10_000),
    "reset": PlasticityConfig(norm=None, project=False, schedule=None, intervention="reset", every=10_000),
}


# What PlasticX(env) and `python -m plastic_rl.train` use with no plasticity given: safe on a stationary
# task at the user's own lr (the normalized layers' ELR decays by their own norm growth; the head and
# biases keep the user's lr), re-warmed at an announced change by shrinking the layers back to their
# initial norm (docs/elr_rule.md; measured in docs/bench_agents.md, "The stationary panel").
DEFAULT_PRESET = "norm-rewarm"


def resolve_plasticity(plasticity: str | PlasticityConfig | Mapping[str, Any] | None) -> PlasticityConfig:
    """The PlasticityConfig an agent's ``plasticity=`` names.

    :param plasticity: a preset name (a key of ``PRESETS``), a ``PlasticityConfig`` (returned as is), a dict whose
        entries override fields of its ``"preset"`` (default ``"elr"``), e.g. ``{"preset": "elr", "peak": 3.0}``, or
        None (``"none"``).
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
    raise TypeError(f"plasticity={plasticity!r} must be a preset name ({', '.join(PRESETS)}), a PlasticityConfig or a dict")
