"""Rescale a scale-invariant layer together with its optimizer state, so training goes on exactly.

A layer followed by a normalization computes the same function at ``c * W`` as at ``W``, and its
gradient there is ``g / c``. Shrinking ``W`` back to its initial norm (the re-warm of preset
``norm-rewarm``) therefore raises its effective learning rate without changing what the network
computes. The optimizer's state is kept in gradient units (Adam's moments, SGD's momentum), so it
is rescaled with the weights: the first moment by ``1/c``, the second by ``1/c^2``. Then the next
step is the step the optimizer would have taken had the run been at the new scale all along (Adam's
update is unchanged; SGD's is ``1/c`` larger, as its gradient is); without it, Adam's slow second
moment would make the steps after a shrink up to ``1/c`` times larger again until it caught up.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# State tensor -> the power of the scale factor it carries (a gradient carries -1). Keys not listed
# (``step``, NAdam's ``mu_product``, RMSprop's ``momentum_buffer`` of gradient / RMS ratios) are scale-free.
STATE_POWERS: dict[type[torch.optim.Optimizer], dict[str, int]] = {
    torch.optim.Adam: {"exp_avg": -1, "exp_avg_sq": -2, "max_exp_avg_sq": -2},
    torch.optim.AdamW: {"exp_avg": -1, "exp_avg_sq": -2, "max_exp_avg_sq": -2},
    torch.optim.NAdam: {"exp_avg": -1, "exp_avg_sq": -2},
    torch.optim.RAdam: {"exp_avg": -1, "exp_avg_sq": -2},
    torch.optim.Adamax: {"exp_avg": -1, "exp_inf": -1},
    torch.optim.RMSprop: {"square_avg": -2, "grad_avg": -1},
    torch.optim.Adagrad: {"sum": -2},
    torch.optim.SGD: {"momentum_buffer": -1},
}


def state_powers(optimizer: torch.optim.Optimizer) -> dict[str, int] | None:
    """The powers of ``STATE_POWERS`` for ``optimizer`` (its class or the nearest listed base class), or
    None for an optimizer whose state units are unknown (``rescale_state`` then restarts its state)."""
    for cls in type(optimizer).__mro__:
        if cls in STATE_POWERS:
            return STATE_POWERS[cls]
    return None


def unknown_state_warning(optimizer: torch.optim.Optimizer) -> str:
    accepted = ", ".join(c.__name__ for c in STATE_POWERS)
    return (
        f"optimizer {type(optimizer).__name__}: the units of its state are unknown, so a re-warm restarts the state of the "
        f"layers it rescales (as for a new optimizer) instead of rescaling it; rescaled exactly: {accepted} and their subclasses"
    )


@torch.no_grad()
def rescale_state(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor], factor: float) -> None:
    """Rescale the optimizer state of ``params`` for weights multiplied by ``factor`` (the weights are the caller's);
    an optimizer of unknown state units has the state of ``params`` dropped: it restarts it like a new one."""
    powers = state_powers(optimizer)
    for param in params:
        state = optimizer.state.get(param)
        if not state:
            continue  # no step yet: nothing to rescale
        if powers is None:
            del optimizer.state[param]
            continue
        for key, power in powers.items():
            value = state.get(key)
            if isinstance(value, torch.Tensor) and value.shape == param.shape:
                value.mul_(factor**power)


@torch.no_grad()
def follow(
    optimizer: torch.optim.Optimizer,
    groups: Sequence[Sequence[torch.Tensor]],
    mirrors: Sequence[Sequence[Sequence[torch.Tensor]]],
    factors: Sequence[float],
) -> None:
    """After layer ``i`` (the parameters ``groups[i]``) was multiplied by ``factors[i]``: rescale its optimizer state
    (``rescale_state``) and multiply the same layer of every mirror (``mirror_groups``) by the same factor."""
    for params, factor in zip(groups, factors):
        rescale_state(optimizer, params, factor)
    for mirror in mirrors:
        for params, factor in zip(mirror, factors):
            torch._foreach_mul_(list(params), factor)


def mirror_groups(model: nn.Module, names: Sequence[str], mirrors: Sequence[nn.Module]) -> list[list[list[torch.Tensor]]]:
    """Per mirror (a target network), the parameters of each named layer of ``model``; ValueError if a mirror lacks one."""
    own = dict(model.named_modules())
    out = []
    for mirror in mirrors:
        modules = dict(mirror.named_modules())
        groups = []
        for name in names:
            theirs, shapes = modules.get(name), [p.shape for p in own[name].parameters(recurse=False)]
            if theirs is None or [p.shape for p in theirs.parameters(recurse=False)] != shapes:
                raise ValueError(f"mirror {type(mirror).__name__} has no layer {name!r} shaped like the model's (parameters {shapes})")
            groups.append(list(theirs.parameters(recurse=False)))
        out.append(groups)
    return out
