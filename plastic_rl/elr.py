"""The effective learning rate (ELR): measure it, pin it with projection, raise it by re-warming.

For a layer whose output is normalized, the function depends only on the direction of its
parameters W (weight and bias jointly), and the step an optimizer takes changes that direction by
about ||u_t|| / ||W||: the effective learning rate. Plain training lets ||W|| grow, so the ELR decays
(eta/||W||^2 for SGD, eta/||W|| for Adam) and feature learning stalls. ``ELR``:

- measures, for every Linear/Conv, ``elr = ||u_t||_F / ||W_{t-1}||_F`` with u_t the change made by
  ``optimizer.step()`` itself (before any projection), ``W_{t-1}`` the parameters just before it;
- projects every scale-invariant layer back to its initial norm, so its ELR is set by the lr alone
  (``project=True``); or lets the ELR decay as the norm grows while the data holds and shrinks the layer
  back, with the optimizer state (``rescale``), at a re-warm (``"on-rewarm"``), projecting every step after
  the first one (``"from-rewarm"``: a change seen once, the data is taken to keep changing);
- multiplies the optimizer's learning rate by a re-warm ``Schedule``'s factor during each step.

Which layers are projected: a Linear/Conv directly followed by a normalization inside an
``nn.Sequential`` (see ``layers.iter_blocks``; ``norm.insert_norm`` builds exactly that). Output
heads and anything not followed by a normalization are not scale-invariant and are left alone;
``exclude`` removes more by name, ``include`` names the projected layers explicitly instead.

Normalization gains: a norm's gain vector is not scale-invariant (it sets the scale of what the next
layer sees), and left free it grows like any unnormalized weight. With ``gains="project"`` (default)
each gain vector is projected to its initial norm too: gains can still redistribute scale between
units, but not inflate it. ``gains="none"`` leaves them to the optimizer (e.g. its weight decay).

Usage::

    elr = ELR(net, optimizer, schedule=CyclicRewarm(period=10_000))
    loss.backward(); optimizer.step(); elr.step(loss=loss.item())

This module is the per-step driver of one module per job, each usable alone: ``flat_params`` (the buffer),
``projection`` (which layers), ``schedules`` (the re-warms; re-exported here) and ``rescale``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from plastic_rl.flat_params import FlatParams, Rescale, layer_slots
from plastic_rl.flat_params import norms as flat_norms
from plastic_rl.projection import GAIN_MODES, check_projectable, projected_parameters, scale_invariant_layers, select
from plastic_rl.rescale import follow, mirror_groups, state_powers, unknown_state_warning
from plastic_rl.schedules import (  # re-exported
    CusumRewarm,
    CyclicRewarm,
    ImplicitDecay,
    OnDemandRewarm,
    Schedule,
    implicit_decay_rate,
    make_schedule,
    warmup_cosine,
)

__all__ = [
    "ELR", "projected_parameters", "scale_invariant_layers", "Schedule", "CyclicRewarm", "CusumRewarm", "OnDemandRewarm",
    "ImplicitDecay", "implicit_decay_rate", "warmup_cosine", "make_schedule", "GAIN_MODES", "PROJECT_MODES", "SHRINK_MODES",
]  # fmt: skip

# ``project=``: every step (True), never (False), at a re-warm ("on-rewarm"), every step from the first re-warm on.
PROJECT_MODES = (True, False, "on-rewarm", "from-rewarm")
SHRINK_MODES = ("on-rewarm", "from-rewarm")


class ELR:
    """Measure, project and re-warm the effective learning rate of ``model`` trained by ``optimizer``.

    Call ``step(loss)`` once after every ``optimizer.step()``. Hooks on the optimizer snapshot the
    parameters right before each step (one buffer, the measured layers' parameters) and apply the
    schedule's factor to every param group's lr for the duration of the step only, so the owner's
    own lr (an SB3 schedule resets it every ``train()``) is never overwritten.

    :param model: the network; every Linear/Conv in it is measured, its scale-invariant ones projected
    :param optimizer: the optimizer training ``model``; ELR hooks its ``step()`` (snapshot, lr factor)
    :param schedule: re-warm schedule whose factor multiplies every param group's lr during each step (None: factor 1)
    :param project: True: rescale the projected layers to their initial norms after every ``project_every``-th step;
        ``"on-rewarm"``: only at a re-warm (``rewarm()``, a CUSUM alarm, a cyclic restart), together with their
        optimizer state and the ``mirrors``, so the function is unchanged and the ELR returns to its initial value
        (gains are then left to the optimizer: rescaling one would change the function); ``"from-rewarm"``: as
        ``"on-rewarm"`` until the first re-warm, as True after it; False: measure only (the schedule still applies)
    :param project_every: project after every k-th ``step()`` call (>= 1)
    :param measure_every: measure every k-th optimizer step (0: only the steps after ``measure_next()``), for callers
        that log less often than they step; projection and the schedule do not depend on it
    :param exclude: fnmatch patterns of layer names not to project (``"vf.*"``; a str is one pattern); unused with ``include``
    :param include: exact names of the layers to project, instead of every scale-invariant layer (None: that default)
    :param gains: ``"project"``: also project each projected layer's normalization gain to its initial norm;
        ``"none"``: leave gains to the optimizer
    :param mirrors: networks with the same layer names (a target network) whose projected layers a shrink back (a re-warm
        of ``project="on-rewarm"``/``"from-rewarm"``) rescales by the same factors, so a target update mixes like with like
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        schedule: Schedule | None = None,
        project: bool | str = True,
        project_every: int = 1,
        measure_every: int = 1,
        exclude: Iterable[str] = (),
        include: Iterable[str] | None = None,
        gains: str = "project",
        mirrors: Iterable[nn.Module] = (),
    ):
        if not any(project is mode if isinstance(mode, bool) else project == mode for mode in PROJECT_MODES):
            raise ValueError(f"project={project!r} is not accepted; accepted: {', '.join(map(repr, PROJECT_MODES))}")
        if not (isinstance(project_every, int) and project_every >= 1):
            raise ValueError(f"project_every={project_every!r} must be an int >= 1")
        if not (isinstance(measure_every, int) and measure_every >= 0):
            raise ValueError(f"measure_every={measure_every!r} must be an int >= 0 (0: only after measure_next())")
        if gains not in GAIN_MODES:
            raise ValueError(f"gains={gains!r} is not accepted; accepted: {', '.join(GAIN_MODES)}")
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a plastic_rl.elr.Schedule (e.g. CyclicRewarm), got {type(schedule).__name__}")
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.project: bool | str = project
        self.projecting = project is True  # projects every project_every-th step now ("from-rewarm": once re-warmed)
        self.project_every = project_every
        self.measure_every = measure_every
        self._measure_requested = False
        self._synced = False  # the pre-step hook already checked the buffer this step
        self.gains = gains
        exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)

        # on-rewarm rescales only what is scale-invariant: a gain sets the scale of what the next layer sees
        blocks, chosen, gain_groups = select(model, exclude, include, bool(self.project), self.gains if self.project is True else "none")
        if self.project in SHRINK_MODES and state_powers(optimizer) is None:
            warnings.warn(unknown_state_warning(optimizer), UserWarning, stacklevel=2)
        self._mirrors = mirror_groups(model, [b.name for b in chosen], list(mirrors))
        self._restarts = 0  # the schedule's own restarts seen so far (project="on-rewarm" follows them)
        self.rewarms = 0  # re-warms so far: rewarm() calls and the schedule's own restarts
        names = [b.name for b in blocks]
        # Buffer layout: [measured, not projected | measured and projected | projected gains], so the
        # measured groups are a prefix and the projected ones a suffix: slices, not gathers, per step.
        free = [b for b in blocks if b not in chosen]
        groups = [(b.name, layer_slots(b.layer)) for b in free + chosen] + gain_groups
        self._flat = FlatParams(groups, pad_from=len(free))  # the projected groups: padded to one length where it pays
        self._n_measured = len(blocks)
        self._first_projected = len(free)
        self._projected_names = self._flat.names[self._first_projected :]
        self._layer_order = names  # the model's own order, for reporting

        norms = self._norms(self._flat.views)
        self.init_norms = norms[self._first_projected :].clone()
        check_projectable(self._projected_names, self.init_norms.tolist(), "at construction")
        self.steps = 0  # calls to step()
        self._fresh = False  # a measured optimizer step has run since the last step() call
        self._at_init_norms = False  # the projected layers are at their initial norms (_mark_projected): no pass for ||W_{t-1}||
        self._projected_versions: list[int] = []
        self._base_lrs: list[Any] = []
        self._rescale: Rescale | None = None  # for _project_views
        self._factor = self.lr_factor
        self._update_norms = torch.zeros(self._n_measured)
        self._param_norms = norms[: self._n_measured]
        self._handles = [
            optimizer.register_step_pre_hook(self._before_optimizer_step),
            optimizer.register_step_post_hook(self._after_optimizer_step),
        ]

    def _sync(self) -> bool:
        """Follow parameters that were re-pointed or replaced (``.to()``, ``load_state_dict(assign=True)``)."""
        if not self._flat.ensure():
            return False
        self.init_norms = self.init_norms.to(self._flat.flat.device)
        self._fresh = False  # a snapshot of the old tensors says nothing about the new ones
        self._at_init_norms = False
        return True

    _norms = staticmethod(flat_norms)  # one float32 vector of Frobenius norms, see flat_params.norms

    # -- optimizer hooks -------------------------------------------------------------------------
    def _before_optimizer_step(self, optimizer, args, kwargs) -> None:
        if self._due(self.steps + 1):  # this step is measured: keep W_{t-1}
            self._sync()  # only where the buffer is read: a check before every step costs ~1% of a small MLP's Adam step
            self._synced = True
            flat = self._flat
            flat.snapshot.copy_(flat.flat)
            if self._at_init_norms and self._versions() != self._projected_versions:
                self._at_init_norms = False  # changed in place since (an intervention, a user's edit)
            if self._at_init_norms:  # the last step() projected: ||W_{t-1}|| of projected layers is known
                free = self._norms(flat.views[: self._first_projected])
                self._param_norms = torch.cat([free, self.init_norms[: self._n_measured - self._first_projected]])
            else:
                self._param_norms = self._norms(flat.views[: self._n_measured])
            self._fresh = True
        self._factor = factor = self.lr_factor
        self._base_lrs = [group["lr"] for group in optimizer.param_groups] if factor != 1.0 else []
        for group, lr in zip(optimizer.param_groups, self._base_lrs):
            group["lr"] = lr * factor

    def _after_optimizer_step(self, optimizer, args, kwargs) -> None:
        for group, lr in zip(optimizer.param_groups, self._base_lrs):
            group["lr"] = lr

    # -- the per-step call -----------------------------------------------------------------------
    def step(self, loss: float | torch.Tensor | None = None) -> None:
        """After ``optimizer.step()``: measure the update, project (every ``project_every``), advance the schedule.

        Raises FloatingPointError on a non-finite ``loss`` or a non-finite/zero norm of a layer about to be
        projected, naming it; nothing is skipped silently.
        """
        if loss is not None:
            loss = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
            if not math.isfinite(loss):
                raise FloatingPointError(f"ELR.step got a non-finite loss ({loss}) at step {self.steps}")
        self.steps += 1
        measured, flat = self._n_measured, self._flat
        project, due = self.projecting and self.steps % self.project_every == 0, self._due(self.steps)
        if self._synced:  # the pre-step hook checked the buffer (a measured step)
            self._synced = False
        elif project or due:  # about to read the buffer
            self._sync()
        if self._fresh:  # u_t = W_t - W_{t-1}, computed in the snapshot's buffer
            torch.sub(flat.flat, flat.snapshot, out=flat.snapshot)
            views = flat.snapshot_views[:measured] + (flat.views[self._first_projected :] if project else [])
            norms = self._norms(views)  # one pass of norms for the update and the projection
            self._update_norms = norms[:measured]
            self._fresh = False
            self._measure_requested = False
            if project:
                self._project(norms[measured:])
        else:
            if due:  # measured, but no optimizer step ran: nothing moved
                self._update_norms = torch.zeros(measured)
                self._param_norms = self._norms(flat.views[:measured])
            if project:
                self._project_views()
        self._at_init_norms = False
        if project:
            self._mark_projected()
        if self.schedule is not None:
            self.schedule.step(loss)
            restarts = self.schedule.restarts()
            if restarts > self._restarts:  # a CUSUM alarm, a cyclic restart
                self.rewarms += restarts - self._restarts
                if self.project in SHRINK_MODES:  # shrink back with it
                    self.restore_norms()
            self._restarts = restarts

    def _due(self, step: int) -> bool:
        """Whether optimizer step number ``step`` is measured."""
        return self._measure_requested or (self.measure_every > 0 and step % self.measure_every == 0)

    def measure_next(self) -> None:
        """Measure the next optimizer step whatever ``measure_every`` says (e.g. once per logging period)."""
        self._measure_requested = True

    def project_now(self) -> None:
        """Rescale every projected group to its initial norm now."""
        self._sync()
        self._project_views()
        self._mark_projected()

    def _versions(self) -> list[int]:
        """The parameters' in-place version counters: whether anything (``reset_parameters()``, ``p.mul_()``) wrote to
        them since a projection, which writes through the flat buffer's views and leaves the counters alone."""
        return [p._version for p in self._flat.params]

    def _mark_projected(self) -> None:
        """The projected layers are at their initial norms now, until a write: known to the next step if it is measured."""
        self._at_init_norms = self._due(self.steps + 1)
        if self._at_init_norms:
            self._projected_versions = self._versions()

    def _project_views(self) -> None:
        """``_project`` of the projected groups' current norms, between measurements: ``Rescale`` for float32."""
        flat, rescale = self._flat, self._rescale
        if rescale is None or rescale.source is not flat.views or rescale.targets is not self.init_norms:  # a rebuild, a load
            fits = flat.flat.dtype == torch.float32
            rescale = self._rescale = Rescale(flat.views, self._first_projected, self.init_norms) if fits else None
        if rescale is not None and rescale():
            return
        self._project(self._norms(flat.views[self._first_projected :]))  # the general path; raises on a non-finite or zero norm

    def _project(self, current: torch.Tensor) -> torch.Tensor:
        """Scale the projected groups, whose norms are ``current``, to their initial norms; returns the factors."""
        factors = self.init_norms / current
        if not all(map(math.isfinite, factors.tolist())):  # a nan, inf or zero norm
            check_projectable(self._projected_names, current.tolist(), f"at projection (step {self.steps})")
        torch._foreach_mul_(self._flat.views[self._first_projected :], list(factors.to(self._flat.flat.dtype).unbind()))
        return factors

    def restore_norms(self) -> dict[str, float]:
        """Shrink (or grow) every projected layer back to its initial norm, with its optimizer state and mirrors.

        The re-warm of ``project="on-rewarm"``: a scale-invariant layer computes the same function at any norm,
        so this changes nothing the network computes, and returns each layer's ELR to its value at
        initialization (``rescale``: the optimizer's next step is the one it would take at that scale).
        Returns ``{layer: factor}``. With ``project="from-rewarm"`` every later step projects.
        """
        self._sync()
        current = self._norms(self._flat.views[self._first_projected :])
        factors = self._project(current).tolist()
        follow(self.optimizer, self._flat.current()[self._first_projected :], self._mirrors, factors)
        self._mark_projected()
        self.projecting = self.projecting or self.project == "from-rewarm"
        return dict(zip(self._projected_names, factors))

    # -- schedule --------------------------------------------------------------------------------
    @property
    def lr_factor(self) -> float:
        """The factor the next optimizer step will use."""
        return self.schedule.factor() if self.schedule is not None else 1.0

    def rewarm(self) -> None:
        """Re-warm now (e.g. at a known task switch): restart the schedule's warm-up, and with
        ``project="on-rewarm"``/``"from-rewarm"`` shrink the projected layers back to their initial norms (``restore_norms``)."""
        if self.schedule is None and self.project not in SHRINK_MODES:
            raise RuntimeError(f"nothing to re-warm: schedule=None, project={self.project!r}; give a Schedule or project in {SHRINK_MODES}")
        if self.project in SHRINK_MODES:
            self.restore_norms()
        if self.schedule is not None:
            self.schedule.rewarm()
            self._restarts = self.schedule.restarts()
        self.rewarms += 1

    def projected_layers(self) -> list[tuple[int, float]]:
        """``(number of parameters, initial norm)`` of each projected layer, weight and bias jointly
        (gains excluded): what ``implicit_decay_rate`` needs."""
        groups = self._flat.current()[self._first_projected : self._n_measured]
        norms = self.init_norms[: self._n_measured - self._first_projected].tolist()
        return [(sum(int(p.numel()) for p in group), float(n)) for group, n in zip(groups, norms)]

    # -- reporting -------------------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        """Names of the measured layers (every Linear/Conv, in the model's order), as used in ``metrics()``."""
        return list(self._layer_order)

    @property
    def projected_names(self) -> list[str]:
        """Names of the projected groups (layers, and ``<layer>.gain`` for projected gains)."""
        return list(self._projected_names)

    def metrics(self) -> dict[str, float]:
        """The last measured step's numbers (every step by default; see ``measure_every``, ``measure_next``).

        ``update_norm/<layer>`` = ||u_t||, ``param_norm/<layer>`` = ||W_{t-1}|| (the parameters the step
        started from), ``elr/<layer>`` = their ratio, ``lr_factor`` = the schedule factor of the last step.
        """
        params = dict(zip(self._flat.names, self._param_norms.tolist()))
        updates = dict(zip(self._flat.names, self._update_norms.tolist()))
        out: dict[str, float] = {"lr_factor": float(self._factor)}
        for name in self._layer_order:
            u, w = updates[name], params[name]
            out[f"elr/{name}"] = u / w if w > 0 else math.inf
            out[f"param_norm/{name}"] = w
            out[f"update_norm/{name}"] = u
        return out

    # -- persistence -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: step count, initial norms, schedule (and CUSUM) state."""
        return {
            "steps": self.steps,
            "rewarms": self.rewarms,
            "init_norms": dict(zip(self._projected_names, self.init_norms.tolist())),
            "project": self.project,
            "projecting": self.projecting,
            "project_every": self.project_every,
            "measure_every": self.measure_every,
            "gains": self.gains,
            "schedule_type": None if self.schedule is None else type(self.schedule).__name__,
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        norms = state["init_norms"]
        if set(norms) != set(self._projected_names):
            raise ValueError(f"ELR state projects {sorted(norms)} but this model projects {sorted(self._projected_names)}")
        schedule_type = None if self.schedule is None else type(self.schedule).__name__
        if state["schedule_type"] != schedule_type:
            raise ValueError(f"ELR state has schedule {state['schedule_type']} but this ELR has {schedule_type}")
        self.init_norms = torch.tensor([float(norms[n]) for n in self._projected_names], device=self.init_norms.device)
        self.steps = int(state["steps"])
        self.rewarms = int(state.get("rewarms", 0))  # states saved before it was counted: 0
        self.project = state["project"] if state["project"] in SHRINK_MODES else bool(state["project"])
        self.projecting = bool(state.get("projecting", self.project is True))  # states saved before it: never re-warmed
        self.project_every = int(state["project_every"])
        self.measure_every = int(state.get("measure_every", 1))
        if state["gains"] != self.gains:
            raise ValueError(f"ELR state has gains={state['gains']!r} but this ELR has gains={self.gains!r}")
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
            self._restarts = self.schedule.restarts()
        self._factor = self.lr_factor

    def remove(self) -> None:
        """Detach from the optimizer (the hooks); the model keeps its current parameters."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
