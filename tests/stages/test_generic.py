"""Generic `id, path, valence, arousal[, label]` ingest (SPEC §3.4): image and audio tables,
declared scales, NFC names, paths that try to leave the root, duplicates, and `images` /
`features` reading its manifest."""
from __future__ import annotations

import io
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.recipe import build_params
from emoprep.stages.generic import Generic, GenericParams, clean_path, id_problem, path_problem, read_table
from tests.helpers.stage_run import run_in_context


def png(color: tuple[int, int, int], size=(32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def run(where: Path, tmp_path: Path, **params):
    """The stage as the runner drives it: locate the root under `where`, plan, process, finalize."""
    p = build_params(Generic.Params, params, "generic")
    stage = Generic()
    root = stage.locate_root(p, where)
    ctx: StageContext[GenericParams] = StageContext(stage="generic", params=p, out_root=tmp_path / "out",
                                                    out_dir=tmp_path / "out" / "generic" / "fp",
                                                    roots={"generic": root})
    run = run_in_context(stage, ctx)
    return ctx, run.items, run.rows, {r.sample_id: r for r in run.rejects}


@pytest.fixture
def image_set(tmp_path: Path) -> Path:
    root = tmp_path / "art"
    (root / "img").mkdir(parents=True)
    nfd = unicodedata.normalize("NFD", "café.png")          # as macOS unpacks it
    (root / "img" / nfd).write_bytes(png((200, 10, 10)))
    (root / "img" / "b.png").write_bytes(png((10, 200, 10)))
    (root / "img" / "c.png").write_bytes(png((10, 10, 200)))
    (root / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (tmp_path / "secret.png").write_bytes(png((0, 0, 0)))
    (root / "img" / "link.png").symlink_to(tmp_path / "secret.png")
    table = "\n".join([
        "id,path,valence,arousal,label",
        f"a,img/{unicodedata.normalize('NFC', 'café.png')},7,3,calm",   # NFC in the table, NFD on disk
        "b,img\\b.png,2,8,tense",                                       # Windows separator
        "c,img/c.png,,,",                                               # no VA: kept, null
        "d,img/missing.png,5,5,calm",
        "e,../secret.png,5,5,calm",
        "f,/etc/passwd,5,5,calm",
        "g,img/link.png,5,5,calm",
        "h,img/broken.png,5,5,calm",
        "i,img/b.png,12,5,calm",                                        # outside the 1–9 scale
        "j,img/b.png,high,5,calm",
        "k/x,img/b.png,5,5,calm",
        ",img/b.png,5,5,calm",
        "dup,img/b.png,5,5,calm", "dup,img/c.png,5,5,calm",           # same id, rows differ
        "same,img/c.png,4,4,calm", "same,img/c.png,4,4,calm",         # identical rows: merged
    ]) + "\n"
    (root / "table.csv").write_text(table, encoding="utf-8")
    return root


def test_image_table_every_row_kept_or_rejected_with_its_reason(image_set, tmp_path):
    _, items, rows, rejects = run(image_set, tmp_path, dataset_name="art", scale=[1.0, 9.0])
    assert len(items) == len(rows) + len(rejects) == 14
    assert {k: r.reason for k, r in rejects.items()} == {
        "art:d": "missing-image", "art:e": "path-outside-root", "art:f": "path-outside-root",
        "art:g": "path-outside-root", "art:h": "undecodable-image", "art:i": "va-out-of-range",
        "art:j": "bad-annotation", "art:line-12": "bad-id", "art:line-13": "bad-id", "art:dup": "duplicate-id"}
    assert all("table.csv line" in r.message for r in rejects.values())
    by = rows.set_index("sample_id")
    assert by.loc["art:a", "image_path"] == "img/café.png"
    assert unicodedata.is_normalized("NFC", by.loc["art:a", "image_path"])
    assert (by.loc["art:a", "valence_raw"], by.loc["art:a", "arousal_raw"],
            by.loc["art:a", "label"]) == (7.0, 3.0, "calm")
    assert (by.loc["art:a", "width"], by.loc["art:a", "height"], by.loc["art:a", "modality"]) == (32, 24, 0)
    assert by.loc["art:b", "image_path"] == "img/b.png"
    assert pd.isna(by.loc["art:c", "valence_raw"]) and pd.isna(by.loc["art:c", "label"])
    assert by.loc["art:same", "source_id"] == "art:same"
    assert (by.loc["art:a", "scale_min"], by.loc["art:a", "scale_max"]) == (1.0, 9.0)


def test_images_stage_reads_a_generic_table(image_set, tmp_path):
    from emoprep.stages.images import Images, ImagesParams

    _, _, rows, _ = run(image_set, tmp_path, dataset_name="art", scale=[1.0, 9.0])
    p = build_params(Images.Params, {"dataset": "generic", "size": 16}, "images")
    ctx: StageContext[ImagesParams] = StageContext(stage="images", params=p, out_root=tmp_path / "out",
                                                   out_dir=tmp_path / "out" / "images" / "fp",
                                                   manifests={"generic": rows}, roots={"generic": image_set})
    stage = Images()
    outs = [stage.process(it, ctx.item_context()) for it in stage.plan(ctx)]
    made = [r for o in outs for r in o.rows]
    assert len(made) == len(rows) and not [r for o in outs for r in o.rejects]
    assert all(Image.open(tmp_path / "out" / r["path"]).size == (16, 16) for r in made)


def test_scale_is_required_with_va_columns_and_tables_are_found(image_set, tmp_path):
    with pytest.raises(ConfigError, match="declare their scale"):
        run(image_set, tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "t.csv").write_text("id,path\n1,x.png\n")
    with pytest.raises(ConfigError, match="several generic tables"):
        run(tmp_path, tmp_path, scale=[1.0, 9.0])
    _, _, rows, _ = run(tmp_path, tmp_path, root=str(image_set), table="table.csv", scale=[1.0, 9.0])
    assert len(rows) == 4
    with pytest.raises(ConfigError, match="no generic table"):
        run(tmp_path / "other", tmp_path, table="nope.csv")


def test_audio_table_with_groups_feeds_the_audio_stages(tmp_path):
    from emoprep.stages.features import Features, FeaturesParams

    root = tmp_path / "music"
    (root / "clips").mkdir(parents=True)
    t = np.arange(3 * 22050) / 22050
    for name, f in (("s1_0", 220), ("s1_1", 330), ("s2_0", 440)):
        sf.write(root / "clips" / f"{name}.wav", (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), 22050)
    (root / "clips" / "empty.wav").write_bytes(b"")
    (root / "list.tsv").write_text("clip\tfile\tsong\tgenre\n"
                                   "s1_0\tclips/s1_0.wav\tsong1\tjazz\ns1_1\tclips/s1_1.wav\tsong1\tjazz\n"
                                   "s2_0\tclips/s2_0.wav\tsong2\tmetal\nbad\tclips/empty.wav\tsong3\tpop\n")
    _, _, rows, rejects = run(root, tmp_path, dataset_name="music", modality="audio", id_column="clip",
                                path_column="file", source_column="song", label_column="genre")
    assert {k: r.reason for k, r in rejects.items()} == {"music:bad": "empty-audio"}
    by = rows.set_index("sample_id")
    assert by.loc["music:s1_1", "source_id"] == "music:song1" and by.loc["music:s1_1", "label"] == "jazz"
    assert by.loc["music:s2_0", "duration_s"] == pytest.approx(3.0) and by.loc["music:s2_0", "modality"] == 1
    assert "valence_raw" in rows.columns and rows["valence_raw"].isna().all()   # a label-only table
    p = build_params(Features.Params, {"sources": ["generic"]}, "features")
    fctx: StageContext[FeaturesParams] = StageContext(stage="features", params=p, out_root=tmp_path / "out",
                                                      out_dir=tmp_path / "out" / "f" / "fp",
                                                      manifests={"generic": rows}, roots={"generic": root})
    feats = [Features().process(it, fctx.item_context()).rows[0] for it in Features().plan(fctx)]
    assert [r["sample_id"] for r in feats] == ["music:s1_0", "music:s1_1", "music:s2_0"]
    assert feats[0]["dataset"] == "music" and feats[0]["source_id"] == "music:song1"


def test_small_helpers():
    assert clean_path("a\\b\\c.png") == "a/b/c.png"
    assert path_problem("../x") and path_problem("/x") and path_problem("C:/x") and path_problem("")
    assert path_problem("a/b.png") is None
    assert id_problem("a:b") and id_problem("") and id_problem("x\ty") and id_problem("ok-1_2.3") is None
    header, rows = read_table("id;path\n1;a.png\n\n2;b.png\n")
    assert header == ["id", "path"] and [c for _, c in rows] == [["1", "a.png"], ["2", "b.png"]]
