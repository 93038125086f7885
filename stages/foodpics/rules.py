"""Which images are kept: the decisions, in the thesis' order (category, completeness,
quality). Kept apart from reading the sheet and the folder because these are the science
the rejects table reports: one sheet row and one file per number, food only, ratings
inside the scale, valence and arousal from enough rater groups.
"""
from __future__ import annotations

from typing import TypedDict

from emoprep.stages.common.text_table import squash
from emoprep.stages.foodpics.columns import RatingRecord
from emoprep.stages.foodpics.params import FoodPicsParams


class ImageFile(TypedDict):
    """One image file of a number (a work item payload): path relative to the root, content hash."""

    path: str
    hash: str


def check_rows(rows: list[RatingRecord]) -> tuple[RatingRecord | None, str | None]:
    """The one ratings row of a number, or a duplicate-id message."""
    if not rows:
        return None, None
    distinct = {repr({k: v for k, v in r.items() if k != "sheet_row"}) for r in rows}
    if len(distinct) > 1:
        lines = ", ".join(str(r["sheet_row"]) for r in rows)
        return None, f"{len(rows)} different ratings rows (sheet rows {lines})"
    return rows[0], None


def check_files(files: list[ImageFile]) -> tuple[ImageFile | None, str | None]:
    """The one image file of a number, or a duplicate-id message (identical copies are fine)."""
    if not files:
        return None, None
    if len({f["hash"] for f in files}) > 1:
        return None, f"{len(files)} different image files: {[f['path'] for f in files]}"
    return files[0], None


def non_food_reason(image_no: int, rating: RatingRecord, has_category: bool,
                    params: FoodPicsParams) -> str | None:
    """Why the image is non-food (None when food): category value, else number convention."""
    category = rating["category"]
    if has_category and category is not None:
        if squash(category) in {squash(v) for v in params.non_food_values}:
            return f"{params.category_column} = {category!r}"
        return None
    if image_no >= params.non_food_min_number:
        where = "is empty" if has_category else "is absent"
        return (f"number {image_no} ≥ {params.non_food_min_number} (non-food by convention; "
                f"category column {params.category_column!r} {where})")
    return None


def complete_groups(rating: RatingRecord) -> list[int]:
    # one valence and one arousal value per rater group (map_columns checks the lengths)
    return [i for i, (v, a) in enumerate(zip(rating["valence"], rating["arousal"], strict=True))
            if v is not None and a is not None]


def va_problem(rating: RatingRecord, params: FoodPicsParams) -> str | None:
    """Why the row's VA is incomplete (None when enough groups have both V and A)."""
    groups = complete_groups(rating)
    if len(groups) >= params.min_groups:
        return None
    missing = []
    for i, (v_name, a_name) in enumerate(zip(params.valence_columns, params.arousal_columns, strict=True)):
        missing += [v_name] if rating["valence"][i] is None else []
        missing += [a_name] if rating["arousal"][i] is None else []
    bad = ("; unparseable: " + ", ".join(f"{c}={v!r}" for c, v in rating["bad_cells"])
           if rating["bad_cells"] else "")
    return (f"{len(groups)} of {len(params.valence_columns)} rater groups have valence and "
            f"arousal (need {params.min_groups}); missing {missing}{bad}")


def out_of_range(rating: RatingRecord, params: FoodPicsParams) -> str | None:
    """The rating cells outside `rating_range` (None when every given value is inside)."""
    lo, hi = params.rating_range
    bad = [f"{name}={value:g}"
           for names, values in ((params.valence_columns, rating["valence"]),
                                 (params.arousal_columns, rating["arousal"]))
           for name, value in zip(names, values, strict=True) if value is not None and not lo <= value <= hi]
    return f"{', '.join(bad)} outside foodpics.rating_range [{lo:g}, {hi:g}]" if bad else None
