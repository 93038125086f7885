"""The catalogs tests hand the engine: the built-in stages, or them plus the toy stages."""
from __future__ import annotations

from typing import Any

from emoprep.pipeline.catalog import StageCatalog, plugin_stages
from emoprep.pipeline.recipe import Recipe, load_recipe
from emoprep.pipeline.stage import AnyStage
from emoprep.stages.catalog import builtin_catalog


def stage(name: str) -> AnyStage:
    """A built-in stage by name."""
    return builtin_catalog()[name]


def toy_catalog() -> StageCatalog:
    """The built-in stages plus tests/helpers/toy_stages.py (as EMOPREP_PLUGINS would add them)."""
    return builtin_catalog().with_stages(plugin_stages("tests.helpers.toy_stages"))


def recipe(name_or_file: str | None = None, sets: list[str] | None = None,
           catalog: StageCatalog | None = None) -> Recipe:
    """load_recipe against the built-in catalog (or `catalog`)."""
    return load_recipe(name_or_file, sets, catalog=catalog or builtin_catalog())


def recipe_of(name: str, targets: list[str], sections: dict[str, dict[str, Any]],
              catalog: StageCatalog | None = None) -> Recipe:
    """A recipe written in the test, over the built-in catalog (or `catalog`)."""
    return Recipe(name=name, targets=targets, sections=sections, catalog=catalog or builtin_catalog())
