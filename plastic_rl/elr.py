"""The effective learning rate (ELR): measure it, pin it with projection, raise it by re-warming.

For a layer whose output is normalized, the function depends only on the direction of its
parameters W (weight and bias jointly), and the step an optimizer takes changes that direction by
about ||u_t|| / ||W||: the effective learning rate. Plain training lets ||W|| grow, so the ELR decays
(eta/||W||^2 for SGD, eta/||W|| for Adam) and feature learning stalls. ``ELR``:

- measures, for every Linear/Conv, ``elr = ||u_t||_F / ||W_{t-1}||_F`` with u_t the change made by
  ``optimizer.step()`` itself (before any projection), ``W_{t-1}`` the parameters just before it;
- projects every scale-invariant layer back to its initial norm, so its ELR is set by the lr alone;
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
"""

from __future__ import annotations

import math
import operator
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from plastic_rl.layers import WEIGHT_LAYERS, iter_blocks, matches
from plastic_rl.schedules import SCHEDULES, CusumRewarm, CyclicRewarm, OnDemandRewarm, Schedule, warmup_cosine

__all__ = ["ELR", "projected_parameters", "scale_invariant_layers", "Schedule", "CyclicRewarm", "CusumRewarm", "OnDemandRewarm", "warmup_cosine", "GAIN_MODES"]

GAIN_MODES = ("project", "none")
_DOT_ABOVE = 1 << 18  # elements; see ELR._norms
_ALIGN_BYTES = 64  # where each parameter starts in the flat buffer; see _FlatParams.build


def layer_slots(layer: nn.Module) -> list[tuple[nn.Module, str]]:
    """Weight and bias of a layer, as (module, attribute): see ``layers.layer_params`` for why jointly."""
    return [(layer, attr) for attr in ("weight", "bias") if isinstance(getattr(layer, attr, None), nn.Parameter)]


class _FlatParams:
    """The measured and projected parameters, re-pointed into one contiguous buffer.

    Every per-step operation of ``ELR`` then runs once on the whole buffer (snapshot, difference) or
    once per *layer* on views of it (norms, rescaling): a layer's weight and bias sit next to each
    other, so their joint norm is one view. This is the flat-parameter technique of apex and FSDP,
    used because per-tensor dispatch overhead dominates small RL networks (an SB3 PPO MLP step is
    ~1 ms of Adam for ~10k parameters). If anything re-points a parameter (``model.to(...)``,
    ``load_state_dict(assign=True)``), ``ensure()`` notices and rebuilds the buffer from the new values.
    """

    def __init__(self, groups: list[tuple[str, list[tuple[nn.Module, str]]]]):
        # Parameters are held as (module, attribute) so that replaced Parameter objects are found again.
        self.names = [name for name, _ in groups]
        self.slots = [slots for _, slots in groups]
        self.flat_slots = [slot for slots in self.slots for slot in slots]
        self.build()

    def current(self) -> list[list[nn.Parameter]]:
        return [[module._parameters[attr] for module, attr in slots] for slots in self.slots]

    def build(self) -> None:
        """(Re)allocate the buffer from the parameters' current values and point them into it."""
        groups = self.current()
        owner: dict[int, str] = {}
        for name, group in zip(self.names, groups):
            for p in group:
                if id(p) in owner:
                    raise ValueError(f"parameter of {name!r} is shared with {owner[id(p)]!r}; ELR needs each layer's own parameters")
                owner[id(p)] = name
        params = [p for group in groups for p in group]
        kinds = {(p.device, p.dtype) for p in params}
        if len(kinds) != 1:
            raise ValueError(f"ELR needs its layers on one device and dtype, found {sorted(map(str, kinds))}")
        if not params[0].dtype.is_floating_point:
            raise ValueError(f"ELR needs floating-point parameters, found {params[0].dtype}")
        # Every parameter starts on a 64-byte boundary, as a fresh allocation would: oneDNN's convolutions
        # ran ~10% slower on weights 28 bytes off (NatureCNN, tools/bench_agents). The gaps hold zeros that
        # nothing ever writes (no optimizer sees them), so they add nothing to any norm or update.
        align = max(1, _ALIGN_BYTES // params[0].element_size())
        offsets, end = [], 0
        for p in params:
            start = -(-end // align) * align
            offsets.append(start)
            end = start + p.numel()
        self.flat = torch.zeros(end, device=params[0].device, dtype=params[0].dtype)
        bounds = []
        with torch.no_grad():
            i = 0
            for group in groups:
                first = offsets[i]
                for p in group:
                    offset, n = offsets[i], p.numel()
                    self.flat[offset : offset + n].copy_(p.reshape(-1))
                    p.data = self.flat[offset : offset + n].view_as(p)
                    i += 1
                bounds.append((first, offset + n))  # layer_slots: every group has a weight
        self.params = params
        self.ptrs = [p.data_ptr() for p in params]
        self.bounds = bounds
        self.views = self.segments(self.flat)
        # The one extra buffer: W_{t-1} before an optimizer step, then u_t = W_t - W_{t-1} after it.
        self.snapshot = torch.zeros_like(self.flat)
        self.snapshot_views = self.segments(self.snapshot)

    def segments(self, buffer: torch.Tensor) -> list[torch.Tensor]:
        """One view of ``buffer`` per group (a group's parameters, flattened and joined)."""
        return [buffer[a:b] for a, b in self.bounds]

    def ensure(self) -> bool:
        """Rebuild if a parameter no longer lives in the buffer; True if it did."""
        # ``_parameters[attr]`` rather than getattr (nn.Module.__getattr__ is slow), and map() over
        # builtins rather than a generator: this runs before every optimizer step.
        current = [module._parameters.get(attr) for module, attr in self.flat_slots]
        if all(map(operator.is_, current, self.params)) and list(map(torch.Tensor.data_ptr, current)) == self.ptrs:
            return False
        self.build()
        return True


class ELR:
    """Measure, project and re-warm the effective learning rate of ``model`` trained by ``optimizer``.

    Call ``step(loss)`` once after every ``optimizer.step()``. Hooks on the optimizer snapshot the
    parameters right before each step (one buffer, the measured layers' parameters) and apply the
    schedule's factor to every param group's lr for the duration of the step only, so the owner's
    own lr (an SB3 schedule resets it every ``train()``) is never overwritten.

    ``measure_every=k`` measures every k-th step (0: only the steps after ``measure_next()``), for
    callers that log less often than they step; projection and the schedule run every step regardless.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        schedule: Schedule | None = None,
        project: bool = True,
        project_every: int = 1,
        measure_every: int = 1,
        exclude: Iterable[str] = (),
        include: Iterable[str] | None = None,
        gains: str = "project",
    ):
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
        self.project = bool(project)
        self.project_every = project_every
        self.measure_every = measure_every
        self._measure_requested = False
        self._synced = False  # the pre-step hook already checked the buffer this step
        self.gains = gains
        exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)

        blocks, chosen, gains = _select(model, exclude, include, self.project, self.gains)
        names = [b.name for b in blocks]
        # Buffer layout: [measured, not projected | measured and projected | projected gains], so the
        # measured groups are a prefix and the projected ones a suffix: slices, not gathers, per step.
        free = [b for b in blocks if b not in chosen]
        groups = [(b.name, layer_slots(b.layer)) for b in free + chosen] + gains
        self._flat = _FlatParams(groups)
        self._n_measured = len(blocks)
        self._first_projected = len(free)
        self._projected_names = self._flat.names[self._first_projected :]
        self._layer_order = names  # the model's own order, for reporting

        norms = self._norms(self._flat.views)
        self.init_norms = norms[self._first_projected :].clone()
        self._check_finite(self.init_norms.tolist(), "at construction")
        self.steps = 0  # calls to step()
        self._fresh = False  # a measured optimizer step has run since the last step() call
        # True while the projected layers are exactly at their initial norms (the last step() projected
        # them and nothing re-pointed them since), so ||W_{t-1}|| needs no pass over them.
        self._at_init_norms = False
        self._projected_versions: list[int] = []
        self._base_lrs: list[Any] = []
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

    @staticmethod
    def _norms(views: list[torch.Tensor]) -> torch.Tensor:
        """Frobenius norm of each view, as one float32 vector.

        Small views share one ``torch._foreach_norm`` call (per-op dispatch dominates them). Views over
        ``_DOT_ABOVE`` elements use ``dot(v, v)`` instead: BLAS is ~2x faster there and more accurate
        (1e-6 vs 1e-5 relative error at 1M elements, against float64), which the projection's 1e-5
        tolerance needs. (The buffer never requires grad: no autograd bookkeeping on this path.)
        """
        if not views:
            return torch.zeros(0)
        out: list[torch.Tensor | None] = [None] * len(views)
        small = []
        for i, v in enumerate(views):
            if v.numel() > _DOT_ABOVE and v.dtype in (torch.float32, torch.float64):
                out[i] = torch.dot(v, v).sqrt()
            else:
                small.append(i)
        if small:
            for i, n in zip(small, torch._foreach_norm([views[i] for i in small])):
                out[i] = n
        return torch.stack(out).float()

    # -- optimizer hooks -------------------------------------------------------------------------
    def _before_optimizer_step(self, optimizer, args, kwargs) -> None:
        self._sync()
        self._synced = True
        if self._due(self.steps + 1):  # this step is measured: keep W_{t-1}
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
        self._factor = self.lr_factor
        self._base_lrs = [group["lr"] for group in optimizer.param_groups]
        if self._factor != 1.0:
            for group in optimizer.param_groups:
                group["lr"] = group["lr"] * self._factor

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
        if not self._synced:  # no optimizer step since the last call: nothing checked the buffer yet
            self._sync()
        self._synced = False
        self.steps += 1
        measured, flat = self._n_measured, self._flat
        project = self.project and self.steps % self.project_every == 0
        views = []
        if self._fresh:  # u_t = W_t - W_{t-1}, computed in the snapshot's buffer
            torch.sub(flat.flat, flat.snapshot, out=flat.snapshot)
            views += flat.snapshot_views[:measured]
        elif self._due(self.steps):  # measured, but no optimizer step ran: nothing moved
            self._update_norms = torch.zeros(measured)
            self._param_norms = self._norms(flat.views[:measured])
        if project:
            views += flat.views[self._first_projected :]
        norms = self._norms(views)  # one pass of dot products for both
        if self._fresh:
            self._update_norms, norms = norms[:measured], norms[measured:]
            self._fresh = False
            self._measure_requested = False
        if project:
            self._project(norms)
        self._at_init_norms = project
        if project:
            self._projected_versions = self._versions()
        if self.schedule is not None:
            self.schedule.step(loss)

    def _due(self, step: int) -> bool:
        """Whether optimizer step number ``step`` is measured."""
        return self._measure_requested or (self.measure_every > 0 and step % self.measure_every == 0)

    def measure_next(self) -> None:
        """Measure the next optimizer step whatever ``measure_every`` says (e.g. once per logging period)."""
        self._measure_requested = True

    def project_now(self) -> None:
        """Rescale every projected group to its initial norm now."""
        self._sync()
        self._project(self._norms(self._flat.views[self._first_projected :]))
        self._at_init_norms = True
        self._projected_versions = self._versions()

    def _versions(self) -> list[int]:
        """The parameters' in-place version counters: whether anything wrote to them since a projection.

        (Projection writes through the flat buffer's views, which leaves the parameters' own counters
        alone; ``reset_parameters()``, ``p.mul_()`` and indexed writes on a parameter advance it.)
        """
        return [p._version for p in self._flat.params]

    def _project(self, current: torch.Tensor) -> None:
        """Scale the projected groups, whose norms are ``current``, to their initial norms."""
        factors = self.init_norms / current
        if not all(map(math.isfinite, factors.tolist())):  # a nan, inf or zero norm
            self._check_finite(current.tolist(), f"at projection (step {self.steps})")
        torch._foreach_mul_(self._flat.views[self._first_projected :], list(factors.to(self._flat.flat.dtype).unbind()))

    def _check_finite(self, norms: list[float], when: str) -> None:
        for name, value in zip(self._projected_names, norms):
            if not (math.isfinite(value) and value > 0):
                what = "non-finite" if not math.isfinite(value) else "zero"
                raise FloatingPointError(
                    f"layer {name!r} has a {what} parameter norm ({value}) {when}; "
                    "a scale-invariant layer needs a finite, non-zero norm to be projected"
                )

    # -- schedule --------------------------------------------------------------------------------
    @property
    def lr_factor(self) -> float:
        """The factor the next optimizer step will use."""
        return self.schedule.factor() if self.schedule is not None else 1.0

    def rewarm(self) -> None:
        """Restart the schedule's warm-up now (e.g. at a known task switch)."""
        if self.schedule is None:
            raise RuntimeError("ELR has no schedule to re-warm; pass schedule=CyclicRewarm(...) or CusumRewarm(...)")
        self.schedule.rewarm()

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
            "init_norms": dict(zip(self._projected_names, self.init_norms.tolist())),
            "project": self.project,
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
        self.project = bool(state["project"])
        self.project_every = int(state["project_every"])
        self.measure_every = int(state.get("measure_every", 1))
        if state["gains"] != self.gains:
            raise ValueError(f"ELR state has gains={state['gains']!r} but this ELR has gains={self.gains!r}")
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
        self._factor = self.lr_factor

    def remove(self) -> None:
        """Detach from the optimizer (the hooks); the model keeps its current parameters."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _select(model: nn.Module, exclude: tuple[str, ...], include: Any, project: bool, gains: str):
    """ELR's rule: (every block, the projected blocks, the projected gain groups) of ``model``."""
    blocks = list(iter_blocks(model))
    if not blocks:
        raise ValueError(
            f"model {type(model).__name__} has no Linear/Conv layer "
            f"(accepted: {', '.join(c.__name__ for c in WEIGHT_LAYERS)}); nothing to measure or project"
        )
    names = [b.name for b in blocks]
    if include is not None:
        include = [include] if isinstance(include, str) else list(include)
        missing = [n for n in include if n not in names]
        if missing:
            raise ValueError(f"include names unknown layers {missing}; layers: {sorted(names)}")
        chosen = [b for b in blocks if b.name in include]
    else:
        chosen = [b for b in blocks if _scale_invariant(b, exclude)]
    if not project:
        chosen = []
    elif not chosen:
        raise ValueError(
            f"model {type(model).__name__} has no scale-invariant layer (a Linear/Conv followed by a "
            "normalization in an nn.Sequential): call plastic_rl.norm.insert_norm first, pass include=[...], "
            "or use project=False"
        )
    gain_groups = []
    if gains == "project":
        for b in chosen:
            gain = getattr(b.norm, "weight", None) if b.norm is not None else None
            if isinstance(gain, nn.Parameter):
                gain_groups.append((f"{b.name}.gain", [(b.norm, "weight")]))
    return blocks, chosen, gain_groups


def _scale_invariant(block, exclude: tuple[str, ...]) -> bool:
    return block.norm is not None and not matches(block.name, exclude)


def scale_invariant_layers(model: nn.Module, exclude: Iterable[str] = ()) -> list[str]:
    """Names of the layers ELR projects by default (a Linear/Conv followed by a normalization); may be empty.

    Lets a caller decide before building an ``ELR`` whether ``project=True`` applies, e.g. an agent
    whose network has no hidden layer (SB3's ``net_arch=[]``) measures without projecting.
    """
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    return [b.name for b in iter_blocks(model) if _scale_invariant(b, exclude)]


def projected_parameters(
    model: nn.Module, *, exclude: Iterable[str] = (), include: Iterable[str] | None = None, gains: str = "project"
) -> list[nn.Parameter]:
    """The parameters ``ELR(model, ..., exclude=, include=, gains=)`` would project, before any optimizer exists.

    E.g. to build an AdamW whose weight decay skips them (their norm is pinned by projection anyway).
    """
    if gains not in GAIN_MODES:
        raise ValueError(f"gains={gains!r} is not accepted; accepted: {', '.join(GAIN_MODES)}")
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    _, chosen, gain_groups = _select(model, exclude, include, True, gains)
    slots = [slot for b in chosen for slot in layer_slots(b.layer)] + [slot for _, group in gain_groups for slot in group]
    return [module._parameters[attr] for module, attr in slots]


def make_schedule(kind: str | None, **kwargs: Any) -> Schedule | None:
    """Build a schedule from a name (a key of ``SCHEDULES``: ``"cyclic"``, ``"cusum"``, ``"on-demand"``; or None)."""
    if kind is None or kind == "none":
        return None
    if kind not in SCHEDULES:
        raise ValueError(f"schedule {kind!r} is unknown; accepted: none, {', '.join(SCHEDULES)}")
    return SCHEDULES[kind](**kwargs)
