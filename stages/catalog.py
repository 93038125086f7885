"""Every built-in stage, listed by hand, and the catalog they make with the shipped recipes.

A module under `stages/` that is not named here is not a stage (the shared toolkit in
`common/`, the demo-data generators in `demo/`, a family's parsers and helpers). Listing the
stages, as lhotse lists its recipes, keeps discovery free of side effects: importing a
helper never registers anything, and a reader sees the whole DAG's vocabulary in one place.
Stage modules import their heavy libraries (torch, librosa) inside functions, so loading
this list is cheap.
"""
from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from emoprep.manifests.reasons import REJECT_CODES
from emoprep.pipeline.catalog import StageCatalog
from emoprep.pipeline.stage import Stage
from emoprep.stages.deam.stage import Deam
from emoprep.stages.features import Features
from emoprep.stages.foodpics.stage import FoodPics
from emoprep.stages.generic import Generic
from emoprep.stages.images import Images
from emoprep.stages.labels import Labels
from emoprep.stages.pairs import Pairs
from emoprep.stages.pmemo.stage import Pmemo
from emoprep.stages.report.stage import Report
from emoprep.stages.segments.chunks import Chunks
from emoprep.stages.segments.clips import Clips
from emoprep.stages.segments.salient import Salient
from emoprep.stages.spectrogram.stage import Spectrogram
from emoprep.stages.split import Split
from emoprep.stages.tokens.stage import Tokens

# In data-flow order: ingest, segments, transforms, labels, tokens, report.
BUILTIN_STAGES: tuple[type[Stage[Any]], ...] = (
    Deam, Pmemo, FoodPics, Generic,
    Clips, Chunks, Salient,
    Spectrogram, Images, Features,
    Labels, Split, Pairs,
    Tokens,
    Report,
)


@cache
def builtin_catalog() -> StageCatalog:
    """The built-in stages, the recipes shipped in `stages/recipes/` and their reason codes."""
    return StageCatalog(BUILTIN_STAGES, [resources.files("emoprep.stages").joinpath("recipes")], REJECT_CODES)
