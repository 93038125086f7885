"""The `foodpics` ingest's parameters, with the thesis' rating columns as defaults: one module
that the column mapping, the folder search, the keep rules and the stage all read."""
from __future__ import annotations

from dataclasses import dataclass

from emoprep.pipeline.stage import runtime
from emoprep.stages.common.image_io import DEFAULT_MAX_PIXELS

THESIS_VALENCE = ("Valence_omnivore_Male", "Valence_omnivore_Female",
                  "Valence_Vegetarian_Male", "Valence_Vegetarian_Female")
THESIS_AROUSAL = ("Arousal_omnivore_Male", "Arousal_omnivore_Female",
                  "Arousal_Vegetarian_Male", "Arousal_Vegetarian_Female")


@dataclass(frozen=True)
class FoodPicsParams:
    root: str = runtime("")
    sheet: str = ""  # file name in the root; "" = the one sheet with an id header
    worksheet: str = ""  # xlsx worksheet; "" = the first one with an id header
    id_column: str = "Image_No"
    valence_columns: tuple[str, ...] = THESIS_VALENCE
    arousal_columns: tuple[str, ...] = THESIS_AROUSAL
    category_column: str = "type"
    non_food_values: tuple[str, ...] = ("Non-Food",)
    extra_category_columns: tuple[str, ...] = ("taste", "processing")
    non_food_min_number: int = 1000
    min_groups: int = 4
    # A plausibility guard, not a normalisation: a rating outside is rejected (a stray 1e6
    # would squash every image's min-max-normalised VA). The Extended sheet's scale is not
    # stated by the seeds (thesis §2.1.2 gives only the columns and the min-max step) nor by
    # SPEC §3.2, so 0-100 is an assumption wide enough for a 0-100 visual analogue scale or
    # a 1-7 / 1-9 rating scale; set the release's documented scale when known.
    rating_range: tuple[float, float] = (0.0, 100.0)
    max_pixels: int = DEFAULT_MAX_PIXELS
