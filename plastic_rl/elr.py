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
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from plastic_rl.layers import WEIGHT_LAYERS, iter_blocks, matches
from plastic_rl.schedules import SCHEDULES, CusumRewarm, CyclicRewarm, Schedule, warmup_cosine

__all__ = ["ELR", "Schedule", "CyclicRewarm", "CusumRewarm", "warmup_cosine", "GAIN_MODES"]

GAIN_MODES = ("project", "none")


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
        self.build()

    def current(self) -> list[list[nn.Parameter]]:
        return [[getattr(module, attr) for module, attr in slots] for slots in self.slots]

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
        self.flat = torch.empty(sum(p.numel() for p in params), device=params[0].device, dtype=params[0].dtype)
        offset = 0
        bounds = []
        with torch.no_grad():
            for group in groups:
                start = offset
                for p in group:
                    n = p.numel()
                    self.flat[offset : offset + n].copy_(p.reshape(-1))
                    p.data = self.flat[offset : offset + n].view_as(p)
                    offset += n
                bounds.append((start, offset))
        self.params = params
        self.ptrs = [p.data_ptr() for p in params]
        self.bounds = bounds
        self.views = self.segments(self.flat)

    def segments(self, buffer: torch.Tensor) -> list[torch.Tensor]:
        """One view of ``buffer`` per group (a group's parameters, flattened and joined)."""
        return [buffer[a:b] for a, b in self.bounds]

    def ensure(self) -> bool:
        """Rebuild if a parameter no longer lives in the buffer; True if it did."""
        current = [getattr(module, attr) for slots in self.slots for module, attr in slots]
        if all(p is q and p.data_ptr() == ptr for p, q, ptr in zip(current, self.params, self.ptrs)):
            return False
        self.build()
        return True


class ELR:
    """Measure, project and re-warm the effective learning rate of ``model`` trained by ``optimizer``.

    Call ``step(loss)`` once after every ``optimizer.step()``. Hooks on the optimizer snapshot the
    parameters right before each step (one buffer, the measured layers' parameters) and apply the
    schedule's factor to every param group's lr for the duration of the step only, so the owner's
    own lr (an SB3 schedule resets it every ``train()``) is never overwritten.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        schedule: Schedule | None = None,
        project: bool = True,
        project_every: int = 1,
        exclude: Iterable[str] = (),
        include: Iterable[str] | None = None,
        gains: str = "project",
    ):
        if not (isinstance(project_every, int) and project_every >= 1):
            raise ValueError(f"project_every={project_every!r} must be an int >= 1")
        if gains not in GAIN_MODES:
            raise ValueError(f"gains={gains!r} is not accepted; accepted: {', '.join(GAIN_MODES)}")
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a plastic_rl.elr.Schedule (e.g. CyclicRewarm), got {type(schedule).__name__}")
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.project = bool(project)
        self.project_every = project_every
        self.gains = gains
        exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)

        blocks = list(iter_blocks(model))
        if not blocks:
            raise ValueError(
                f"model {type(model).__name__} has no Linear/Conv layer "
                f"(accepted: {', '.join(c.__name__ for c in WEIGHT_LAYERS)}); nothing to measure or project"
            )
        measured = [b.name for b in blocks]
        if include is not None:
            include = [include] if isinstance(include, str) else list(include)
            missing = [n for n in include if n not in measured]
            if missing:
                raise ValueError(f"include names unknown layers {missing}; layers: {sorted(measured)}")
            chosen = [b for b in blocks if b.name in include]
        else:
            chosen = [b for b in blocks if b.norm is not None and not matches(b.name, exclude)]
        if self.project and not chosen:
            raise ValueError(
                f"model {type(model).__name__} has no scale-invariant layer (a Linear/Conv followed by a "
                "normalization in an nn.Sequential): call plastic_rl.norm.insert_norm first, pass include=[...], "
                "or use project=False"
            )
        gains = []
        if self.gains == "project" and self.project:
            for b in chosen:
                gain = getattr(b.norm, "weight", None) if b.norm is not None else None
                if isinstance(gain, nn.Parameter):
                    gains.append((f"{b.name}.gain", [(b.norm, "weight")]))
        # Buffer layout: every measured layer (weight and bias joined), then the projected gains.
        self._flat = _FlatParams([(b.name, layer_slots(b.layer)) for b in blocks] + gains)
        self._n_measured = len(blocks)
        position = {name: i for i, name in enumerate(self._flat.names)}
        self._projected = [position[b.name] for b in chosen] + [position[name] for name, _ in gains] if self.project else []
        self._projected_names = [self._flat.names[i] for i in self._projected]
        with torch.no_grad():
            norms = self._norms(self._projected_views())
        self._check_finite(norms.tolist(), "at construction")
        self.init_norms = norms

        self.steps = 0  # calls to step()
        self._snapshot = torch.empty_like(self._flat.flat)  # the one extra buffer: W_{t-1}, then u_t
        self._fresh = False  # an optimizer step has run since the last step() call
        self._base_lrs: list[Any] = []
        self._factor = self.lr_factor
        self._update_norms = torch.zeros(self._n_measured)
        self._param_norms = self._norms(self._flat.views[: self._n_measured])
        self._handles = [
            optimizer.register_step_pre_hook(self._before_optimizer_step),
            optimizer.register_step_post_hook(self._after_optimizer_step),
        ]

    def _sync(self) -> bool:
        """Follow parameters that were re-pointed or replaced (``.to()``, ``load_state_dict(assign=True)``)."""
        if not self._flat.ensure():
            return False
        self._snapshot = torch.empty_like(self._flat.flat)
        self.init_norms = self.init_norms.to(self._flat.flat.device)
        return True

    @staticmethod
    def _norms(views: list[torch.Tensor]) -> torch.Tensor:
        # _foreach_norm is the batched kernel torch's own optimizers use: one call for all layers.
        return torch.stack(torch._foreach_norm(views)).float() if views else torch.zeros(0)

    def _projected_views(self) -> list[torch.Tensor]:
        return [self._flat.views[i] for i in self._projected]

    # -- optimizer hooks -------------------------------------------------------------------------
    @torch.no_grad()
    def _before_optimizer_step(self, optimizer, args, kwargs) -> None:
        self._sync()
        self._snapshot.copy_(self._flat.flat)
        self._param_norms = self._norms(self._flat.views[: self._n_measured])
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
    @torch.no_grad()
    def step(self, loss: float | torch.Tensor | None = None) -> None:
        """After ``optimizer.step()``: measure the update, project (every ``project_every``), advance the schedule.

        Raises FloatingPointError on a non-finite ``loss`` or a non-finite/zero norm of a layer about to be
        projected, naming it; nothing is skipped silently.
        """
        if loss is not None:
            loss = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
            if not math.isfinite(loss):
                raise FloatingPointError(f"ELR.step got a non-finite loss ({loss}) at step {self.steps}")
        if self._sync():
            self._fresh = False  # the parameters were replaced: the snapshot no longer matches them
        if self._fresh:
            torch.sub(self._flat.flat, self._snapshot, out=self._snapshot)  # u_t, in the snapshot's buffer
            self._update_norms = self._norms(self._flat.segments(self._snapshot)[: self._n_measured])
            self._fresh = False
        else:  # no optimizer step since the last call: nothing moved
            self._update_norms = torch.zeros(self._n_measured)
        self.steps += 1
        if self.project and self.steps % self.project_every == 0:
            self.project_now()
        if self.schedule is not None:
            self.schedule.step(loss)

    @torch.no_grad()
    def project_now(self) -> None:
        """Rescale every projected group to its initial norm now."""
        views = self._projected_views()
        norms = self._norms(views)
        self._check_finite(norms.tolist(), f"at projection (step {self.steps})")
        torch._foreach_mul_(views, list((self.init_norms / norms).to(views[0].dtype).unbind()))

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
        """Names of the measured layers (every Linear/Conv), as used in ``metrics()``."""
        return list(self._flat.names[: self._n_measured])

    @property
    def projected_names(self) -> list[str]:
        """Names of the projected groups (layers, and ``<layer>.gain`` for projected gains)."""
        return list(self._projected_names)

    def metrics(self) -> dict[str, float]:
        """The last step's measurements.

        ``update_norm/<layer>`` = ||u_t||, ``param_norm/<layer>`` = ||W_{t-1}|| (the parameters the step
        started from), ``elr/<layer>`` = their ratio, ``lr_factor`` = the schedule factor that step used.
        """
        out: dict[str, float] = {"lr_factor": float(self._factor)}
        updates, params = self._update_norms.tolist(), self._param_norms.tolist()
        for name, u, w in zip(self._flat.names, updates, params):
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


def make_schedule(kind: str | None, **kwargs: Any) -> Schedule | None:
    """Build a schedule from a name (``"cyclic"``, ``"cusum"``, or None) and its keyword arguments."""
    if kind is None or kind == "none":
        return None
    if kind not in SCHEDULES:
        raise ValueError(f"schedule {kind!r} is unknown; accepted: none, {', '.join(SCHEDULES)}")
    return SCHEDULES[kind](**kwargs)
