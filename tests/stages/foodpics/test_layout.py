"""The folder layout: image file names, links leaving the root, the root and sheet search,
NFC paths."""
from __future__ import annotations

import os
import unicodedata

import pytest

from emoprep.pipeline.errors import ConfigError
from emoprep.stages.demo import foodpics as demo
from tests.helpers.foodpics import (
    STAGE,
    demo_tree,
    jpeg,
    make_ctx,
    run,
    table_row,
)


def test_file_name_forms(tmp_path):
    """Padding, case and stray spaces are tolerated; non-ASCII digits are not a number."""
    root = tmp_path / "fp"
    names = {1: "1.JPG", 2: "0002 .jpeg", 3: "0003.Png"}
    for name in names.values():
        jpeg(root / name)
    jpeg(root / "\uff10\uff10\uff10\uff14.jpg")  # full-width digits
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", [table_row(n, [5] * 4, [5] * 4) for n in (1, 2, 3, 4)])
    _, df, rejects, _ = run(make_ctx(tmp_path, root))
    assert dict(zip(df["image_no"], df["image_path"], strict=True)) == names
    assert {r.sample_id: r.reason for r in rejects} == {
        "foodpics:4": "missing-image", "foodpics:file:\uff10\uff10\uff10\uff14.jpg": "unmatched-file"}


@pytest.mark.skipif(os.name == "nt", reason="symlinks")
def test_symlink_leaving_the_root_is_rejected(tmp_path):
    root = tmp_path / "fp"
    jpeg(root / "0001.jpg")
    outside = jpeg(tmp_path / "elsewhere" / "secret.jpg")
    (root / "0002.jpg").symlink_to(outside)
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", [table_row(1, [5] * 4, [5] * 4)])
    _, df, rejects, _ = run(make_ctx(tmp_path, root))
    assert list(df["image_no"]) == [1]
    assert [(r.sample_id, r.reason) for r in rejects] == [("foodpics:file:0002.jpg", "path-outside-root")]


def test_locate_root_searches_wrappers_and_explains_failures(tmp_path):
    data = tmp_path / "data"
    (data / "DEAM" / "MEMD_audio").mkdir(parents=True)
    (data / "DEAM" / "MEMD_audio" / "2.mp3").write_bytes(b"")
    (data / "DEAM" / "annotations.csv").write_text("song_id, valence_mean\n2, 5\n")
    with pytest.raises(ConfigError, match=r"no FoodPics folder under .*data.*Image_No"):
        STAGE.locate_root(STAGE.Params(), data)
    root, _ = demo_tree(data / "foodpics_download", "xlsx")  # one wrapper level
    assert STAGE.locate_root(STAGE.Params(), data) == root
    assert STAGE.locate_root(STAGE.Params(), root) == root
    assert STAGE.locate_root(STAGE.Params(root=str(root)), None) == root
    with pytest.raises(ConfigError, match=r"foodpics\.root = .*DEAM"):
        STAGE.locate_root(STAGE.Params(root=str(data / "DEAM")), None)
    with pytest.raises(ConfigError, match="no --data-root"):
        STAGE.locate_root(STAGE.Params(), None)
    demo_tree(data / "copy", "csv")
    with pytest.raises(ConfigError, match="several FoodPics folders"):
        STAGE.locate_root(STAGE.Params(), data)


def test_foodpics_root_takes_a_wrapper_folder_and_points_at_images_further_down(tmp_path):
    """`--set foodpics.root=` accepts what `--data-root` accepts (one wrapper level, as zips
    nest it); images two levels down are named in the message instead of "or its subfolders"."""
    root, _ = demo_tree(tmp_path / "download", "csv")
    assert STAGE.locate_root(STAGE.Params(root=str(tmp_path / "download")), None) == root
    with pytest.raises(ConfigError, match=r"foodpics\.root = .*deeper, in .*FoodPics Extended"):
        STAGE.locate_root(STAGE.Params(root=str(tmp_path)), None)


def test_a_run_recognises_its_sheet_from_the_stat_cache(tmp_path, monkeypatch):
    """With the run's hasher, the sheet is parsed once; later runs answer from the cache
    until the sheet changes (an up-to-date run then never imports openpyxl)."""
    from emoprep.pipeline.filehash import FileHasher
    from emoprep.stages.foodpics import layout

    root, _ = demo_tree(tmp_path / "data", "xlsx")
    cache = tmp_path / "filehash.json"
    first = FileHasher(cache)
    assert STAGE.locate_root(STAGE.Params(), tmp_path / "data", hasher=first) == root
    first.save()

    def no_parsing(*args: object, **kw: object) -> None:
        raise AssertionError("the sheet was parsed again")

    monkeypatch.setattr(layout, "read_sheet", no_parsing)
    assert STAGE.locate_root(STAGE.Params(), tmp_path / "data", hasher=FileHasher(cache)) == root
    sheet = next(root.glob("*.xlsx"))
    sheet.write_bytes(sheet.read_bytes() + b"\0")  # changed: asked again
    with pytest.raises(AssertionError, match="parsed again"):
        STAGE.locate_root(STAGE.Params(), tmp_path / "data", hasher=FileHasher(cache))


def test_sheet_choice(tmp_path):
    root, _ = demo_tree(tmp_path, "xlsx")
    demo.write_foodpics_ratings_csv(root / "ratings.csv")
    with pytest.raises(ConfigError, match=r"several ratings sheets.*foodpics\.sheet"):
        STAGE.plan(make_ctx(tmp_path, root))
    _, df, _, _ = run(make_ctx(tmp_path, root, sheet="ratings.csv"))
    assert len(df) == 30
    (root / "ratings.csv").unlink()
    (root / demo.SHEET_NAME).rename(root / "old.xls")
    with pytest.raises(ConfigError, match=r"legacy Excel \['old\.xls'\]"):
        STAGE.plan(make_ctx(tmp_path, root))


def test_images_in_a_unicode_subfolder_get_nfc_paths(tmp_path):
    root = tmp_path / "fp"
    folder = unicodedata.normalize("NFD", "Süße Bilder")  # as macOS archives unpack
    jpeg(root / folder / "0001.jpg")
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", [table_row(1, [5] * 4, [5] * 4)])
    _, df, rejects, _ = run(make_ctx(tmp_path, root))
    assert not rejects
    assert df.iloc[0]["image_path"] == unicodedata.normalize("NFC", "Süße Bilder/0001.jpg")
