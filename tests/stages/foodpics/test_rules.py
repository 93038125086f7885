"""The keep rules: rating range, non-food by category or number, duplicates and bad ids."""
from __future__ import annotations

import shutil

import pytest

from emoprep.pipeline.errors import ConfigError
from emoprep.stages.demo import foodpics as demo
from tests.helpers.foodpics import (
    RATING_COLS,
    jpeg,
    make_ctx,
    run,
    table_row,
)


def test_ratings_outside_the_rating_range_are_rejected_and_the_range_is_a_parameter(tmp_path):
    root = tmp_path / "fp"
    for n in (1, 2, 3):
        jpeg(root / f"{n:04d}.jpg")
    rows = [
        table_row(1, [60, 70, 50, 100], [0, 45, 20, 51]),  # both ends of 0-100 are inside
        table_row(2, [60, 1e6, 50, 60], [30, 45, 20, 51]),  # a stray 1e6
        table_row(3, [60, 70, 50, 60], [30, -0.5, 20, 51]),
    ]
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", rows)
    _, df, rejects, _ = run(make_ctx(tmp_path, root))
    assert list(df["image_no"]) == [1]
    got = {r.sample_id: r for r in rejects}
    assert {k: r.reason for k, r in got.items()} == {"foodpics:2": "va-out-of-range", "foodpics:3": "va-out-of-range"}
    assert "Valence_omnivore_Female=1e+06" in got["foodpics:2"].message
    assert "Arousal_omnivore_Female=-0.5" in got["foodpics:3"].message
    # a release on another scale declares it
    _, df, rejects, _ = run(make_ctx(tmp_path, root, rating_range=(-1.0, 2e6)))
    assert list(df["image_no"]) == [1, 2, 3] and rejects == []
    with pytest.raises(ConfigError, match="rating_range"):
        run(make_ctx(tmp_path, root, rating_range=(100.0, 0.0)))


def test_number_convention_when_there_is_no_category_column(tmp_path):
    root = tmp_path / "fp"
    for n in (1, 999, 1000, 1200):
        jpeg(root / f"{n:04d}.jpg")
    header = ["Image_No", *RATING_COLS]
    rows = [[n, *[5.0] * 8] for n in (1, 999, 1000, 1200)]
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", rows, header=header)
    _, df, rejects, _ = run(make_ctx(tmp_path, root))
    assert sorted(df["image_no"]) == [1, 999]
    assert {r.sample_id: r.reason for r in rejects} == {"foodpics:1000": "non-food",
                                                         "foodpics:1200": "non-food"}
    assert "convention" in rejects[0].message
    assert df["type"].isna().all()  # the configured category column is kept, empty


def test_category_wins_over_number_convention(tmp_path):
    root = tmp_path / "fp"
    for n in (5, 1500, 1501):
        jpeg(root / f"{n:04d}.jpg")
    rows = [table_row(5, [5] * 4, [5] * 4, type_="non food"),  # spelling varies
            table_row(1500, [5] * 4, [5] * 4, type_="Fruit"),
            table_row(1501, [5] * 4, [5] * 4, type_=None)]  # empty: the convention decides
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", rows)
    _, df, rejects, _ = run(make_ctx(tmp_path, root))
    assert list(df["image_no"]) == [1500]
    assert {r.sample_id: r.reason for r in rejects} == {"foodpics:5": "non-food",
                                                         "foodpics:1501": "non-food"}


def test_duplicates_bad_ids_and_stray_files(tmp_path):
    root = tmp_path / "fp"
    jpeg(root / "0001.jpg")
    jpeg(root / "1.png", color=(0, 0, 255))  # a second, different image numbered 1
    jpeg(root / "0002.jpg")
    (root / "sub").mkdir()
    shutil.copy(root / "0002.jpg", root / "sub" / "0002.JPG")  # an identical copy is harmless
    jpeg(root / "0003.jpg")
    jpeg(root / "0004.jpg")
    jpeg(root / "cover.jpg")
    (root / "notes.txt").write_text("not an image")
    rows = [table_row(1, [5] * 4, [5] * 4),
            table_row(2, [5] * 4, [5] * 4),
            table_row(3, [5] * 4, [5] * 4), table_row(3, [5] * 4, [5] * 4),  # identical copy
            table_row(4, [5] * 4, [5] * 4), table_row(4, [6] * 4, [5] * 4),  # conflicting
            table_row("4a", [5] * 4, [5] * 4), table_row(2.5, [5] * 4, [5] * 4)]
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", rows)
    items, df, rejects, counters = run(make_ctx(tmp_path, root))
    assert sorted(df["image_no"]) == [2, 3]
    assert counters == {"duplicate-file-identical": 1, "duplicate-row-identical": 1}
    assert {r.sample_id: r.reason for r in rejects} == {
        "foodpics:1": "duplicate-id", "foodpics:4": "duplicate-id",
        "foodpics:sheet-row-11": "bad-id", "foodpics:sheet-row-12": "bad-id",
        "foodpics:file:cover.jpg": "unmatched-file"}
    assert len(items) == len(df) + len(rejects)
    msg = {r.sample_id: r.message for r in rejects}
    assert "0001.jpg" in msg["foodpics:1"] and "1.png" in msg["foodpics:1"]
    assert "sheet rows 9, 10" in msg["foodpics:4"]
