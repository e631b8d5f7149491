"""The standard plasticity interventions, with exact optimizer state: ReDo, Shrink & Perturb, resets.

Each one edits parameters in place (the same ``Parameter`` objects, so optimizers, ``ELR``'s flat
buffer and target-network bookkeeping keep pointing at them) and then makes the optimizer's state
agree with the edit:

- an entry that was re-initialized has its per-parameter state zeroed, exactly there: every state
  tensor shaped like its parameter (Adam/AdamW ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``; SGD's
  ``momentum_buffer``; any other optimizer's alike). Every other entry of every state tensor is left
  bit for bit. Scalar state (Adam's ``step``) is per tensor, so a partial reset (``redo``) keeps it;
- a parameter whose every entry was changed (``reset``, ``shrink_perturb``) has its whole state
  cleared, the step count included: the optimizer starts it afresh, as it would a new parameter.

(Plasticine keeps the stale moments of re-initialized weights; dopamine's ReDo and timoklein/redo
zero them for their own agent only. This module does it for any model and any torch optimizer.)

Zeroed Adam moments make the next update of those entries about ``(1 - beta1) / sqrt(1 - beta2)``
times the lr (~3.2x with the defaults, bias correction having long decayed): the known cost of
resetting Adam's statistics, shared with every ReDo implementation that resets them.

``mirrors``: networks that must receive the *same* edit on the same entries, e.g. a DQN/SAC target
network: it gets the same fresh values, the same zeroed columns, the same shrink, while the entries
nothing touched keep their lag. Mirrors have no optimizer state.

Which units ``redo`` resets is ``diagnostics.dormant_units`` (the definition of ``dormant_ratio``).
Where a dormant unit's output goes is traced through the forward pass itself (a ``TorchFunctionMode``
that follows the activation's output through views, flatten and concatenation into the Linear/Conv
layers that read it), so SB3's networks work whatever module holds the consumer (PPO's ``action_net``,
SAC's ``mu`` and ``log_std``, a critic's ``cat([features, actions])``). Units whose output reaches an
operation this tracing cannot follow are left alone, and ``redo`` warns which. The tracing is its own
module (``unit_flow``); this one makes the edits and keeps the optimizer state consistent with them.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from plastic_rl import diagnostics
from plastic_rl.layers import iter_blocks, matches
from plastic_rl.unit_flow import Forward, trace

__all__ = ["redo", "shrink_perturb", "reset", "Initializer"]

Initializer = Callable[[nn.Module, str], None]  # (module, its qualified name) -> initialize it in place


def default_init(module: nn.Module, name: str = "") -> None:
    """The module's own initializer (``reset_parameters``), the one it was built with in PyTorch.

    Pass ``init=`` where a model was built otherwise (SB3's PPO: orthogonal, with a gain per module);
    it gets the module and its qualified name in the model.
    """
    module.reset_parameters()  # type: ignore[operator]  # a missing one is refused before (_whole_tensor_edit)


# -- checks ----------------------------------------------------------------------------------------
def _check_owned(model: nn.Module, optimizer: torch.optim.Optimizer | None, params: Iterable[nn.Parameter]) -> None:
    """Fail if ``optimizer`` does not own the parameters about to be edited: their state would go stale."""
    if optimizer is None:
        return
    owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    missing = [names.get(id(p), "?") for p in params if id(p) not in owned]
    if missing:
        raise ValueError(
            f"the optimizer does not own {missing[:4]}{' ...' if len(missing) > 4 else ''} of {type(model).__name__}: "
            "pass the optimizer that trains these parameters (or optimizer=None for a network nothing trains)"
        )


def _check_mirrors(model: nn.Module, mirrors: Sequence[nn.Module]) -> list[dict[str, nn.Parameter]]:
    shapes = {n: p.shape for n, p in model.named_parameters()}
    out = []
    for mirror in mirrors:
        params = dict(mirror.named_parameters())
        if {n: p.shape for n, p in params.items()} != shapes:
            raise ValueError(f"mirror {type(mirror).__name__} does not have the parameters (names and shapes) of {type(model).__name__}")
        out.append(params)
    return out


# -- optimizer state -------------------------------------------------------------------------------
def _zero_state_entries(optimizer: torch.optim.Optimizer | None, param: nn.Parameter, index: tuple) -> None:
    """Zero ``index`` of every state tensor of ``param`` shaped like it; everything else untouched."""
    if optimizer is None:
        return
    for value in optimizer.state.get(param, {}).values():
        if isinstance(value, torch.Tensor) and value.shape == param.shape:
            value[index] = 0


def _clear_state(optimizer: torch.optim.Optimizer | None, param: nn.Parameter) -> None:
    """Drop all of ``param``'s state (step count included): the optimizer restarts it like a new one."""
    if optimizer is not None and param in optimizer.state:
        del optimizer.state[param]


def _fresh_parameters(module: nn.Module, name: str, init: Initializer) -> dict[str, torch.Tensor]:
    """What ``init`` would give ``module``'s own parameters now, without touching them.

    A shallow copy with new parameter tensors: copying the module deeply would copy the whole
    storage its parameters may be views of (``ELR``'s flat buffer).
    """
    clone = copy.copy(module)
    clone._parameters = {k: None if v is None else nn.Parameter(torch.empty_like(v)) for k, v in module._parameters.items()}
    clone._modules = {}
    with torch.no_grad():
        init(clone, name)
    return {k: v.detach() for k, v in clone._parameters.items() if v is not None}


# -- ReDo ------------------------------------------------------------------------------------------
def redo(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    inputs: Any,
    tau: float = 0.1,
    *,
    forward: Forward | None = None,
    init: Initializer = default_init,
    mirrors: Sequence[nn.Module] = (),
    exclude: Iterable[str] = (),
) -> dict[str, list[int]]:
    """Recycle the tau-dormant units of every hidden layer (Sokar et al. 2023, "The dormant neuron phenomenon").

    For each unit that ``diagnostics.dormant_units`` finds dormant on ``inputs``: its incoming weights
    and bias (a row of a Linear, an output channel of a Conv) get fresh values from ``init`` (the
    layer's own initializer by default), the per-unit gain and bias of a normalization after it go
    back to their initial values, and its outgoing weights (the columns that read it, in every layer
    that does) become zero, so the rest of the network does not see the new unit until it learns.
    The optimizer state of exactly those entries is zeroed (module docstring).

    Without normalization the network's output on any input is unchanged except for the dormant
    units' former (tiny) contributions. With a LayerNorm, re-initialized units also change the
    statistics their layer is normalized with, so the other units of that layer move too.

    Returns ``{layer: [reset unit indices]}`` for every hidden layer considered.

    :param model: the network to edit in place.
    :param optimizer: the optimizer that trains ``model``'s edited parameters (its state is made to agree); None: a network nothing trains.
    :param inputs: the batch the dormant units are found on (as for ``diagnostics.measure``).
    :param tau: dormant threshold in [0, 1): units with m_i / mean_j m_j <= tau are reset (``diagnostics.dormant_mask``).
    :param forward: ``forward(model, inputs)`` runs the model when ``model(inputs)`` does not (e.g. an SB3 policy).
    :param init: ``init(module, qualified_name)`` initializes a module in place; default: its ``reset_parameters()``.
    :param mirrors: networks given the same edit on the same entries (e.g. a target network; same parameter names and shapes).
    :param exclude: fnmatch patterns of weight-layer names to leave alone (e.g. a features extractor another optimizer trains).
    """
    if not 0 <= tau < 1:
        raise ValueError(f"tau={tau!r} is outside [0, 1); ReDo resets units whose score is <= tau")
    mirror_params = _check_mirrors(model, mirrors)
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    blocks = {b.name: b for b in iter_blocks(model) if b.activation is not None and not matches(b.name, exclude)}
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no Linear/Conv followed by an activation: no hidden unit to recycle")
    masks = diagnostics.dormant_units(model, inputs, tau, forward=forward)
    flow = trace(model, inputs, forward, {id(blocks[name].activation): name for name in masks if name in blocks})
    names = {id(p): n for n, p in model.named_parameters()}

    edits: list[tuple[Any, tuple, Any]] = []  # (parameter, index, new value)
    report: dict[str, list[int]] = {}
    skipped: dict[str, str] = {}
    for name, mask in masks.items():
        block = blocks.get(name)
        if block is None:
            continue
        units = torch.nonzero(mask).reshape(-1)
        report[name] = []
        if units.numel() == 0:
            continue
        if name in flow.lost or not flow.consumers.get(name):
            skipped[name] = flow.lost.get(name, "nothing the tracing could follow")
            continue
        fresh = _fresh_parameters(block.layer, name, init)
        for attr, value in fresh.items():
            edits.append((getattr(block.layer, attr), (units,), value[units]))
        if block.norm is not None:
            norm_name = next(n for n, m in model.named_modules() if m is block.norm)
            norm_fresh = _fresh_parameters(block.norm, norm_name, init)
            for attr, value in norm_fresh.items():
                if value.shape[:1] == mask.shape:  # per-unit gain / bias
                    edits.append((getattr(block.norm, attr), (units,), value[units]))
        for consumer in flow.consumers[name]:
            columns = consumer.columns(units)
            edits.append((consumer.layer.weight, (slice(None), columns), 0.0))
        report[name] = units.tolist()

    _check_owned(model, optimizer, [p for p, _, _ in edits])
    # Fresh values first, zeros last: a weight that is both a reset unit's incoming weight and another
    # reset unit's outgoing weight ends up zero (a reset unit's outgoing weights are always zero).
    edits.sort(key=lambda edit: isinstance(edit[2], float))
    with torch.no_grad():
        for param, index, value in edits:
            param[index] = value
            _zero_state_entries(optimizer, param, index)
            for params in mirror_params:
                params[names[id(param)]][index] = value
    if skipped:
        warnings.warn(
            "redo left dormant units alone where it could not see what reads them: "
            + "; ".join(f"{layer} (its output goes into {why})" for layer, why in skipped.items()),
            UserWarning,
            stacklevel=2,
        )
    return report


# -- whole-tensor interventions --------------------------------------------------------------------
def _owners(model: nn.Module, names: Sequence[str] | None) -> dict[str, nn.Module]:
    """Modules with parameters of their own, by qualified name: all, or those at/under/matching ``names``."""
    owners = {n: m for n, m in model.named_modules() if any(p is not None for p in m._parameters.values())}
    if names is None:
        return owners
    known = [n for n, _ in model.named_modules() if n]

    def chosen(name: str, pattern: str) -> bool:
        return name == pattern or name.startswith(pattern + ".") or matches(name, [pattern])

    unknown = [p for p in names if not any(chosen(k, p) for k in known)]
    if unknown:
        raise ValueError(f"unknown layer names {unknown}; layers with parameters: {sorted(owners)}")
    return {n: m for n, m in owners.items() if any(chosen(n, p) for p in names)}


def _whole_tensor_edit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    modules: dict[str, nn.Module],
    mirrors: Sequence[nn.Module],
    init: Initializer,
    combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> dict[str, int]:
    """Give every parameter of ``modules`` ``combine(old, fresh)`` (mirrors too); clear its optimizer state."""
    if init is default_init:
        missing = [n for n, m in modules.items() if not callable(getattr(m, "reset_parameters", None))]
        if missing:
            raise ValueError(f"modules {missing} have no reset_parameters(); pass init=callable(module) that initializes them")
    mirror_params = _check_mirrors(model, mirrors)
    _check_owned(model, optimizer, [p for m in modules.values() for p in m._parameters.values() if p is not None])
    names = {id(p): n for n, p in model.named_parameters()}
    report = {}
    for name, module in modules.items():
        for attr, fresh in _fresh_parameters(module, name, init).items():
            param = module._parameters[attr]
            assert param is not None  # _fresh_parameters returns only the set ones
            with torch.no_grad():
                param.copy_(combine(param, fresh))
                for params in mirror_params:
                    target = params[names[id(param)]]
                    target.copy_(combine(target, fresh))
            _clear_state(optimizer, param)
        report[name] = sum(p.numel() for p in module._parameters.values() if p is not None)
    return report


def shrink_perturb(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    shrink: float = 0.4,
    perturb: float = 0.1,
    *,
    layers: Sequence[str] | None = None,
    init: Initializer = default_init,
    mirrors: Sequence[nn.Module] = (),
) -> dict[str, int]:
    """theta <- shrink * theta + perturb * theta_fresh (Ash & Adams 2020), theta_fresh a new ``init`` of each layer.

    Every module with parameters of its own is shrunk and perturbed, normalization gains included
    (theta_fresh = 1 for them). Every touched parameter's optimizer state is cleared, Adam's step count
    included: its old moments describe gradients of a network that no longer exists. Returns
    ``{module: parameters touched}``.

    :param model: the network to edit in place.
    :param optimizer: the optimizer that trains ``model``'s edited parameters (its state is made to agree); None: a network nothing trains.
    :param shrink: factor (>= 0) on the current parameters.
    :param perturb: factor (>= 0) on the fresh ``init`` values.
    :param layers: qualified module names or fnmatch patterns: only the modules at, under or matching them; None: all.
    :param init: ``init(module, qualified_name)`` initializes a module in place; default: its ``reset_parameters()``.
    :param mirrors: networks given the same edit on the same entries (e.g. a target network; same parameter names and shapes).
    """
    for key, value in (("shrink", shrink), ("perturb", perturb)):
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and value >= 0):
            raise ValueError(f"{key}={value!r} must be a number >= 0")
    modules = _owners(model, layers)
    return _whole_tensor_edit(model, optimizer, modules, mirrors, init, lambda old, fresh: shrink * old + perturb * fresh)


def reset(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    layers: Sequence[str],
    *,
    init: Initializer = default_init,
    mirrors: Sequence[nn.Module] = (),
) -> dict[str, int]:
    """Re-initialize the named layers (Nikishin et al. 2022, primacy bias; e.g. the last k layers).

    Their parameters get fresh ``init`` values and all of their optimizer state is cleared. Returns
    ``{module: parameters re-initialized}``.

    :param model: the network to edit in place.
    :param optimizer: the optimizer that trains ``model``'s edited parameters (its state is made to agree); None: a network nothing trains.
    :param layers: non-empty list of qualified module names (``"q_net.4"``; ``"mlp_extractor.policy_net"`` for everything
        under it) or fnmatch patterns.
    :param init: ``init(module, qualified_name)`` initializes a module in place; default: its ``reset_parameters()``.
    :param mirrors: networks given the same edit on the same entries (e.g. a target network; same parameter names and shapes).
    """
    if isinstance(layers, str) or not layers:
        raise ValueError(f"layers={layers!r}: give a non-empty list of layer names, e.g. ['q_net.4']")
    modules = _owners(model, list(layers))
    return _whole_tensor_edit(model, optimizer, modules, mirrors, init, lambda old, fresh: fresh)
