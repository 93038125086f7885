"""The column mapping: header names that vary between releases, missing rating columns."""
from __future__ import annotations

import pytest

from emoprep.pipeline.errors import ConfigError
from emoprep.stages.demo import foodpics as demo
from emoprep.stages.foodpics.params import THESIS_AROUSAL, THESIS_VALENCE
from tests.helpers.foodpics import (
    STAGE,
    jpeg,
    make_ctx,
    run,
)


def test_header_names_vary_between_releases(tmp_path):
    """Case/punctuation differences and self-describing headers map to the recipe names."""
    root = tmp_path / "fp"
    jpeg(root / "0001.jpg")
    header = ["image no", "TYPE", "taste:1=sweet 2=tasty", "food: 1=whole foods, 2=processed foods",
              *(c.upper() for c in THESIS_VALENCE), *(c.lower() for c in THESIS_AROUSAL)]
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", [[1, "Sweets", 1, 2, 5, 6, 7, 8, 1, 2, 3, 4]],
                                     header=header)
    ctx = make_ctx(tmp_path, root, id_column="Image_No",
                   extra_category_columns=("taste", "food"))
    _, df, rejects, _ = run(ctx)
    rec = df.iloc[0].to_dict()
    assert not rejects
    assert (rec["type"], rec["taste"], rec["food"]) == ("Sweets", "1", "2")
    assert rec["valence_raw"] == 6.5 and rec["arousal_raw"] == 2.5


def test_missing_rating_column_is_a_configuration_error(tmp_path):
    root = tmp_path / "fp"
    jpeg(root / "0001.jpg")
    header = [h for h in demo.HEADER if h != "Arousal_Vegetarian_Female"]
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", [[1, "x", "Sweets", "s", "p", *range(1, 8)]],
                                     header=header)
    with pytest.raises(ConfigError, match=r"r\.xlsx.*Arousal_Vegetarian_Female.*arousal_columns"):
        STAGE.plan(make_ctx(tmp_path, root))
    with pytest.raises(ConfigError, match="same number"):
        STAGE.plan(make_ctx(tmp_path, root, arousal_columns=THESIS_AROUSAL[:3]))
    # naming this release's columns fixes it
    ctx = make_ctx(tmp_path, root, valence_columns=THESIS_VALENCE[:3],
                   arousal_columns=THESIS_AROUSAL[:3], min_groups=3)
    _, df, rejects, _ = run(ctx)
    assert len(df) == 1 and not rejects
