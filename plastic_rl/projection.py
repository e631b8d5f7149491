"""Which parameters ``ELR`` projects: the scale-invariant layers of a model (and their norms' gains).

Its own module because the rule is needed before any ``ELR`` exists: an agent asks whether a network
has anything to project (``scale_invariant_layers``), a caller builds an AdamW whose weight decay skips
the projected parameters (``projected_parameters``). ``ELR`` applies the same rule (``select``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from torch import nn

from plastic_rl.flat_params import layer_slots
from plastic_rl.layers import WEIGHT_LAYERS, iter_blocks, matches

__all__ = ["GAIN_MODES", "select", "scale_invariant_layers", "projected_parameters"]  # check_projectable: ELR's

GAIN_MODES = ("project", "none")


def select(
    model: nn.Module, exclude: tuple[str, ...], include: Any, project: bool, gains: str
) -> tuple[list[Any], list[Any], list[tuple[str, list[Any]]]]:
    """ELR's rule: (every block, the projected blocks, the projected gain groups) of ``model``.

    :param model: the network; ValueError if it has no Linear/Conv layer
    :param exclude: fnmatch patterns of layer names not to project; unused with ``include``
    :param include: exact names of the layers to project (a str is one name), or None for every scale-invariant layer
    :param project: False: project nothing (the last two values are empty); True: ValueError if nothing is projected
    :param gains: ``"project"``: a gain group for each projected layer's normalization weight; anything else: none
    """
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

    :param model: the network
    :param exclude: fnmatch patterns of layer names to leave out (``"vf.*"``; a str is one pattern)
    """
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    return [b.name for b in iter_blocks(model) if _scale_invariant(b, exclude)]


def projected_parameters(
    model: nn.Module, *, exclude: Iterable[str] = (), include: Iterable[str] | None = None, gains: str = "project"
) -> list[nn.Parameter]:
    """The parameters ``ELR(model, ..., exclude=, include=, gains=)`` would project, before any optimizer exists.

    E.g. to build an AdamW whose weight decay skips them (their norm is pinned by projection anyway).

    :param model: the network
    :param exclude: fnmatch patterns of layer names not to project (a str is one pattern); unused with ``include``
    :param include: exact names of the layers to project, instead of every scale-invariant layer (None: that default)
    :param gains: ``"project"``: include the projected layers' normalization gains; ``"none"``: leave them out
    """
    if gains not in GAIN_MODES:
        raise ValueError(f"gains={gains!r} is not accepted; accepted: {', '.join(GAIN_MODES)}")
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    _, chosen, gain_groups = select(model, exclude, include, True, gains)
    slots = [slot for b in chosen for slot in layer_slots(b.layer)] + [slot for _, group in gain_groups for slot in group]
    return [module._parameters[attr] for module, attr in slots]  # type: ignore[misc]  # slots hold parameters


def check_projectable(names: list[str], norms: list[float], when: str) -> None:
    """FloatingPointError naming the first layer whose norm is not finite or is zero: it cannot be scaled to a norm.

    :param names: the projected groups' names; :param norms: their norms; :param when: e.g. ``"at construction"``
    """
    for name, value in zip(names, norms):
        if not (math.isfinite(value) and value > 0):
            what = "non-finite" if not math.isfinite(value) else "zero"
            raise FloatingPointError(
                f"layer {name!r} has a {what} parameter norm ({value}) {when}; "
                "a scale-invariant layer needs a finite, non-zero norm to be projected"
            )
