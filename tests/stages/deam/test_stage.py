"""The `deam` ingest stage: every song kept or rejected for its reason on the demo tree and
on broken trees, the static fix as applied, outputs independent of where the data lives,
and the manifest's column types. The CSV parsers, the layout and the audit have their own
test modules; the helpers at the top drive a DEAM stage for them and for other stages' tests."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pyarrow as pa
import pytest

from emoprep.pipeline.assemble import finish_manifest
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError, DataError
from emoprep.stages.deam.stage import MANIFEST_KINDS, DeamParams
from emoprep.stages.demo.deam_files import DYNAMIC_DIR, SONG_LEVEL, STATIC_1
from tests.helpers.catalog import stage as get_stage
from tests.helpers.deam import ingest, mini_tree, mp3, write_csv
from tests.helpers.stage_run import assert_accounted, run_stage


# ---- the stage on the demo tree -------------------------------------------------------------
def test_demo_ingest_rows_rejects_and_static_fix(demo, tmp_path):
    root, truth = demo
    run = ingest(root, tmp_path)
    assert_accounted(run)
    songs = truth["songs"]
    assert len(run.items) == len(songs)
    q = truth["quirks"]
    expected_rejects = {f"deam:{i}": "unreadable-audio" for i in q["corrupt_audio_ids"]}
    expected_rejects.update({f"deam:{i}": "missing-audio" for i in q["annotation_without_audio_ids"]})
    expected_rejects.update({f"deam:{i}": "missing-annotation" for i in q["audio_without_annotation_ids"]})
    assert run.reasons() == expected_rejects
    rows = run.rows.set_index("song_id")
    for sid, s in songs.items():
        if f"deam:{sid}" in expected_rejects:
            continue
        r = rows.loc[sid]
        assert r.sample_rate == s["sample_rate"] and r.channels == s["channels"]
        assert abs(r.duration_s - s["duration_s"]) < 1e-3
        # after the audit's fix, static VA is the truth again, crossed block included
        assert (r.static_valence_raw, r.static_arousal_raw) == pytest.approx((s["valence"], s["arousal"]))
        assert r.static_fixed == s["static_crossed"]
        assert len(r.dyn_valence) == len(r.dyn_arousal) >= 60
        assert not r.audio_path.startswith("/")
    audit = json.loads((run.ctx.out_dir / "audit.json").read_text())
    assert [b["block"] for b in audit["blocks"] if b["verdict"] == "crossed"] == ["1-1000"]
    assert audit["n_fixed"] == len(q["static_crossed_ids"])


@pytest.mark.parametrize("mode", ["none", "swap-le-1000"])
def test_demo_ingest_static_fix_none_and_swap(demo, tmp_path, mode):
    root, truth = demo
    rows = ingest(root, tmp_path, static_fix=mode).rows.set_index("song_id")
    for sid in truth["quirks"]["static_crossed_ids"]:
        s = truth["songs"][sid]
        want = (s["valence"], s["arousal"]) if mode == "swap-le-1000" else (s["arousal"], s["valence"])
        assert (rows.loc[sid, "static_valence_raw"], rows.loc[sid, "static_arousal_raw"]) == pytest.approx(want)
        assert rows.loc[sid, "static_fixed"] == (mode != "none")
    assert (rows.loc[rows.index > 1000, "static_fixed"] == False).all()  # noqa: E712


def test_unknown_static_fix_is_a_config_error(demo, tmp_path):
    root, _ = demo
    with pytest.raises(ConfigError, match="static_fix"):
        ingest(root, tmp_path, static_fix="swap")


def test_source_signature_is_relative_and_follows_content(demo, tmp_path):
    root, _ = demo
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    stage = get_stage("deam")
    def sig(r):
        ctx: StageContext[DeamParams] = StageContext(stage="deam", params=DeamParams(), out_root=tmp_path,
                                                     out_dir=tmp_path / "o", roots={"deam": r})
        return stage.source_signature(ctx)
    a = sig(root)
    assert a == sig(copy)  # same content elsewhere: same signature
    assert all(not k.startswith("/") for k in a["files"])
    assert f"{SONG_LEVEL}/{STATIC_1}" in a["files"] and "MEMD_audio/2.mp3" in a["files"]
    p = copy / DYNAMIC_DIR / "valence.csv"
    p.write_bytes(p.read_bytes().replace(b"0.1", b"0.2", 1))
    assert sig(copy) != a


def test_outputs_do_not_depend_on_where_the_data_lives(demo, tmp_path):
    """Two copies at different absolute paths: identical rows, rejects (messages included)
    and audit.json bytes."""
    runs = []
    for where in ("a", "much/deeper/b"):
        root = tmp_path / where / "DEAM"
        shutil.copytree(demo[0], root)
        (root / "MEMD_audio" / "notes.txt").write_text("ignored")
        runs.append(ingest(root, tmp_path / where / "out"))
    a, b = runs
    pd.testing.assert_frame_equal(a.rows, b.rows)
    assert a.rejects == b.rejects and str(tmp_path) not in " ".join(r.message for r in a.rejects)
    audit = (a.ctx.out_dir / "audit.json").read_bytes()
    assert audit == (b.ctx.out_dir / "audit.json").read_bytes() and str(tmp_path).encode() not in audit


# ---- broken inputs ------------------------------------------------------------------------
def test_broken_tree_every_input_is_a_row_or_a_reject(tmp_path):
    root = tmp_path / "deam"
    good = [2, 3, 4, 1001, 1002, 1003]
    for i in good:
        mp3(root / "MEMD_audio" / f"{i}.mp3", seconds=1.0)
    mp3(root / "MEMD_audio" / "5.mp3", seconds=1.0, silent=True)          # silent: valid
    (root / "MEMD_audio" / "6.mp3").write_bytes(b"")                     # empty
    (root / "MEMD_audio" / "7.mp3").write_text("<html>not audio</html>")  # wrong format
    mp3(root / "MEMD_audio" / "8.mp3", seconds=1.0)
    shutil.copy(root / "MEMD_audio" / "8.mp3", root / "MEMD_audio" / "008.mp3")  # duplicate id
    mp3(root / "MEMD_audio" / "readme.mp3", seconds=0.5)                 # not <id>.mp3
    (root / "MEMD_audio" / "notes.txt").write_text("ignored")
    (root / "MEMD_audio" / "._2.mp3").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork
    mp3(root / "MEMD_audio" / "9.mp3", seconds=1.0)                      # audio, no annotation
    static = ("song_id, valence_mean, valence_std, arousal_mean, arousal_std\n"
              + "".join(f"{i},5.5,1,4.5,1\n" for i in [*good, 5, 6, 7, 8, 10])
              + "3,5.5,1,4.5,1\n"        # identical duplicate: merged
              + "4,7.0,1,2.0,1\n"        # conflicting duplicate
              + "11,12.0,1,0.5,1\n")     # out of range, no audio
    write_csv(root, f"{SONG_LEVEL}/{STATIC_1}", static, newline="\r\n")
    mp3(root / "MEMD_audio" / "12.mp3", seconds=1.0)
    write_csv(root, f"{DYNAMIC_DIR}/valence.csv", "song_id,sample_15000ms,sample_15500ms\n1003,0.1,0.2\n12,7,8\n")
    write_csv(root, f"{DYNAMIC_DIR}/arousal.csv", "song_id,sample_15000ms,sample_15500ms\n1003,0.1,0.2\n12,5,9\n")
    run = ingest(root, tmp_path / "out")
    assert_accounted(run)
    assert run.reasons() == {
        "deam:4": "duplicate-annotation", "deam:6": "empty-audio", "deam:7": "unreadable-audio",
        "deam:8": "duplicate-audio", "deam:9": "missing-annotation", "deam:10": "missing-audio",
        "deam:11": "missing-audio", "deam:12": "bad-annotation", "deam:readme.mp3": "bad-song-id"}
    kept = set(run.rows["song_id"])
    assert kept == {2, 3, 5, 1001, 1002, 1003}
    msgs = {r.sample_id: r.message for r in run.rejects}
    assert "MEMD_audio/7.mp3" in msgs["deam:7"] and "MEMD_audio/008.mp3" in msgs["deam:8"]
    assert str(tmp_path) not in " ".join(msgs.values())  # messages name files relative to the root
    assert run.counters == {"duplicate-rows-merged": 1}
    issues = run.rows.set_index("song_id")["annotation_issues"]
    assert "annotations run to 15.5 s but the audio (MEMD_audio/1003.mp3) is 1.00 s long" in issues[1003]
    assert pd.isna(issues[2])
    audit = json.loads((run.ctx.out_dir / "audit.json").read_text())
    assert any("notes.txt" in w for w in audit["warnings"])


def _dyn_csv(rows: dict[int, list[float | str]]) -> str:
    n = max(len(v) for v in rows.values())
    head = "song_id," + ",".join(f"sample_{15000 + 500 * k}ms" for k in range(n))
    return head + "\n" + "".join(f"{i}," + ",".join(map(str, v)) + "\n" for i, v in rows.items())


def test_a_fault_in_one_annotation_kind_keeps_the_song_for_the_other(tmp_path):
    """Disagreeing repeated rows or out-of-range values blank only that kind: clips rejects
    the song `missing-static`, chunks `missing-dynamic`, and the audit does not use them."""
    root = tmp_path / "deam"
    for i in (20, 21, 22, 23, 24, 25):
        mp3(root / "MEMD_audio" / f"{i}.mp3", seconds=1.0)
    static = ("song_id, valence_mean, valence_std, arousal_mean, arousal_std\n"
              "20,5,1,5,1\n20,6,1,5,1\n"      # static rows disagree; dynamic fine
              "21,4,1,6,1\n"                   # static fine; dynamic rows disagree
              "22,5,1,5,1\n22,7,1,5,1\n"      # both kinds disagree
              "23,12,1,5,1\n"                  # static out of range; dynamic fine
              "24,3,1,7,1\n"                   # static fine; dynamic all out of range
              "25,3,1,7,1\n")                  # dynamic valence and arousal never on one frame
    write_csv(root, f"{SONG_LEVEL}/{STATIC_1}", static)
    frames: list[float | str] = [0.1] * 4
    val: dict[int, list[float | str]] = {20: frames, 21: frames, 22: frames, 23: frames, 24: [3.0] * 4,
                                         25: [0.1, "", 0.1, ""]}
    aro: dict[int, list[float | str]] = {20: frames, 21: frames, 22: frames, 23: frames, 24: [3.0] * 4,
                                         25: ["", 0.2, "", 0.2]}
    write_csv(root, f"{DYNAMIC_DIR}/valence.csv", _dyn_csv(val) + "21,0.5,0.5,0.5,0.5\n22,0.9,0.9,0.9,0.9\n")
    write_csv(root, f"{DYNAMIC_DIR}/arousal.csv", _dyn_csv(aro))
    run = ingest(root, tmp_path / "out")
    assert_accounted(run)
    assert run.reasons() == {"deam:22": "duplicate-annotation"}
    msg = run.rejects[0].message
    assert "static rows disagree" in msg and "valence.csv has 2 rows that disagree" in msg
    rows = run.rows.set_index("song_id")
    issues = rows["annotation_issues"]
    for sid in (20, 23):  # no static, full dynamic
        assert pd.isna(rows["static_valence_raw"][sid]) and pd.isna(rows["static_source"][sid])
        assert rows.loc[sid, "dyn_n_frames"] == 4
    assert "static rows disagree" in issues[20]
    assert "outside [1, 9]" in issues[23]
    for sid in (21, 24, 25):  # static kept, no frame with both dimensions
        assert rows.loc[sid, "static_valence_raw"] == (4.0 if sid == 21 else 3.0)
        assert rows.loc[sid, "dyn_n_frames"] == 0
    assert len(rows["dyn_valence"][21]) == 0 and "valence.csv has 2 rows" in issues[21]
    assert "8 dynamic frames outside [-1, 1]" in issues[24]
    deam = run.rows
    clips = run_stage("clips", tmp_path / "c", roots={"deam": root}, manifests={"deam": deam})
    chunks = run_stage("chunks", tmp_path / "k", roots={"deam": root}, manifests={"deam": deam})
    assert {k: v for k, v in clips.reasons().items() if v == "missing-static"} == {
        "deam:20": "missing-static", "deam:23": "missing-static"}
    assert {k: v for k, v in chunks.reasons().items() if v == "missing-dynamic"} == {
        "deam:21": "missing-dynamic", "deam:24": "missing-dynamic", "deam:25": "missing-dynamic"}


KIND_TYPES = {"str": pa.large_string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
              "floats": pa.list_(pa.float64())}


def test_manifest_column_types_do_not_depend_on_the_data(demo, tmp_path):
    """Without metadata, issues or dynamic files every optional column is empty, yet each
    column keeps its Parquet type; `path` (always null for an ingest) is not a column."""
    bare = mini_tree(tmp_path / "bare")
    runs = [ingest(bare, tmp_path / "o1"), ingest(demo[0], tmp_path / "o2")]
    for run in runs:
        table = pa.Table.from_pandas(run.rows, preserve_index=False)
        assert {f.name: f.type for f in table.schema} == {c: KIND_TYPES[k] for c, k in MANIFEST_KINDS.items()}
    issues = pa.Table.from_pandas(runs[0].rows).column("annotation_issues").to_pylist()
    assert issues == [None, None]  # no issues is None (null), never a float NaN
    # a manifest without rows has every column too (list columns: type unknown without values)
    ctx = runs[0].ctx
    stage = get_stage("deam")
    rows, _ = finish_manifest(stage, ctx, pd.DataFrame({"sample_id": pd.Series([], dtype=str)}), [])
    types = {f.name: f.type for f in pa.Table.from_pandas(rows, preserve_index=False).schema}
    assert list(types) == list(MANIFEST_KINDS)
    assert all(types[c] == KIND_TYPES[k] for c, k in MANIFEST_KINDS.items() if k != "floats")


def test_malformed_annotation_file_is_a_data_error_naming_it(tmp_path):
    root = mini_tree(tmp_path / "d")
    write_csv(root, f"{DYNAMIC_DIR}/valence.csv", "id;foo\n2;1\n")
    with pytest.raises(DataError, match=r"valence\.csv"):
        ingest(root, tmp_path / "out")
