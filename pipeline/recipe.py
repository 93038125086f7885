"""Recipes: TOML files that choose stages and set their parameters.

A recipe has a `[recipe]` table (`name`, `description`, `targets`, optional `extends`) and one
table per stage whose keys are fields of that stage's `Params` dataclass. A recipe is read
against a stage catalog (`emoprep.pipeline.catalog`), which also holds the shipped recipes;
a user file may `extends = "thesis-v3"` and override any parameter.
`--set STAGE.KEY=VALUE` overrides one parameter on the command line. Unknown stages or keys
are configuration errors that name the key (and suggest the closest known one).
"""
from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from emoprep.pipeline.catalog import StageCatalog, suggest
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.stage import AnyStage

DEFAULT_RECIPE = "thesis-v3"


@dataclass
class Recipe:
    """Targets and per-stage parameters, with the catalog of stages they were checked against."""

    name: str
    description: str = ""
    targets: list[str] = field(default_factory=list)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    origin: str = ""
    catalog: StageCatalog = field(kw_only=True, repr=False, compare=False)

    def stage(self, name: str) -> AnyStage:
        """The catalog's stage `name` (KeyError naming the known ones)."""
        return self.catalog[name]

    def params_for(self, stage: AnyStage) -> Any:
        """The stage's Params filled from this recipe (defaults for keys not given)."""
        return build_params(stage.Params, self.sections.get(stage.name, {}), stage.name)


def _read_recipe_source(name_or_file: str, catalog: StageCatalog) -> tuple[dict[str, Any], str]:
    shipped = catalog.shipped_recipes()
    if name_or_file in shipped:
        text, origin = shipped[name_or_file], f"recipe {name_or_file} (shipped)"
    else:
        path = Path(name_or_file)
        if not path.is_file():
            raise ConfigError(
                f"no recipe {name_or_file!r}: not a shipped recipe ({', '.join(sorted(shipped))}) "
                f"and no such file")
        text, origin = path.read_text(encoding="utf-8"), str(path)
    try:
        return tomllib.loads(text), origin
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: invalid TOML: {exc}") from None


def load_recipe(name_or_file: str | None = None, sets: list[str] | None = None, *, catalog: StageCatalog,
                _seen: tuple[str, ...] = ()) -> Recipe:
    """Load a shipped recipe by name or a TOML file, follow `extends`, apply `--set`s; every
    stage and parameter is checked against `catalog`."""
    name_or_file = name_or_file or DEFAULT_RECIPE
    if name_or_file in _seen:
        raise ConfigError(f"recipe {name_or_file!r} extends itself (chain: {' -> '.join(_seen)})")
    data, origin = _read_recipe_source(name_or_file, catalog)
    head = data.pop("recipe", {})
    unknown_head = set(head) - {"name", "description", "targets", "extends"}
    if unknown_head:
        raise ConfigError(f"{origin}: unknown key(s) in [recipe]: {', '.join(sorted(unknown_head))}")
    if "extends" in head:
        base = load_recipe(head["extends"], None, catalog=catalog, _seen=(*_seen, name_or_file))
    else:
        base = Recipe(name=head.get("name", Path(name_or_file).stem), catalog=catalog)
    stages = catalog
    sections = {k: dict(v) for k, v in base.sections.items()}
    for section, values in data.items():
        if section not in stages:
            raise ConfigError(f"{origin}: unknown stage [{section}]{suggest(section, stages)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table of parameters")
        sections.setdefault(section, {}).update(values)
    recipe = Recipe(
        name=head.get("name", base.name),
        description=head.get("description", base.description),
        targets=list(head.get("targets", base.targets)),
        sections=sections,
        origin=origin,
        catalog=catalog,
    )
    for target in recipe.targets:
        if target not in stages:
            raise ConfigError(f"{origin}: unknown target stage {target!r}{suggest(target, stages)}")
    for assignment in sets or []:
        apply_set(recipe, assignment)
    # Validate every section now, so a typo fails before any work starts.
    for section, values in recipe.sections.items():
        build_params(stages[section].Params, values, section)
    return recipe


def apply_set(recipe: Recipe, assignment: str) -> None:
    """Apply one `STAGE.KEY=VALUE`; VALUE is read as a TOML value, else as a plain string."""
    if "=" not in assignment or "." not in assignment.split("=", 1)[0]:
        raise ConfigError(f"--set {assignment!r}: expected STAGE.KEY=VALUE, e.g. spectrogram.keep_fullres=true")
    lhs, raw = assignment.split("=", 1)
    stage, key = lhs.strip().split(".", 1)
    if stage not in recipe.catalog:
        raise ConfigError(f"--set {assignment!r}: unknown stage {stage!r}{suggest(stage, recipe.catalog)}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # e.g. a bare path: --set deam.root=/data/DEAM
    recipe.sections.setdefault(stage, {})[key.strip()] = value


def build_params(params_cls: type, values: dict[str, Any], stage: str) -> Any:
    """Instantiate a Params dataclass from recipe values, checking names and types."""
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    hints = typing.get_type_hints(params_cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown parameter {stage}.{key}{suggest(key, fields)}; "
                              f"known: {', '.join(sorted(fields)) or '(none)'}")
        kwargs[key] = coerce(value, hints[key], f"{stage}.{key}")
    try:
        return params_cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{stage}]: {exc}") from None


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting where lossless (int -> float,
    list -> tuple). Supports bool, int, float, str, Literal, Optional, list/tuple/dict."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in get_args(tp):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where} = {value!r}: must be one of {', '.join(map(repr, choices))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r}: expected a list")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where} = {value!r}: expected {len(args)} values")
            return tuple(coerce(v, a, where) for v, a in zip(value, args, strict=True))
        item_tp = args[0] if args else Any
        items = [coerce(v, item_tp, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} = {value!r}: expected a table")
        ktp, vtp = get_args(tp) or (Any, Any)
        return {coerce(k, ktp, where): coerce(v, vtp, where) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} = {value!r}: expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} = {value!r}: expected an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} = {value!r}: expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} = {value!r}: expected a string")
    return value


def params_as_dict(params: Any, include_runtime: bool = True) -> dict[str, Any]:
    """Plain dict of a Params instance; `include_runtime=False` drops runtime knobs."""
    out = {}
    for f in dataclasses.fields(params):
        if not include_runtime and f.metadata.get("runtime"):
            continue
        out[f.name] = _plain(getattr(params, f.name))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value
