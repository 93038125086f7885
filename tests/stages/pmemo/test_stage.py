"""PMEmo 2019 ingest (SPEC §3.3): the CSV parsers with their quirks, finding the root, and the
stage on the demo tree (every id kept or rejected for the reason the generator planted)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emoprep.pipeline.assemble import finish_manifest
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.recipe import build_params
from emoprep.pipeline.context import StageContext
from emoprep.stages.demo.pmemo import demo_clips, write_pmemo_demo
from emoprep.stages.pmemo.stage import Pmemo, find_layout, locate_pmemo_root
from emoprep.stages.pmemo.parsers import (PmemoFormatError, decode_text, frame_index, parse_dynamic,
                                      parse_metadata, parse_seconds, parse_static)


# ---- parsers ----------------------------------------------------------------------------
def test_static_csv_with_crlf_duplicates_and_junk():
    text = ("musicId,Arousal(mean),Valence(mean)\r\n1,0.8,0.7\r\n2,0.1,abc\r\nx,0.5,0.5\r\n"
            "3,0.4,0.4\r\n3,0.4,0.4\r\n4,0.2,0.2\r\n4,0.3,0.2\r\n")
    t = parse_static(text, "static.csv")
    assert t.values[1] == {"valence": 0.7, "arousal": 0.8}
    assert math.isnan(t.values[2]["valence"])
    assert t.merged_duplicates == {3: 1} and set(t.conflicts) == {4}
    assert t.problems == ["static.csv line 4: musicId 'x' is not an id"]
    with pytest.raises(PmemoFormatError, match="Valence"):
        parse_static("musicId,Arousal(mean)\n1,0.5\n", "static.csv")


def test_dynamic_csv_long_format_on_the_2hz_grid():
    text = ("musicId,frameTime,Arousal(mean),Valence(mean)\n"
            "5,15.0,0.1,0.2\n5,15.5,0.3,0.4\n5,16.5,0.5,0.6\n"   # 16.0 missing → NaN
            "5,15.25,0.9,0.9\n"                                   # off the grid → skipped
            "6,15,0.1,0.1\n6,15,0.2,0.1\n")                       # repeated frame, different → conflict
    t = parse_dynamic(text, "dyn.csv")
    np.testing.assert_array_equal(t.arousal[5], [0.1, 0.3, np.nan, 0.5])
    np.testing.assert_array_equal(t.valence[5], [0.2, 0.4, np.nan, 0.6])
    assert set(t.conflicts) == {6} and len(t.problems) == 1 and "15.25" in t.problems[0]
    assert frame_index(15.0) == 0 and frame_index(44.5) == 59 and frame_index(14.5) is None
    assert frame_index(15.004) == 0 and frame_index(15.2) is None


def test_metadata_with_unquoted_commas_never_fails():
    text = ("musicId,fileName,title,artist,album,duration,chorus_start_time,chorus_end_time\n"
            "1,1.mp3,Plain,Band,Album,200,40,70.5\n"
            "2,2.mp3,Hello, Goodbye,Band, Two,Album,210,1:05,1:35\n"
            "3,3.mp3,Short\n"
            "junk line without id\n")
    m = parse_metadata(text)
    assert m.rows[1]["title"] == "Plain" and m.rows[1]["chorus_end_s"] == 70.5
    two = m.rows[2]
    assert two["title"] is None and two["artist"] is None and two["file_name"] is None
    assert (two["song_duration_s"], two["chorus_start_s"], two["chorus_end_s"]) == (210.0, 65.0, 95.0)
    assert "unquoted comma" in two["metadata_issue"] and two["metadata_text"] == "2.mp3,Hello, Goodbye,Band, Two,Album"
    assert m.rows[3]["title"] == "Short" and m.rows[3]["song_duration_s"] is None
    assert len(m.problems) == 1 and "line 5" in m.problems[0]
    assert parse_metadata("").rows == {} and parse_metadata("a,b\n1,2\n").problems


def test_text_decoding_and_seconds():
    assert decode_text("标题".encode("gb18030")) == "标题"
    assert decode_text("\ufefftitle".encode("utf-8")) == "title"
    assert parse_seconds("1:23.5") == 83.5 and parse_seconds("0:01:00") == 60.0
    assert math.isnan(parse_seconds("n/a")) and parse_seconds("12") == 12.0


# ---- layout -----------------------------------------------------------------------------
def _touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_root_is_found_up_to_two_wrapper_levels(tmp_path):
    root = tmp_path / "data" / "PMEmo" / "PMEmo2019"
    _touch(root / "chorus" / "1.mp3")
    _touch(root / "annotations" / "static_annotations.csv", "musicId,Arousal(mean),Valence(mean)\n")
    assert locate_pmemo_root("", tmp_path / "data") == root
    assert locate_pmemo_root(str(root), None) == root
    # flattened copies: annotation files next to chorus/
    flat = tmp_path / "flat"
    _touch(flat / "chorus" / "1.mp3")
    _touch(flat / "dynamic_annotations.csv", "musicId,frameTime,Arousal(mean),Valence(mean)\n")
    assert find_layout(flat).dynamic == "dynamic_annotations.csv"
    assert locate_pmemo_root("", tmp_path) == flat      # the shallowest level that has one
    with pytest.raises(ConfigError, match="no chorus/ folder"):
        locate_pmemo_root("", tmp_path / "data" / "PMEmo" / "PMEmo2019" / "annotations")
    bare = tmp_path / "bare"
    _touch(bare / "chorus" / "1.mp3")
    with pytest.raises(ConfigError, match="several PMEmo folders"):
        locate_pmemo_root("", tmp_path)
    with pytest.raises(ConfigError, match="static_annotations.csv"):
        locate_pmemo_root(str(bare), None)


# ---- the stage on the demo tree ---------------------------------------------------------
@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pmemo") / "PMEmo"
    write_pmemo_demo(root)
    return root


def _run(root: Path, tmp_path: Path):
    params = build_params(Pmemo.Params, {}, "pmemo")
    ctx = StageContext(stage="pmemo", params=params, out_root=tmp_path, out_dir=tmp_path / "pmemo" / "fp",
                       roots={"pmemo": root})
    stage = Pmemo()
    items = stage.plan(ctx)
    outcomes = [stage.process(it, ctx.item_context()) for it in items]
    rows = pd.DataFrame([r for o in outcomes for r in o.rows])
    rejects = [r for o in outcomes for r in o.rejects]
    rows, rejects = finish_manifest(stage, ctx, rows, rejects)
    return items, rows, rejects


def test_demo_tree_every_id_kept_or_rejected_for_its_planted_reason(demo_tree, tmp_path):
    items, rows, rejects = _run(demo_tree, tmp_path)
    specs = {s.music_id: s for s in demo_clips()}
    assert len(items) == len(specs) == len(rows) + len(rejects)
    assert {r.sample_id: r.reason for r in rejects} == {
        "pmemo:20": "missing-annotation", "pmemo:22": "unreadable-audio", "pmemo:40": "missing-audio"}
    assert rows["sample_id"].tolist() == [f"pmemo:{i}" for i in (1, 4, 5, 7, 9, 12, 15, 31)]
    by = rows.set_index("song_id")
    for sid, row in by.iterrows():
        spec = specs[sid]
        assert row["duration_s"] == pytest.approx(spec.duration_s, abs=0.06)
        assert row["channels"] == spec.channels and row["sample_rate"] == 44100
        assert row["audio_path"] == f"chorus/{sid}.mp3" and len(row["content_hash"]) == 64
        if spec.static:
            assert (row["static_valence_raw"], row["static_arousal_raw"]) == (spec.valence, spec.arousal)
            assert 0.1 <= row["static_valence_std"] <= 0.3
        else:
            assert pd.isna(row["static_valence_raw"])
        dv = np.asarray(row["dyn_valence"], dtype=float)
        assert abs(np.nanmean(dv) - spec.valence) < 0.08 and row["dyn_t0_s"] == 15.0 and row["dyn_hz"] == 2.0
    # the out-of-range dynamic arousal of id 5 is blanked and noted, the rest of it kept
    five = by.loc[5]
    assert np.isnan(five["dyn_arousal"][3]) and "outside [0, 1]" in five["annotation_issues"]
    assert five["dyn_n_frames"] == len(five["dyn_valence"]) - 1
    # unquoted commas in metadata: text left empty, numbers kept; clean rows complete
    assert pd.isna(by.loc[7, "title"]) and "unquoted comma" in by.loc[7, "metadata_issue"]
    assert by.loc[7, "chorus_end_s"] == pytest.approx(47 + 33.0)
    assert by.loc[9, "title"] == "Fields" and pd.isna(by.loc[9, "metadata_issue"])
    assert (tmp_path / "pmemo" / "fp" / "ingest.json").is_file()


def test_demo_generation_is_byte_deterministic(demo_tree, tmp_path):
    again = tmp_path / "PMEmo"
    write_pmemo_demo(again)
    for path in sorted(p for p in demo_tree.rglob("*") if p.is_file()):
        assert (again / path.relative_to(demo_tree)).read_bytes() == path.read_bytes(), path
