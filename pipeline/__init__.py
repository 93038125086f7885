"""emoprep's engine: the stage protocol, recipes, fingerprints, atomic outputs, executors, CLI.

It knows nothing about audio or images. A stage author needs only what is re-exported here:

    from emoprep.pipeline import Outcome, Reject, Stage, WorkItem, register, runtime
    from emoprep.pipeline.context import ItemContext, StageContext   # to annotate
"""
from __future__ import annotations

from emoprep.pipeline.catalog import register
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.stage import NoParams, Outcome, PlannedItems, Reject, Stage, WorkItem, runtime

__version__ = "0.1.0"

__all__ = [
    "ItemContext", "NoParams", "Outcome", "PlannedItems", "Reject", "Stage", "StageContext",
    "WorkItem", "__version__", "register", "runtime",
]
