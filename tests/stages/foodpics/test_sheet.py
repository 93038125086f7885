"""Reading the ratings sheet: CSV dialects and encodings, comment and footer rows."""
from __future__ import annotations

import pytest

from emoprep.stages.demo import foodpics as demo
from tests.helpers.foodpics import (
    RATING_COLS,
    jpeg,
    make_ctx,
    run,
)


@pytest.mark.parametrize(("sep", "decimal_comma", "bom", "newline"), [
    (";", True, True, "\r\n"),
    (",", False, False, "\n"),
    (",", True, True, "\n"),  # decimal commas quoted inside a comma-separated file
    ("\t", True, False, "\r\n"),
])
def test_csv_dialects_parse_to_the_same_values(tmp_path, sep, decimal_comma, bom, newline):
    root = tmp_path / "fp"
    rows = demo.demo_ratings()[:6]
    for row in rows:
        jpeg(root / f"{row[0]:04d}.jpg")
    demo.write_foodpics_ratings_csv(root / "ratings.csv", rows, sep=sep, decimal_comma=decimal_comma,
                                    bom=bom, newline=newline)
    _, df, rejects, _ = run(make_ctx(tmp_path, root))
    assert not rejects
    got = df.set_index("image_no")
    for row in rows:
        src = dict(zip(demo.HEADER, row, strict=True))
        assert [got.loc[row[0], c] for c in RATING_COLS] == [src[c] for c in RATING_COLS]


def test_cp1252_export_with_comment_rows_and_footer(tmp_path):
    """A Windows Excel export: cp1252 umlauts above the header, a footer note, blank rows."""
    root = tmp_path / "fp"
    jpeg(root / "0001.jpg")
    jpeg(root / "0002.jpg")
    head = ";".join(demo.HEADER)
    text = "\r\n".join([
        "Bewertungen für Süßes; Stand 2019",
        ";;;",
        head,
        "1;Kuchen;Sweets;sweet;processed;70,5;71;72;73;60;61;62;63,25",
        ";;;;;;;;;;;;;",
        "2;Möhre;Vegetables;tasty;whole;50;51;52;53;30;31;32;33",
        "Quelle: Blechert et al.;;;;;;;;;;;;;",
    ]) + "\r\n"
    (root / "ratings.csv").write_bytes(text.encode("cp1252"))
    items, df, rejects, _ = run(make_ctx(tmp_path, root))
    assert sorted(df["image_no"]) == [1, 2]
    assert df.set_index("image_no").loc[1, "arousal_raw"] == (60 + 61 + 62 + 63.25) / 4
    assert [(r.sample_id, r.reason) for r in rejects] == [("foodpics:sheet-row-7", "bad-id")]
    assert "'Quelle: Blechert et al.'" in rejects[0].message
    assert len(items) == 3
