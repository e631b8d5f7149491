"""Make layers scale-invariant: insert a normalization between each Linear/Conv and its nonlinearity.

With ``Norm(c * (W x + b)) == Norm(W x + b)``, the function a layer computes no longer depends on the
norm of its parameters, only on their direction. That is what lets ``elr.ELR`` project the parameters
back to their initial norm without changing the network, so the effective learning rate
(update norm / parameter norm) is set by the learning rate alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from plastic_rl.layers import ACTIVATIONS, WEIGHT_LAYERS, ChannelRMSNorm, iter_blocks, matches

NORM_KINDS = ("layer", "rms")


def make_norm(layer: nn.Module, kind: str = "layer", affine: bool = True) -> nn.Module:
    """The normalization that makes ``layer``'s output scale-invariant.

    Linear: ``LayerNorm`` / ``RMSNorm`` over the output features. Conv: normalization over all of
    (channels, *spatial) per sample with a per-channel gain -- ``GroupNorm(1, C)`` for "layer" and
    ``ChannelRMSNorm`` for "rms" -- because the per-sample output norm is what scaling the kernel scales.

    :param layer: the Linear/Conv whose output it normalizes (its device and dtype are used).
    :param kind: ``"layer"`` (LayerNorm / GroupNorm(1, C)) or ``"rms"`` (RMSNorm / ChannelRMSNorm).
    :param affine: learnable gain (and bias for "layer"); False: no parameters.
    """
    if kind not in NORM_KINDS:
        raise ValueError(f"kind={kind!r} is not a normalization kind; accepted: {', '.join(NORM_KINDS)}")
    weight = layer.weight
    factory: dict[str, Any] = {"device": weight.device, "dtype": weight.dtype}
    if isinstance(layer, nn.Linear):
        features = layer.out_features
        if kind == "layer":
            return nn.LayerNorm(features, elementwise_affine=affine, **factory)
        return nn.RMSNorm(features, elementwise_affine=affine, **factory)
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        channels = layer.out_channels
        if kind == "layer":
            return nn.GroupNorm(1, channels, affine=affine, **factory)
        return ChannelRMSNorm(channels, affine=affine, **factory)
    raise TypeError(f"{type(layer).__name__} is not a weight layer; accepted: {[c.__name__ for c in WEIGHT_LAYERS]}")


def insert_norm(
    module: nn.Module,
    kind: str = "layer",
    exclude: Iterable[str] = (),
    affine: bool = True,
) -> nn.Module:
    """Insert a normalization between every Linear/Conv and the activation right after it.

    Works recursively on every ``nn.Sequential`` inside ``module`` (SB3's ``create_mlp`` networks and
    ``NatureCNN`` are Sequentials) and modifies ``module`` in place; it is returned for chaining.
    A layer that already has a normalization after it is left alone, so calling this twice is safe.
    Build the optimizer *after* this call: the new gains are new parameters.

    Raises ValueError if ``module`` has no Linear/Conv, or no Linear/Conv followed by an activation
    (nothing would become scale-invariant).

    :param module: the network to modify in place.
    :param kind: ``"layer"`` or ``"rms"`` (see :func:`make_norm`).
    :param exclude: fnmatch patterns of weight-layer names (``"value_net"``, ``"mlp_extractor.value_net.*"``) to leave unnormalized.
    :param affine: give the normalizations learnable gains (see :func:`make_norm`); False: no new parameters.
    """
    if kind not in NORM_KINDS:
        raise ValueError(f"kind={kind!r} is not a normalization kind; accepted: {', '.join(NORM_KINDS)}")
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    blocks = list(iter_blocks(module))
    if not blocks:
        raise ValueError(
            f"{type(module).__name__} has no Linear/Conv layer to normalize (accepted: {', '.join(c.__name__ for c in WEIGHT_LAYERS)})"
        )
    candidates = [b for b in blocks if b.activation is not None or b.norm is not None]
    if not candidates:
        raise ValueError(
            f"{type(module).__name__} has no Linear/Conv followed by an activation inside an nn.Sequential "
            f"(accepted activations: {', '.join(c.__name__ for c in ACTIVATIONS[:6])}, ...); nothing to normalize"
        )
    for block in candidates:
        if block.norm is None and not matches(block.name, exclude):
            _insert_after(block.container, block.layer, make_norm(block.layer, kind, affine))  # type: ignore[arg-type]  # an activation or norm follows: in a Sequential
    return module


def _insert_after(container: nn.Sequential, layer: nn.Module, norm: nn.Module) -> None:
    """Put ``norm`` right after ``layer`` in ``container``, keeping every existing child's name.

    Existing names stay (so ``policy_net.2.weight`` keeps its state-dict key and vanilla weights still
    load); the normalization is named ``<layer name>_norm``.
    """
    items = list(container._modules.items())
    container._modules.clear()
    for name, child in items:
        container._modules[name] = child
        if child is layer:
            norm_name = f"{name}_norm"
            while norm_name in dict(items):
                norm_name += "_"
            container._modules[norm_name] = norm
