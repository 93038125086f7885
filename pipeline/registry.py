"""Stage names -> stage objects: the built-in list, plus plugins.

The built-in stages are the explicit list in `emoprep.stages.catalog`; nothing is found by
importing every module. Your own stages live in your own modules: decorate the class with
`@register` and name the modules in `EMOPREP_PLUGINS=pkg.mod,other.mod`.
"""
from __future__ import annotations

import importlib
import os
from typing import Any, TypeVar

from emoprep.pipeline.stage import Stage

S = TypeVar("S", bound=type[Stage[Any]])

_REGISTRY: dict[str, Stage[Any]] = {}
_loaded = False


def register(cls: S) -> S:
    """Class decorator for plugin stages: make a stage available to recipes by its `name`."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} has no stage name")
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise ValueError(f"stage name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def load_builtin_stages() -> None:
    """Register the built-in stages (once) and import the modules in EMOPREP_PLUGINS."""
    global _loaded
    if not _loaded:
        from emoprep.stages.catalog import BUILTIN_STAGES

        for cls in BUILTIN_STAGES:
            register(cls)
        _loaded = True
    for mod in filter(None, os.environ.get("EMOPREP_PLUGINS", "").split(",")):
        importlib.import_module(mod.strip())


def get_stage(name: str) -> Stage[Any]:
    load_builtin_stages()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise KeyError(f"unknown stage {name!r}; known stages: {known}") from None


def all_stages() -> dict[str, Stage[Any]]:
    load_builtin_stages()
    return dict(_REGISTRY)
