"""The composition root: what the command line and the Python API hand the engine.

The engine (`emoprep.pipeline`) imports no stage; here the built-in catalog
(`emoprep.stages.catalog`) meets the plugins named in `EMOPREP_PLUGINS`, and run-level
policies become stage parameters.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from emoprep.pipeline.catalog import StageCatalog, plugin_stages
from emoprep.pipeline.recipe import Recipe

# A stage that may build a model with a seeded random init declares this runtime parameter;
# `--allow-random-init` (or the demo data) sets it, real data without the flag clears it.
RANDOM_INIT_PARAM = "allow_random_init"


def stage_catalog() -> StageCatalog:
    """The built-in stages and recipes, plus the plugins in EMOPREP_PLUGINS (read per call,
    so a changed environment is seen)."""
    from emoprep.stages.catalog import builtin_catalog

    plugins = os.environ.get("EMOPREP_PLUGINS", "")
    base = builtin_catalog()
    return base.with_stages(plugin_stages(plugins)) if plugins.strip() else base


def is_demo_data(root: Path | None) -> bool:
    """The embedded demo dataset (random-init tokens are fine there); anything else is real data."""
    from emoprep.stages.demo.dataset import MARKER

    return root is not None and (root / MARKER).is_file()


def ensure_demo_data(folder: Path) -> Path:
    from emoprep.stages.demo.dataset import ensure_demo_data as write

    return write(folder)


def set_random_init_policy(recipe: Recipe, allowed: bool) -> None:
    """Tell every stage that declares `allow_random_init` whether this run may use it."""
    for name, stage in recipe.catalog.items():
        if any(f.name == RANDOM_INIT_PARAM for f in dataclasses.fields(stage.Params)):
            recipe.sections.setdefault(name, {})[RANDOM_INIT_PARAM] = allowed
