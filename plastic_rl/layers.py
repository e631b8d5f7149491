"""The layer vocabulary shared by ``norm``, ``elr`` and ``diagnostics``.

One place says which modules count as weight layers, normalizations and activations, and how a
"block" (weight layer -> optional normalization -> activation) is found. Blocks are found by
adjacency inside ``nn.Sequential`` containers, which is how SB3 (``create_mlp``, ``NatureCNN``) and
most hand-written MLP/CNN code build networks; anything else can be named explicitly by the caller.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

WEIGHT_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
)


class ChannelRMSNorm(nn.Module):
    """RMS normalization over every non-batch dimension with a per-channel gain (dim 1).

    ``nn.RMSNorm`` needs the full normalized shape up front, which a convolution's spatial size does
    not give at insertion time; this is the conv analogue of ``nn.GroupNorm(1, C)`` without centring.

    :param num_channels: C, the size of dim 1 (the gain's length).
    :param eps: added to the mean square before the square root.
    :param affine: learn a per-channel gain (initialized to 1); False: no parameters.
    :param device: device of the gain.
    :param dtype: dtype of the gain.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None, dtype=None):
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels, device=device, dtype=dtype)) if affine else None

    def reset_parameters(self) -> None:
        if self.weight is not None:
            nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, x.dim()))
        y = x * torch.rsqrt(x.pow(2).mean(dim=dims, keepdim=True) + self.eps)
        if self.weight is not None:
            y = y * self.weight.view(1, -1, *([1] * (x.dim() - 2)))
        return y

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}, affine={self.weight is not None}"


NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.RMSNorm,
    nn.GroupNorm,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    ChannelRMSNorm,
)

# Activation families decide which diagnostics mean something (see diagnostics.py):
# "relu": exact-zero region, so dead units and FAU (h > 0) are meaningful;
# "smooth": no exact zero, but a sign that marks the active region (FAU meaningful, "dead" is not);
# "saturating": bounded outputs, where saturation (|h| near the bound) is the failure mode.
RELU_FAMILY: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardshrink, nn.Softshrink, nn.Threshold)
SMOOTH_FAMILY: tuple[type[nn.Module], ...] = (
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.Mish,
    nn.Softplus,
)
SATURATING_FAMILY: tuple[type[nn.Module], ...] = (nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Softsign, nn.Hardsigmoid)
ACTIVATIONS: tuple[type[nn.Module], ...] = RELU_FAMILY + SMOOTH_FAMILY + SATURATING_FAMILY


def activation_family(module: nn.Module) -> str:
    """Return ``"relu"``, ``"smooth"`` or ``"saturating"`` for an activation module.

    :param module: an instance of one of ``ACTIVATIONS`` (anything else: ``TypeError``).
    """
    # ReLU6 and Hardtanh subclass each other in torch; check the saturating family's exact types first.
    if type(module) in SATURATING_FAMILY:
        return "saturating"
    if isinstance(module, RELU_FAMILY):
        return "relu"
    if isinstance(module, SMOOTH_FAMILY):
        return "smooth"
    if isinstance(module, SATURATING_FAMILY):
        return "saturating"
    raise TypeError(f"{type(module).__name__} is not a known activation; known: {[c.__name__ for c in ACTIVATIONS]}")


def saturation_bounds(module: nn.Module) -> tuple[float, float]:
    """The output bounds ``(low, high)`` of a saturating activation (the values it saturates towards).

    :param module: the activation (Hardtanh: its ``min_val``/``max_val``; Sigmoid, Hardsigmoid: (0, 1); otherwise (-1, 1)).
    """
    if isinstance(module, (nn.Sigmoid, nn.Hardsigmoid)):
        return 0.0, 1.0
    if isinstance(module, nn.Hardtanh):
        return float(module.min_val), float(module.max_val)
    return -1.0, 1.0


@dataclass(frozen=True)
class Block:
    """A weight layer and what follows it in its ``nn.Sequential``.

    :param name: the weight layer's qualified name in the model: diagnostics and ELR metrics use it as the layer key,
        so the two report the same names.
    :param layer: the weight layer (Linear/Conv).
    :param norm: the normalization right after it; None if there is none.
    :param activation: the activation after it (after ``norm`` if any); None if there is none.
    :param container: the ``nn.Sequential`` holding it; None outside any Sequential.
    :param index: its position in ``container``; -1 outside any Sequential.
    """

    name: str
    layer: nn.Module
    norm: nn.Module | None
    activation: nn.Module | None
    container: nn.Sequential | None
    index: int


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def iter_weight_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Every Linear/Conv in ``model`` with its qualified name (shared modules once).

    :param model: the network to search (recursively).
    """
    seen: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, WEIGHT_LAYERS) and id(module) not in seen:
            seen.add(id(module))
            yield name, module


def iter_blocks(model: nn.Module) -> Iterator[Block]:
    """Every weight layer, with the normalization and activation that follow it in a Sequential.

    A weight layer outside any Sequential, or last in one, has ``norm=None`` and ``activation=None``:
    it feeds something the structure does not show (an output head, a residual sum), so nothing is
    assumed about it.

    :param model: the network to search (every ``nn.Sequential`` in it, recursively).
    """
    placed: dict[int, Block] = {}
    for prefix, container in model.named_modules():
        if not isinstance(container, nn.Sequential):
            continue
        children = list(container.named_children())
        for i, (child_name, child) in enumerate(children):
            if not isinstance(child, WEIGHT_LAYERS) or id(child) in placed:
                continue
            norm = act = None
            j = i + 1
            if j < len(children) and isinstance(children[j][1], NORM_LAYERS):
                norm = children[j][1]
                j += 1
            if j < len(children) and isinstance(children[j][1], ACTIVATIONS):
                act = children[j][1]
            placed[id(child)] = Block(_join(prefix, child_name), child, norm, act, container, i)
    for name, layer in iter_weight_layers(model):
        yield placed.get(id(layer), Block(name, layer, None, None, None, -1))


def matches(name: str, patterns: Iterable[str]) -> bool:
    """True if ``name`` matches one of the fnmatch ``patterns`` (case-sensitive).

    :param name: a qualified module name.
    :param patterns: fnmatch patterns (``"vf.*"``) or exact names (``"action_net"``).
    """
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def layer_params(layer: nn.Module) -> list[nn.Parameter]:
    """The parameters a normalization makes a layer invariant to the scale of: weight and bias.

    ``Norm(c * (W x + b)) == Norm(W x + b)`` for c > 0, so scale invariance holds for (W, b) taken
    jointly; scaling W alone is invariant only when there is no bias.

    :param layer: a weight layer (Linear/Conv); a missing bias is left out.
    """
    return [p for p in (layer.weight, getattr(layer, "bias", None)) if p is not None]  # type: ignore[misc]  # nn.Module attributes type as Tensor | Module


def architecture(model: nn.Module) -> list[str]:
    """Every submodule of ``model`` as ``"<name>: <Type>(<extra_repr>)"``, in registration order.

    What a state dict cannot tell: an affine-free normalization has no parameters, so a network
    with it and one without it load each other's weights without complaint. Comparing this list
    (saved beside the weights) with the rebuilt model's makes such a mismatch loud.

    :param model: the network (the root is named ``"."``).
    """
    return [f"{name or '.'}: {type(m).__name__}({m.extra_repr()})" for name, m in model.named_modules()]


def architecture_mismatch(saved: list[str], built: list[str]) -> str | None:
    """None if the two ``architecture()`` lists agree, else one line naming the first difference.

    :param saved: the list saved with the weights.
    :param built: the rebuilt model's list.
    """
    if list(saved) == list(built):
        return None
    for i, (a, b) in enumerate(zip(saved, built)):
        if a != b:
            return f"module {i} was saved as {a!r} but is rebuilt as {b!r}"
    longer, which = (saved, "saved") if len(saved) > len(built) else (built, "rebuilt")
    return f"only the {which} network has {longer[min(len(saved), len(built))]!r} (and {abs(len(saved) - len(built)) - 1} more)"
