"""The manifest row of a kept image and the kinds of its columns. One module for both, so
the row's columns and their declared Parquet types (rating columns float, categories
string, named by the recipe) cannot drift apart.
"""
from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

from emoprep.manifests.columns import IMAGE_FILE_COLUMNS, ITEM_COLUMNS
from emoprep.pipeline.columns import ColumnKind
from emoprep.stages.foodpics.columns import RatingRecord
from emoprep.stages.foodpics.params import FoodPicsParams
from emoprep.stages.foodpics.rules import ImageFile, complete_groups

if TYPE_CHECKING:
    from PIL import Image


def exact_mean(values: list[float]) -> float:
    """Mean with one rounding (exact rational sum): independent of order and platform."""
    return float(sum(Fraction(v) for v in values) / len(values))


def kept_row(image_no: int, rating: RatingRecord, image: ImageFile, probe: Image.Image,
             params: FoodPicsParams) -> dict[str, Any]:
    """The manifest row of a kept image: VA means over the complete groups, raw scale."""
    groups = complete_groups(rating)
    sid = f"foodpics:{image_no}"
    row: dict[str, Any] = {
        "sample_id": sid, "source_id": sid, "modality": 0, "image_no": image_no,
        "image_path": image["path"], "content_hash": image["hash"],
        "width": probe.size[0], "height": probe.size[1], "mode": probe.mode,
        "valence_raw": exact_mean([v for i in groups if (v := rating["valence"][i]) is not None]),
        "arousal_raw": exact_mean([a for i in groups if (a := rating["arousal"][i]) is not None]),
        "n_groups": len(groups), "sheet_row": rating["sheet_row"],
    }
    # one value per configured column (map_columns built the record from these names)
    row.update(zip(params.valence_columns, rating["valence"], strict=True))
    row.update(zip(params.arousal_columns, rating["arousal"], strict=True))
    if params.category_column:
        row[params.category_column] = rating["category"]
    row.update(rating["extras"])
    return row


def manifest_kinds(params: FoodPicsParams) -> dict[str, ColumnKind]:
    """The manifest's columns and their kinds (one Parquet type each, whatever the data):
    rating columns are floats and category columns strings, by the recipe's names."""
    kinds: dict[str, ColumnKind] = {
        **ITEM_COLUMNS, "image_no": "int", **IMAGE_FILE_COLUMNS,
        "valence_raw": "float", "arousal_raw": "float", "n_groups": "int", "sheet_row": "int"}
    kinds.update(dict.fromkeys((*params.valence_columns, *params.arousal_columns), "float"))
    if params.category_column:
        kinds[params.category_column] = "str"
    kinds.update(dict.fromkeys(params.extra_category_columns, "str"))
    return kinds
