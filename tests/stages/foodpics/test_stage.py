"""The `foodpics` stage end to end: the demo's kept set, means and rejects, images that do not
decode or are too large, the source signature."""
from __future__ import annotations

import hashlib
import io
import shutil
import struct
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image

from emoprep.manifests.reasons import REJECT_CODES as REASONS
from emoprep.stages.demo import foodpics as demo
from emoprep.stages.foodpics.params import THESIS_AROUSAL, THESIS_VALENCE
from tests.corpus.media import png_bomb
from tests.helpers.foodpics import (
    RATING_COLS,
    STAGE,
    decimal_mean,
    demo_tree,
    jpeg,
    make_ctx,
    run,
    table_row,
)


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
        src = dict(zip(demo.HEADER, table[rec["image_no"]], strict=True))
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




def test_decompression_bomb_is_rejected_without_decoding(tmp_path):
    root = tmp_path / "fp"
    jpeg(root / "0001.jpg")
    (root / "0002.png").write_bytes(png_bomb(40_000, 40_000))  # above Pillow's hard limit
    (root / "0003.png").write_bytes(png_bomb(5_000, 4_000))  # above our max_pixels only
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
    for outcome in outcomes.values():
        assert [r.reason for r in outcome.rejects] == ["image-too-large"]
    assert "20,000,000 pixels exceeds max_pixels = 10,000,000" in outcomes["foodpics:3"].rejects[0].message


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
