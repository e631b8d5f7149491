"""Setting a network's training mode from a remembered list of its modules, not by ``nn.Module.train``'s recursion.

SB3's off-policy agents call ``policy.set_training_mode(False)`` in every ``predict``: once per env step.
``nn.Module.train`` recurses through every submodule, calling ``train``, ``children()`` and nn.Module's slow
``__setattr__`` on each (~2.5 us a module on this project's CPU VM: 31 us of a 159 us PlasticDQN ``predict``, 81 of
305 us for PlasticSAC, whose normalizations add modules to walk). ``CachedTrainMode.train`` remembers which modules a
full call reached; a later call that finds the very same modules (walked through their ``_modules``, a list compare)
sets each one's flag directly. The flags end as ``nn.Module.train`` leaves them, always: a changed tree, a mode that is
not a bool, or a module whose class brings its own ``train`` or ``__setattr__`` takes the full call.
"""

from __future__ import annotations

import operator
from typing import Any

from torch import nn

__all__ = ["CachedTrainMode", "modules_of"]


def modules_of(root: nn.Module) -> list[nn.Module | None]:
    """``root`` and everything under it, breadth first through ``_modules`` (``None`` where a child slot holds None)."""
    out: list[Any] = [root]
    for module in out:  # the list grows while it is read: breadth first
        if module is not None:
            out.extend(module._modules.values())
    return out


class CachedTrainMode:
    """Mixin for an ``nn.Module`` class: ``train(mode)`` in one pass over the modules the last full call reached.

    Only for instances whose ``norm`` is set (the normalized networks): ``norm=None`` (``plasticity="none"``) keeps
    ``nn.Module.train`` itself, as every other path of SB3's networks.
    """

    def train(self, mode: bool = True) -> Any:
        state = self.__dict__  # plain attributes: no nn.Module.__getattr__ on this path
        if state.get("norm") is None:
            return super().train(mode)  # type: ignore[misc]
        known = state.get("_train_modules")
        if known is not None and type(mode) is bool and _same(modules_of(self), known):  # type: ignore[arg-type]
            for module in known:
                if module is not None:
                    module.__dict__["training"] = mode  # what nn.Module.__setattr__ does with a bool
            return self
        super().train(mode)  # type: ignore[misc]
        modules = modules_of(self)  # type: ignore[arg-type]
        plain = all(m is None or (type(m).train in _PLAIN and type(m).__setattr__ is nn.Module.__setattr__) for m in modules)
        state["_train_modules"] = modules if plain else None
        return self


def _same(modules: list[Any], known: list[Any]) -> bool:
    """The very same objects in the same slots (by identity: a module's own ``__eq__`` says nothing here)."""
    return len(modules) == len(known) and all(map(operator.is_, modules, known))


_PLAIN = (nn.Module.train, CachedTrainMode.train)  # set every flag below them to the mode, and nothing else
