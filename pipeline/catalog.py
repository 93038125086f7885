"""The stage catalog: the stages, shipped recipes and reason codes one run may use.

The engine never imports a stage. A composition root (the command line, the Python API, a
test) builds a catalog from stage classes it imported itself and hands it to the recipe
loader; the recipe carries it to the runner, and the runner hands each worker the stage
object it needs. So nothing depends on an import having registered something first.

Plugins: `EMOPREP_PLUGINS=pkg.mod,other.mod:MyStage` names modules (their `@register`ed
classes, or a `STAGES` tuple) or single classes; `plugin_stages` imports them.
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Iterator, Mapping
from importlib.resources.abc import Traversable
from typing import Any, TypeVar

from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.reasons import ENGINE_CODES, ReasonCode
from emoprep.pipeline.stage import AnyStage, Stage

S = TypeVar("S", bound=type[Stage[Any]])
PLUGIN_MARK = "__emoprep_plugin__"


def register(cls: S) -> S:
    """Mark a class in a plugin module as a stage to load (see `plugin_stages`); marking
    registers nothing anywhere, so importing the module has no side effect."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} has no stage name")
    setattr(cls, PLUGIN_MARK, True)
    return cls


class StageCatalog(Mapping[str, AnyStage]):
    """Stage name -> stage object, plus the shipped recipes' folders and documented reasons."""

    def __init__(self, stages: Iterable[AnyStage | type[AnyStage]], recipe_dirs: Iterable[Traversable] = (),
                 reasons: Mapping[ReasonCode, str] | None = None):
        self._stages: dict[str, AnyStage] = {}
        for st in stages:
            obj = st() if isinstance(st, type) else st
            if obj.name in self._stages:
                raise ValueError(f"stage name {obj.name!r} given twice")
            self._stages[obj.name] = obj
        self.recipe_dirs = tuple(recipe_dirs)
        self.reasons: dict[ReasonCode, str] = {**ENGINE_CODES, **(reasons or {})}

    def __getitem__(self, name: str) -> AnyStage:
        try:
            return self._stages[name]
        except KeyError:
            known = ", ".join(sorted(self._stages)) or "(none)"
            raise KeyError(f"unknown stage {name!r}{suggest(name, self._stages)}; known stages: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._stages)

    def __len__(self) -> int:
        return len(self._stages)

    def with_stages(self, stages: Iterable[AnyStage | type[AnyStage]],
                    reasons: Mapping[ReasonCode, str] | None = None) -> StageCatalog:
        """A new catalog with `stages` added; a stage whose name is taken replaces the old one
        (a plugin's own `labels`, a test's stand-in)."""
        added = StageCatalog(stages)
        merged = {**self._stages, **added._stages}
        return StageCatalog(merged.values(), self.recipe_dirs, {**self.reasons, **(reasons or {})})

    def shipped_recipes(self) -> dict[str, str]:
        """Recipe name -> TOML text of the recipes in the catalog's recipe folders."""
        out: dict[str, str] = {}
        for folder in self.recipe_dirs:
            for entry in sorted(folder.iterdir(), key=lambda e: e.name):
                if entry.name.endswith(".toml"):
                    out.setdefault(entry.name[: -len(".toml")], entry.read_text(encoding="utf-8"))
        return out


def plugin_stages(spec: str) -> list[type[AnyStage]]:
    """The stage classes named by `spec` (EMOPREP_PLUGINS): comma-separated `module` (its
    `STAGES`, else its classes marked with `@register`) or `module:Class`."""
    found: list[type[AnyStage]] = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        mod_name, _, attr = entry.partition(":")
        try:
            module = importlib.import_module(mod_name)
        except ImportError as exc:
            raise ConfigError(f"EMOPREP_PLUGINS: cannot import {mod_name!r}: {exc}") from None
        if attr:
            cls = getattr(module, attr, None)
            if not (isinstance(cls, type) and issubclass(cls, Stage)):
                raise ConfigError(f"EMOPREP_PLUGINS: {entry!r} is not a Stage class")
            found.append(cls)
            continue
        listed = getattr(module, "STAGES", None)
        classes = list(listed) if listed is not None else [
            v for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, Stage) and v.__dict__.get(PLUGIN_MARK)]
        if not classes:
            raise ConfigError(f"EMOPREP_PLUGINS: module {mod_name!r} defines no STAGES and no @register'ed stage")
        found.extend(classes)
    return found


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
