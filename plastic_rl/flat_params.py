"""The flat parameter buffer behind ``ELR``: the measured and projected parameters in one tensor.

Its own module because it is a storage technique, not plasticity: ``ELR`` decides what to measure
and project (``projection``) and when (``elr``); this module makes each of those per-step passes one
kernel over one buffer (snapshot, difference, norms) instead of one per tensor.
"""

from __future__ import annotations

import math
import operator

import torch
from torch import nn

__all__ = ["FlatParams", "layer_slots", "norms"]  # Rescale, padded_groups, strided_batches: ELR's own fast path

DOT_ABOVE = 1 << 18  # elements; see norms
GRAIN = 32768  # elements: torch reduces up to at::internal::GRAIN_SIZE in one thread; see strided_batches
ALIGN_BYTES = 64  # where each parameter starts in the flat buffer; see FlatParams.build


def layer_slots(layer: nn.Module) -> list[tuple[nn.Module, str]]:
    """Weight and bias of a layer, as (module, attribute): see ``layers.layer_params`` for why jointly.

    :param layer: a Linear/Conv (any module: its ``weight`` and ``bias`` that are Parameters, in that order)
    """
    return [(layer, attr) for attr in ("weight", "bias") if isinstance(getattr(layer, attr, None), nn.Parameter)]


class FlatParams:
    """The measured and projected parameters, re-pointed into one contiguous buffer.

    Every per-step operation of ``ELR`` then runs once on the whole buffer (snapshot, difference) or
    once per *layer* on views of it (norms, rescaling): a layer's weight and bias sit next to each
    other, so their joint norm is one view. This is the flat-parameter technique of apex and FSDP,
    used because per-tensor dispatch overhead dominates small RL networks (an SB3 PPO MLP step is
    ~1 ms of Adam for ~10k parameters). If anything re-points a parameter (``model.to(...)``,
    ``load_state_dict(assign=True)``), ``ensure()`` notices and rebuilds the buffer from the new values.

    :param groups: (name, [(module, attribute), ...]) per group, e.g. ``(layer name, layer_slots(layer))``; a group's
        parameters sit next to each other (one view, one joint norm). Each parameter in one group only, all of them
        floating point on one device and dtype (else ValueError)
    :param pad_from: the groups from this index on (those ``ELR`` rescales between measurements) may share one padded
        length, side by side, so that one strided 2-D view covers them (see ``padded_groups``); None: no padding
    """

    def __init__(self, groups: list[tuple[str, list[tuple[nn.Module, str]]]], pad_from: int | None = None):
        # Parameters are held as (module, attribute) so that replaced Parameter objects are found again.
        self.pad_from = len(groups) if pad_from is None else pad_from
        self.names = [name for name, _ in groups]
        self.slots = [slots for _, slots in groups]
        self.flat_slots = [slot for slots in self.slots for slot in slots]
        self._dicts = [module._parameters for module, _ in self.flat_slots]  # for ensure()
        self._attrs = [attr for _, attr in self.flat_slots]
        self.build()

    def current(self) -> list[list[nn.Parameter]]:
        return [[module._parameters[attr] for module, attr in slots] for slots in self.slots]  # type: ignore[misc]  # slots hold parameters

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
        align = max(1, ALIGN_BYTES // params[0].element_size())
        spans = [_span([p.numel() for p in group], align) for group in groups]
        padded, length = padded_groups(spans, self.pad_from)
        # Placement: the unpadded groups before the padded ones in the buffer, then the padded ones side by side at one
        # spacing (each ``length`` long, its tail zeros), then the rest; ``bounds`` and ``views`` keep the groups' order.
        placing = [g for g in range(len(groups)) if g < self.pad_from] + padded
        placing += [g for g in range(self.pad_from, len(groups)) if g not in padded]
        starts, end = [0] * len(groups), 0
        for g in placing:
            starts[g] = -(-end // align) * align
            end = starts[g] + (length if g in padded else spans[g])
        self.flat = torch.zeros(end, device=params[0].device, dtype=params[0].dtype)
        bounds = []
        with torch.no_grad():
            for g, group in enumerate(groups):
                offset = starts[g]
                for p in group:
                    offset = -(-offset // align) * align
                    n = p.numel()
                    self.flat[offset : offset + n].copy_(p.reshape(-1))
                    p.data = self.flat[offset : offset + n].view_as(p)
                    offset += n
                bounds.append((starts[g], starts[g] + (length if g in padded else spans[g])))
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
        # ``_parameters.get`` rather than getattr (nn.Module.__getattr__ is slow), and map() over
        # builtins rather than a generator: this runs before every projection.
        current = map(dict.get, self._dicts, self._attrs)
        if all(map(operator.is_, current, self.params)) and list(map(torch.Tensor.data_ptr, self.params)) == self.ptrs:
            return False
        self.build()
        return True


def _span(sizes: list[int], align: int) -> int:
    """Elements from a group's first parameter to the end of its last, each parameter starting on an ``align`` boundary."""
    end = 0
    for n in sizes:
        end = -(-end // align) * align + n
    return end


def padded_groups(spans: list[int], first: int, most: int = GRAIN) -> tuple[list[int], int]:
    """Which groups from ``first`` on share one padded length, and that length: ``([], 0)`` for none.

    Per-op dispatch, not arithmetic, is the cost of rescaling a small network's layers (~3 us an op on this machine's
    CPU, the time of a few thousand elements of work). Groups padded with zeros to one length sit at one spacing and are
    rows of one 2-D view: one norm op and one scaling op for all of them (``Rescale``); zeros add nothing to a norm.
    Taken, longest first, are the groups of at most ``most`` elements (a reduction torch does in one thread, so each
    row is reduced as the group alone) while the zeros added stay within ``most``: torch's own measure of the work that
    one op's overhead is worth (``at::internal::GRAIN_SIZE``). Fewer than two such groups: no padding.

    :param spans: each group's length in elements, its alignment gaps included
    :param first: groups before this index are never padded (``ELR`` measures them, it does not rescale them)
    :param most: the longest group padded, and the most zeros added in all
    """
    small = sorted((g for g in range(first, len(spans)) if spans[g] <= most), key=lambda g: -spans[g])
    if len(small) < 2:
        return [], 0
    length, taken, zeros = spans[small[0]], [], 0
    for g in small:
        if zeros + length - spans[g] <= most:
            taken.append(g)
            zeros += length - spans[g]
    return (sorted(taken), length) if len(taken) >= 2 else ([], 0)


def norms(views: list[torch.Tensor]) -> torch.Tensor:
    """Frobenius norm of each view, as one float32 vector.

    Small views share one ``torch._foreach_norm`` call (per-op dispatch dominates them). Views over
    ``DOT_ABOVE`` elements use ``dot(v, v)`` instead: BLAS is ~2x faster there and more accurate
    (1e-6 vs 1e-5 relative error at 1M elements, against float64), which the projection's 1e-5
    tolerance needs. (The buffer never requires grad: no autograd bookkeeping on this path.)

    :param views: 1-D tensors, e.g. ``FlatParams.views`` (empty: an empty vector)
    """
    if not views:
        return torch.zeros(0)
    out: list[torch.Tensor | None] = [None] * len(views)
    small = []
    for i, v in enumerate(views):
        if v.numel() > DOT_ABOVE and v.dtype in (torch.float32, torch.float64):
            out[i] = torch.dot(v, v).sqrt()
        else:
            small.append(i)
    if small:
        for i, n in zip(small, torch._foreach_norm([views[i] for i in small])):
            out[i] = n
    return torch.stack(out).float()  # type: ignore[arg-type]  # every entry is set above


class Rescale:
    """Scale each of ``views`` (float32) to its norm in ``targets``, in preallocated buffers.

    ``norms``, a division and a rescale, with as few ops as the layout allows: per-op dispatch, not arithmetic, is
    the cost on a small MLP (``tools/bench_core``). Views of one length at a constant spacing in the buffer (SB3's
    twin policy and value towers, stacked hidden layers of one width) are rows of one strided 2-D view: one norm op
    and one scaling op per such batch, not per view. Each norm is written into one preallocated vector and each
    factor read from one, with no tensor allocated per call: right after an optimizer step that freed large
    temporaries (Adam's, on a NatureCNN), torch's first allocation took ~30 us on this project's VM. Computes the same
    float32 values as ``norms`` and a division (each row reduced as the view alone is: batched rows stay within one
    thread's grain; a view over ``DOT_ABOVE`` takes ``dot`` and ``sqrt`` as there).

    :param source: ``FlatParams.views`` of a float32 buffer; kept to tell a rebuild
    :param first: the groups from ``first`` on are rescaled
    :param targets: one norm per rescaled group (a float32 vector)
    """

    def __init__(self, source: list[torch.Tensor], first: int, targets: torch.Tensor):
        self.source, self.targets = source, targets
        self.views = views = source[first:]
        batches = strided_batches(views)
        order = [i for batch in batches for i in batch]
        self._targets = targets[order].clone()  # in batch order
        self.current, self.factors = torch.empty_like(self._targets), torch.empty_like(self._targets)
        self._rows: list[torch.Tensor] = []  # one 2-D (rows, length) view, or a 1-D view, per batch
        self._norm_outs: list[torch.Tensor] = []  # the slice of ``current`` each batch's norms go to
        self._scales: list[torch.Tensor] = []  # the factors of each batch, shaped to broadcast over its rows
        self._dots: list[bool] = []  # a view over DOT_ABOVE: its norm as ``norms`` takes it
        start = 0
        for batch in batches:
            head = views[batch[0]]
            self._dots.append(len(batch) == 1 and head.numel() > DOT_ABOVE)
            if len(batch) == 1:
                self._rows.append(head)
                self._norm_outs.append(self.current[start])
                self._scales.append(self.factors[start])
            else:
                stride = views[batch[1]].data_ptr() - head.data_ptr()
                rows = head.as_strided((len(batch), head.numel()), (stride // head.element_size(), 1))
                self._rows.append(rows)
                self._norm_outs.append(self.current[start : start + len(batch)])
                self._scales.append(self.factors[start : start + len(batch)].unsqueeze(1))
            start += len(batch)

    def __call__(self) -> bool:
        """Rescale; False, with nothing scaled, if a factor is not finite (a nan, inf or zero norm)."""
        for rows, out, dot in zip(self._rows, self._norm_outs, self._dots):
            if dot:
                torch.dot(rows, rows, out=out).sqrt_()
            else:
                torch.linalg.vector_norm(rows, dim=-1, out=out)
        torch.div(self._targets, self.current, out=self.factors)
        if not all(map(math.isfinite, self.factors.tolist())):
            return False
        for rows, scale in zip(self._rows, self._scales):  # a loop of mul_: ~15% less than _foreach_mul_ for a few batches
            rows.mul_(scale)
        return True


def strided_batches(views: list[torch.Tensor], most: int = GRAIN) -> list[list[int]]:
    """Indices of ``views`` in batches that one strided 2-D view covers: one length, one spacing, rows that do not overlap.

    Views over ``most`` elements stay alone: torch may split such a reduction across threads, summing in another
    order than the view alone, and a batch must give each view's norm bit for bit.
    """
    batches: list[list[int]] = []
    open_: dict[int, list[int]] = {}  # length -> the batch still growing for it
    for i, view in enumerate(views):
        n = view.numel()
        batch = open_.get(n)
        if batch is not None and n <= most:
            step = view.data_ptr() - views[batch[-1]].data_ptr()
            spacing = step if len(batch) == 1 else views[batch[1]].data_ptr() - views[batch[0]].data_ptr()
            if step == spacing and step >= n * view.element_size() and step % view.element_size() == 0:
                batch.append(i)
                continue
        batch = [i]
        batches.append(batch)
        open_[n] = batch
    return batches
