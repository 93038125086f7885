"""The `foodpics` ingest: sheet parsing, column mapping, filters, group means, layout search."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import tracemalloc
import unicodedata
import zlib
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from emoprep.pipeline.assemble import finish_manifest
from emoprep.pipeline.atomic import canonical_json
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.registry import get_stage
from emoprep.stages.demo import foodpics as demo
from emoprep.manifests.reasons import REJECT_CODES as REASONS
from emoprep.stages.foodpics.stage import (
    THESIS_AROUSAL,
    THESIS_VALENCE,
    parse_image_no,
    parse_number,
)

STAGE = get_stage("foodpics")
RATING_COLS = (*THESIS_VALENCE, *THESIS_AROUSAL)


# ---------------------------------------------------------------- helpers ----------
def make_ctx(tmp: Path, root: Path, **params) -> StageContext:
    return StageContext(stage="foodpics", params=STAGE.Params(**params), out_root=tmp / "out",
                        out_dir=tmp / "out" / "foodpics" / "fp", roots={"foodpics": root})


def run(ctx: StageContext):
    """plan → process every item (as a worker would) → finalize."""
    items = STAGE.plan(ctx)
    rows, rejects, counters = [], [], {}
    for item in items:
        canonical_json(item.payload)  # payloads are plain, JSON-able values (no NaN)
        out = STAGE.process(item, ctx.item_context())
        assert out.rows or out.rejects, f"{item.key} produced nothing"
        rows += out.rows
        rejects += out.rejects
        for k, v in out.counters.items():
            counters[k] = counters.get(k, 0) + v
    df, rejects = finish_manifest(STAGE, ctx, pd.DataFrame(rows), rejects)
    return items, df, rejects, counters


def jpeg(path: Path, color=(200, 60, 40), size=(64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, "JPEG", quality=90)
    return path


def table_row(n, valence, arousal, type_="Sweets", taste="sweet", processing="processed"):
    return [n, f"item {n}", type_, taste, processing, *valence, *arousal]


def decimal_mean(values) -> Decimal:
    return sum(Decimal(str(v)) for v in values) / len(values)


def demo_tree(tmp: Path, fmt: str) -> tuple[Path, dict]:
    root = tmp / "FoodPics Extended"
    info = demo.write_foodpics_demo(root)
    if fmt == "csv":
        (root / demo.SHEET_NAME).unlink()
        demo.write_foodpics_ratings_csv(root / "ratings.csv")
    return root, info


# ---------------------------------------------------------------- the thesis filters --
@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_demo_kept_set_means_and_rejects(tmp_path, fmt):
    root, info = demo_tree(tmp_path, fmt)
    items, df, rejects, _ = run(make_ctx(tmp_path, root))

    assert sorted(df["image_no"]) == info["kept"]
    assert {r.sample_id: r.reason for r in rejects} == info["rejects"]
    assert len(items) == len(df) + len(rejects)  # inputs = outputs + rejects
    assert set(df["sample_id"]).isdisjoint(r.sample_id for r in rejects)
    assert all(r.reason in REASONS for r in rejects)

    table = {row[0]: row for row in demo.demo_ratings()}
    for rec in df.to_dict("records"):
        src = dict(zip(demo.HEADER, table[rec["image_no"]]))
        v = [src[c] for c in THESIS_VALENCE]
        a = [src[c] for c in THESIS_AROUSAL]
        # the exact decimal mean of what the sheet says, to float precision
        assert rec["valence_raw"] == pytest.approx(float(decimal_mean(v)), rel=1e-15, abs=0)
        assert rec["arousal_raw"] == pytest.approx(float(decimal_mean(a)), rel=1e-15, abs=0)
        assert [rec[c] for c in RATING_COLS] == pytest.approx(v + a, abs=1e-12)
        for column in ("type", "taste", "processing"):
            assert rec[column] == src[column]
        assert rec["sample_id"] == rec["source_id"] == f"foodpics:{rec['image_no']}"
        assert rec["modality"] == 0 and rec["n_groups"] == 4
        path = root / rec["image_path"]
        assert rec["image_path"] == info["files"][rec["image_no"]]
        assert rec["content_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
        with Image.open(path) as im:
            assert (rec["width"], rec["height"], rec["mode"]) == (*im.size, im.mode)
    assert set(df["mode"]) >= {"RGB", "CMYK", "P", "I;16", "RGBA", "LA", "L"}


def test_means_are_exact_and_min_groups_uses_complete_pairs(tmp_path):
    """Dyadic values are exact in binary, so the means must match to the last bit."""
    root = tmp_path / "fp"
    for n in (1, 2, 3):
        jpeg(root / f"{n:04d}.jpg")
    rows = [
        table_row(1, [6.125, 7.5, 5.25, 6.0], [3.75, 4.5, 2.0, 5.125]),
        table_row(2, [6.125, None, 5.25, 6.0], [3.75, 4.5, 2.0, 5.125]),  # group 2 lacks V
        table_row(3, [1.0, 2.0, 3.0, 4.0], [None, 2.0, None, 4.0]),  # 2 complete groups
    ]
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", rows)
    _, df, rejects, _ = run(make_ctx(tmp_path, root, min_groups=3))
    got = df.set_index("image_no")
    assert got.loc[1, "valence_raw"] == (6.125 + 7.5 + 5.25 + 6.0) / 4
    assert got.loc[1, "arousal_raw"] == (3.75 + 4.5 + 2.0 + 5.125) / 4
    # image 2: the mean runs over the three groups having both V and A (1, 3, 4)
    assert got.loc[2, "valence_raw"] == float(Fraction(6125 + 5250 + 6000, 3000))
    assert got.loc[2, "arousal_raw"] == float(Fraction(3750 + 2000 + 5125, 3000))
    assert got.loc[2, "n_groups"] == 3
    assert [(r.sample_id, r.reason) for r in rejects] == [("foodpics:3", "incomplete-va")]
    assert "Arousal_omnivore_Male" in rejects[0].message


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


@pytest.mark.parametrize("sep,decimal_comma,bom,newline", [
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
        src = dict(zip(demo.HEADER, row))
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


def test_file_name_forms(tmp_path):
    """Padding, case and stray spaces are tolerated; non-ASCII digits are not a number."""
    root = tmp_path / "fp"
    names = {1: "1.JPG", 2: "0002 .jpeg", 3: "0003.Png"}
    for name in names.values():
        jpeg(root / name)
    jpeg(root / "\uff10\uff10\uff10\uff14.jpg")  # full-width digits
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", [table_row(n, [5] * 4, [5] * 4) for n in (1, 2, 3, 4)])
    _, df, rejects, _ = run(make_ctx(tmp_path, root))
    assert dict(zip(df["image_no"], df["image_path"])) == names
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


def test_undecodable_and_empty_files(tmp_path):
    root = tmp_path / "fp"
    jpeg(root / "0001.jpg")
    (root / "0002.jpg").write_bytes(b"")
    (root / "0003.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    good = (root / "0001.jpg").read_bytes()
    (root / "0004.jpg").write_bytes(good[: len(good) // 2])
    png = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(png, "PNG")
    data = bytearray(png.getvalue())
    idat_len = struct.unpack(">I", data[33:37])[0]  # IDAT follows the 8-byte signature + IHDR
    data[41 + idat_len] ^= 0xFF  # a bad IDAT checksum: load() decodes it, only verify() objects
    (root / "0005.png").write_bytes(bytes(data))
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", [table_row(n, [5] * 4, [5] * 4) for n in range(1, 6)])
    _, df, rejects, _ = run(make_ctx(tmp_path, root))
    assert list(df["image_no"]) == [1]
    assert {r.sample_id: r.reason for r in rejects} == {
        f"foodpics:{n}": "undecodable-image" for n in (2, 3, 4, 5)}
    for r in rejects:  # each message names its file relative to the root, never the root
        n = int(r.sample_id.split(":")[1])
        assert r.message.startswith(f"000{n}.") and str(tmp_path) not in r.message


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG that declares width × height RGB pixels but holds almost no data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def test_decompression_bomb_is_rejected_without_decoding(tmp_path):
    root = tmp_path / "fp"
    jpeg(root / "0001.jpg")
    (root / "0002.png").write_bytes(huge_png_header(40_000, 40_000))  # above Pillow's hard limit
    (root / "0003.png").write_bytes(huge_png_header(5_000, 4_000))  # above our max_pixels only
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", [table_row(n, [5] * 4, [5] * 4) for n in (1, 2, 3)])
    ctx = make_ctx(tmp_path, root, max_pixels=10_000_000)
    items = {i.key: i for i in STAGE.plan(ctx)}
    tracemalloc.start()
    try:
        outcomes = {k: STAGE.process(items[k], ctx.item_context()) for k in ("foodpics:2", "foodpics:3")}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # a decode would need 4.8 GB / 60 MB
    for key, outcome in outcomes.items():
        assert [r.reason for r in outcome.rejects] == ["image-too-large"]
    assert "20,000,000 pixels exceeds max_pixels = 10,000,000" in outcomes["foodpics:3"].rejects[0].message


# ---------------------------------------------------------------- layout -------------
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


def test_source_signature_is_relative_and_content_based(tmp_path):
    root, _ = demo_tree(tmp_path / "a", "xlsx")
    sig = STAGE.source_signature(make_ctx(tmp_path, root))
    assert sig["sheet"][0] == demo.SHEET_NAME
    assert len(sig["images"]) == 38 and all(not Path(p).is_absolute() for p, _ in sig["images"])
    moved = tmp_path / "b" / "elsewhere"
    shutil.copytree(root, moved)
    assert STAGE.source_signature(make_ctx(tmp_path, moved)) == sig
    with open(moved / "0001.jpg", "ab") as fh:
        fh.write(b"\0")
    changed = STAGE.source_signature(make_ctx(tmp_path, moved))
    assert changed != sig and changed["sheet"] == sig["sheet"]


def test_manifest_column_types_do_not_depend_on_the_data(tmp_path):
    """A sheet without category columns and with an empty rating group (min_groups = 3) gives
    the same Parquet schema as the demo, where every cell is filled."""
    import pyarrow as pa

    from emoprep.stages.foodpics.stage import manifest_kinds

    def schema(df):
        return {f.name: f.type for f in pa.Table.from_pandas(df, preserve_index=False).schema}

    root, _ = demo_tree(tmp_path / "demo", "xlsx")
    _, full, _, _ = run(make_ctx(tmp_path / "demo", root))
    bare = tmp_path / "bare"
    jpeg(bare / "0001.jpg")
    header = ["Image_No", *THESIS_VALENCE, *THESIS_AROUSAL]
    demo.write_foodpics_ratings_xlsx(bare / "r.xlsx", [[1, None, 5, 5, 5, None, 5, 5, 5]], header=header)
    _, sparse, rejects, _ = run(make_ctx(tmp_path / "bare", bare, min_groups=3))
    assert not rejects and sparse.iloc[0]["n_groups"] == 3
    assert schema(sparse) == schema(full)
    assert list(schema(full)) == list(manifest_kinds(STAGE.Params()))
    assert schema(full)["type"] == pa.large_string() and schema(full)[THESIS_VALENCE[0]] == pa.float64()


# ---------------------------------------------------------------- small parts -------
@pytest.mark.parametrize("cell,value", [
    (6.5, 6.5), (7, 7.0), ("6,5", 6.5), (" 6.25 ", 6.25), ("1.234,5", 1234.5), ("1,234.5", 1234.5),
    ("-2", -2.0), ("", None), ("n/a", None), ("-", None), (None, None), (float("nan"), None),
    ("inf", None), (True, None), ("6,5,1", None), ("1e2", 100.0),
])
def test_parse_number(cell, value):
    assert parse_number(cell) == value


@pytest.mark.parametrize("cell,value", [
    (12, 12), (12.0, 12), ("0012", 12), (" 7 ", 7), ("12,0", 12), (12.5, None), ("4a", None),
    (-3, None), ("", None), (None, None),
])
def test_parse_image_no(cell, value):
    assert parse_image_no(cell) == value


def test_demo_is_byte_identical_across_runs(tmp_path):
    def digests(root: Path) -> dict:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}
    demo.write_foodpics_demo(tmp_path / "a")
    demo.write_foodpics_demo(tmp_path / "b")
    demo.write_foodpics_ratings_csv(tmp_path / "a" / "r.csv")
    demo.write_foodpics_ratings_csv(tmp_path / "b" / "r.csv")
    a, b = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert a == b and len(a) == 40
    demo.write_foodpics_demo(tmp_path / "c", seed=1)
    assert digests(tmp_path / "c")[demo.SHEET_NAME] != a[demo.SHEET_NAME]
