"""Every public keyword has a ``:param name:`` line (SB3's docstring style), so ``help()`` answers what it does.

"Public" is what users import: each module below, its ``__all__`` (or its names without a leading
underscore), the classes and functions defined in plastic_rl. A class's keywords are its ``__init__``'s,
documented in the class docstring or in ``__init__``'s.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC_MODULES = [
    "plastic_rl",
    "plastic_rl.agents",
    "plastic_rl.envs",
    "plastic_rl.diagnose",
    "plastic_rl.diagnostics",
    "plastic_rl.elr",
    "plastic_rl.schedules",
    "plastic_rl.projection",
    "plastic_rl.flat_params",
    "plastic_rl.interventions",
    "plastic_rl.layers",
    "plastic_rl.norm",
    "plastic_rl.report",
    "plastic_rl.train",
    "plastic_rl.env_ids",
]


def public_callables(module_name: str):
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not getattr(obj, "__module__", "").startswith("plastic_rl"):
            continue  # re-exported from torch, SB3, typing, ...
        yield f"{module_name}.{name}", obj


def undocumented_keywords(obj) -> list[str]:
    function = obj.__init__ if inspect.isclass(obj) else obj
    doc = (obj.__doc__ or "") + ((function.__doc__ or "") if inspect.isclass(obj) else "")
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin __init__ (object's): nothing to document
        return []
    return [
        p.name
        for p in parameters
        if p.name not in ("self", "cls") and not p.name.startswith("_") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and f":param {p.name}:" not in doc
    ]  # fmt: skip


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_keyword_has_a_param_line(module_name):
    missing = {name: keys for name, obj in public_callables(module_name) if (keys := undocumented_keywords(obj))}
    assert not missing, "no ':param <name>:' line for: " + "; ".join(f"{name}({', '.join(keys)})" for name, keys in missing.items())


def test_the_check_finds_a_missing_param_line():
    def documented(a, b=1):
        """Adds.

        :param a: the first.
        :param b: the second.
        """

    def half(a, b=1):
        """:param a: the first."""

    class Config:
        """:param size: how many."""

        def __init__(self, size, depth=2, *args, _private=0, **kwargs):
            pass

    assert undocumented_keywords(documented) == [] and undocumented_keywords(half) == ["b"]
    assert undocumented_keywords(Config) == ["depth"]
