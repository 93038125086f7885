"""Shared by the `foodpics` tests: a stage context over a folder, the runner's item loop,
tiny images and ratings rows, and the demo tree as xlsx or csv."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from emoprep.pipeline.atomic import atomic_write_bytes
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.stage import Reject, WorkItem
from emoprep.stages.demo import foodpics as demo
from emoprep.stages.demo.media import image_bytes, picture
from emoprep.stages.foodpics.params import THESIS_AROUSAL, THESIS_VALENCE, FoodPicsParams
from emoprep.stages.foodpics.stage import FoodPics
from tests.helpers.stage_run import assert_accounted, run_in_context

STAGE = FoodPics()
RATING_COLS = (*THESIS_VALENCE, *THESIS_AROUSAL)


def make_ctx(tmp: Path, root: Path, **params: Any) -> StageContext[FoodPicsParams]:
    return StageContext(stage="foodpics", params=FoodPicsParams(**params), out_root=tmp / "out",
                        out_dir=tmp / "out" / "foodpics" / "fp", roots={"foodpics": root})


def run(ctx: StageContext[FoodPicsParams]
        ) -> tuple[list[WorkItem], pd.DataFrame, list[Reject], dict[str, int]]:
    """plan → process every item (as a worker would) → finalize; payloads must be plain."""
    run = run_in_context(STAGE, ctx, json_payloads=True)
    assert_accounted(run)
    return run.items, run.rows, run.rejects, run.counters


def jpeg(path: Path, color=(200, 60, 40), size=(64, 48)) -> Path:
    """A flat picture of one colour."""
    atomic_write_bytes(path, image_bytes(picture(size, color, background=color), "JPEG", quality=90))
    return path


def table_row(n, valence, arousal, type_="Sweets", taste="sweet", processing="processed"):
    return [n, f"item {n}", type_, taste, processing, *valence, *arousal]


def decimal_mean(values: list[Any]) -> Decimal:
    return sum((Decimal(str(v)) for v in values), Decimal(0)) / len(values)


def demo_tree(tmp: Path, fmt: str) -> tuple[Path, dict[str, Any]]:
    root = tmp / "FoodPics Extended"
    info = demo.write_foodpics_demo(root)
    if fmt == "csv":
        (root / demo.SHEET_NAME).unlink()
        demo.write_foodpics_ratings_csv(root / "ratings.csv")
    return root, info
