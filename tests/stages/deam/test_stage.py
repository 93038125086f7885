"""The `deam` ingest stage: CSV quirks, layout detection (plain, wrapper, zips), the
annotation audit and static fix, and the accounting of every bad input."""
from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import soundfile as sf

from emoprep.pipeline.assemble import finish_manifest
from emoprep.pipeline.errors import ConfigError, DataError
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.registry import get_stage
from emoprep.pipeline.stage import Outcome, WorkItem
from emoprep.stages.deam.stage import MANIFEST_KINDS
from emoprep.stages.deam.annotations import Annotations
from emoprep.stages.deam.audit import audit_blocks, audit_inputs, ids_to_fix, segment_votes
from emoprep.stages.deam.parsers import (AnnotationFormatError, frame_grid, parse_dynamic_csv,
                                     parse_metadata_csv, parse_static_csv)
from emoprep.stages.deam.layout import OFFICIAL_ZIPS, check_zip, find_layout, locate_deam_root
from emoprep.stages.demo.deam import (DYNAMIC_DIR, SONG_LEVEL, STATIC_1, STATIC_2,
                                      write_deam_demo)


# ---- helpers shared with the other DEAM test modules ---------------------------------------
@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """(root, truth) of the demo DEAM tree, written once per test session."""
    return demo_tree(tmp_path_factory)


def demo_tree(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.getbasetemp() / "deam-demo-seed0"
    info_file = root.with_name("deam-demo-seed0.json")
    if not info_file.exists():
        info = write_deam_demo(root, seed=0)
        info_file.write_text(json.dumps(info, default=str))
    info = json.loads(info_file.read_text())
    info["songs"] = {int(k): v for k, v in info["songs"].items()}
    return root, info


@dataclass
class StageRun:
    items: list[WorkItem]
    outcomes: list[Outcome]
    rows: pd.DataFrame
    rejects: list
    ctx: StageContext
    counters: dict = field(default_factory=dict)

    def reasons(self) -> dict[str, str]:
        return {r.sample_id: r.reason for r in self.rejects}


def run_stage(name: str, out_root: Path, *, params=None, roots=None, manifests=None) -> StageRun:
    """Drive a stage as the runner will: plan → process each item → finalize."""
    stage = get_stage(name)
    params = params if params is not None else stage.Params()
    ctx = StageContext(stage=name, params=params, out_root=out_root, out_dir=out_root / name / "fp",
                       manifests=manifests or {}, roots=roots or {})
    items = list(stage.plan(ctx))
    ictx = ctx.item_context()
    outcomes = [stage.process(it, ictx) for it in items]
    rows = pd.DataFrame([r for o in outcomes for r in o.rows])
    rejects = [r for o in outcomes for r in o.rejects]
    counters: dict[str, int] = {}
    for o in outcomes:
        for k, v in o.counters.items():
            counters[k] = counters.get(k, 0) + v
    rows, rejects = finish_manifest(stage, ctx, rows, rejects)
    return StageRun(items, outcomes, rows, rejects, ctx, counters)


def assert_accounted(run: StageRun) -> None:
    """Inputs = rows + rejects: every item gives something, and nothing comes from nowhere."""
    keys = [it.key for it in run.items]
    assert len(set(keys)) == len(keys)
    for it, o in zip(run.items, run.outcomes):
        assert o.rows or o.rejects, f"{it.key} produced nothing"
        for sid in [r["sample_id"] for r in o.rows] + [r.sample_id for r in o.rejects]:
            assert sid == it.key or sid.startswith(it.key + ":"), (it.key, sid)


def ingest(root: Path, out: Path, **params) -> StageRun:
    stage = get_stage("deam")
    return run_stage("deam", out, params=stage.Params(**params), roots={"deam": root})


def mp3(path: Path, seconds: float = 2.0, sr: int = 16000, channels: int = 1, silent: bool = False) -> None:
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t) if silent else 0.3 * np.sin(2 * np.pi * 330 * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([x] * channels, 1).astype(np.float32), sr, format="MP3")


def write_csv(root: Path, rel: str, text: str, newline: str = "\n") -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(text.replace("\n", newline).encode())
    return p


STATIC_TEXT = """song_id, valence_mean, valence_std, arousal_mean, arousal_std
2,3.1,0.94,3,0.63
3,3.5,1.75,3.3,1.62
1001,6.2,1.1,7.4,0.9
"""


# ---- static CSVs ------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["plain", "crlf", "padded", "bom", "padded+crlf"])
def test_static_csv_variants_parse_to_the_same_values(variant):
    text = STATIC_TEXT
    if "padded" in variant:
        lines = text.splitlines()
        text = "\n".join([lines[0]] + [",".join(c.rjust(8) + "  " for c in ln.split(",")) for ln in lines[1:]]) + "\n"
    if "crlf" in variant:
        text = text.replace("\n", "\r\n")
    data = text.encode()
    if variant == "bom":
        data = b"\xef\xbb\xbf" + data
    df = parse_static_csv(data, "static.csv")
    assert list(df["song_id"]) == [2, 3, 1001]
    assert df.loc[0, ["valence_mean", "valence_std", "arousal_mean", "arousal_std"]].tolist() == [3.1, 0.94, 3.0, 0.63]
    assert df.loc[2, "arousal_mean"] == 7.4
    assert df.attrs["problems"] == []


def test_static_csv_2015_file_with_13_columns_and_typo():
    text = ("song_id, valence_mean, valence_std, valence_ max_mean, valence_max_std, valence_min_mean, "
            "valence_min_std, arousal_mean, arousal_std, arousal_max_mean, arousal_max_std, "
            "arousal_min_mean, arousal_min_std\n"
            "2001,3.2,0.98,5.0,1.41,2.2,0.98,6.6,0.8,8.6,0.49,3.4,1.02\n"
            "2002,6.4,0.49,8.2,0.98,5.0,1.1,5.2,1.17,7.4,1.36,2.2,1.17\n")
    df = parse_static_csv(text.encode(), STATIC_2)
    assert "valence_max_mean" in df.columns  # the typo'd header is normalised
    assert len(df.columns) == 13 + 1  # 13 + source_line
    assert df.set_index("song_id").loc[2001, ["valence_mean", "arousal_mean", "valence_max_mean"]].tolist() == [3.2, 6.6, 5.0]


def test_static_csv_bad_lines_are_skipped_and_reported():
    text = STATIC_TEXT + "abc,1,1,1,1\n4,x,1.0,5.0,1.0\n5,4.0\n"
    df = parse_static_csv(text.encode(), "s.csv")
    assert list(df["song_id"]) == [2, 3, 1001, 4, 5]
    assert np.isnan(df.set_index("song_id").loc[4, "valence_mean"])
    assert np.isnan(df.set_index("song_id").loc[5, "arousal_mean"])
    probs = " ".join(df.attrs["problems"])
    assert "s.csv:5" in probs and "'x' is not a number" in probs and "s.csv:7" in probs


def test_static_csv_without_the_needed_columns_is_a_format_error():
    with pytest.raises(AnnotationFormatError, match="valence_mean"):
        parse_static_csv(b"song_id,foo,bar\n2,1,2\n", "weird.csv")


# ---- dynamic and metadata CSVs ------------------------------------------------------------
def test_dynamic_csv_ragged_rows_and_empty_cells_read_as_nan_tails():
    text = ("song_id,sample_15000ms,sample_15500ms,sample_16000ms,sample_16500ms,\r\n"
            "2,0.1,-0.2,0.3,0.4\r\n"
            "3,0.5,0.25\r\n"          # ragged: missing trailing cells
            "4, 0.1 ,,0.2,\r\n")       # padded values, empty interior and trailing cells
    df = parse_dynamic_csv(text.encode(), "valence.csv")
    assert list(df.columns) == [15000, 15500, 16000, 16500]
    assert df.loc[2].tolist() == [0.1, -0.2, 0.3, 0.4]
    assert df.loc[3].tolist()[:2] == [0.5, 0.25] and df.loc[3].isna().tolist() == [False, False, True, True]
    assert df.loc[4].isna().tolist() == [False, True, False, True]
    assert frame_grid(df.columns) == (15000, 500)


def test_dynamic_csv_unknown_header_and_irregular_grid_are_errors():
    with pytest.raises(AnnotationFormatError):
        parse_dynamic_csv(b"song_id,t1,t2\n2,0.1,0.2\n")
    with pytest.raises(AnnotationFormatError):
        frame_grid([15000, 15500, 16500])


def test_metadata_csvs_with_per_year_headers_ragged_rows_and_tabs():
    m13 = parse_metadata_csv(b"song_id,file_name,Artist,Song title,start,end,Genre\n2,2.mp3,A,T,0,1,Rock\n",
                               "metadata_2013.csv")
    m14 = parse_metadata_csv(b"Id,Artist,Album,Track,Genre\n1001,B,Al,Tr\tack,Pop,extra,extra2\n1002,C\n",
                               "metadata_2014.csv")
    m15 = parse_metadata_csv(b"id,file_name,title,artist,album,genre\n2001,x.mp3,Ti,Ar,Al,Jazz\n",
                               "metadata_2015.csv")
    assert m13.iloc[0].to_dict() == {"song_id": 2, "metadata_year": "2013", "artist": "A", "title": "T", "genre": "Rock"}
    assert m14.set_index("song_id").loc[1001, "title"] == "Tr ack"
    assert pd.isna(m14.set_index("song_id").loc[1002, "genre"])
    assert m15.iloc[0]["genre"] == "Jazz" and m15.iloc[0]["metadata_year"] == "2015"


def test_metadata_never_raises():
    for junk in (b"", b"\xff\xfe\x00garbage", b"no,ident,here\n1,2,3\n"):
        df = parse_metadata_csv(junk, "metadata_2014.csv")
        assert df.empty


# ---- layout ---------------------------------------------------------------------------------
def _mini_tree(root: Path, ids=(2, 3), annotations=True) -> Path:
    for i in ids:
        mp3(root / "MEMD_audio" / f"{i}.mp3", seconds=1.0)
    if annotations:
        body = "".join(f"{i},5,1,5,1\n" for i in ids)
        write_csv(root, f"{SONG_LEVEL}/{STATIC_1}", "song_id, valence_mean, valence_std, arousal_mean, arousal_std\n" + body)
    return root


def test_audio_folder_symlinked_to_another_disk_is_read_but_file_links_may_not_leave_it(tmp_path):
    """`MEMD_audio` itself may be a symlink (the audio lives elsewhere); a file link inside
    it that leads out of both the root and that folder is still `path-outside-root`."""
    from emoprep.stages.deam import layout as deam_layout
    from emoprep.stages.pmemo import stage as pmemo
    from emoprep.stages.common.audio_io import LINKABLE_AUDIO_DIRS

    assert LINKABLE_AUDIO_DIRS == {deam_layout.AUDIO_DIR, pmemo.AUDIO_DIR}
    root = _mini_tree(tmp_path / "root", ids=(2, 3, 4))
    elsewhere = tmp_path / "disk2" / "MEMD_audio"
    elsewhere.parent.mkdir()
    (root / "MEMD_audio").rename(elsewhere)
    (root / "MEMD_audio").symlink_to(elsewhere, target_is_directory=True)
    mp3(tmp_path / "secret" / "x.mp3", seconds=1.0)
    (elsewhere / "4.mp3").unlink()
    (elsewhere / "4.mp3").symlink_to(tmp_path / "secret" / "x.mp3")
    run = ingest(root, tmp_path / "out")
    assert sorted(run.rows["sample_id"]) == ["deam:2", "deam:3"]
    assert [(r.sample_id, r.reason) for r in run.rejects] == [("deam:4", "path-outside-root")]


def test_locate_root_plain_wrapper_and_split_wrappers(tmp_path):
    plain = _mini_tree(tmp_path / "a")
    assert locate_deam_root("", plain) == plain
    wrapped = tmp_path / "b"
    _mini_tree(wrapped / "DEAM")
    assert locate_deam_root("", wrapped) == wrapped / "DEAM"
    # Kaggle-style: each download unpacked into its own folder
    split = tmp_path / "c"
    _mini_tree(split / "DEAM_audio", annotations=False)
    write_csv(split / "DEAM_Annotations", f"{SONG_LEVEL}/{STATIC_1}",
              "song_id, valence_mean, valence_std, arousal_mean, arousal_std\n2,5,1,5,1\n")
    assert locate_deam_root("", split) == split
    layout = find_layout(split)
    assert layout.audio == ["DEAM_audio/MEMD_audio/2.mp3", "DEAM_audio/MEMD_audio/3.mp3"]
    assert locate_deam_root(str(plain), None) == plain


def test_locate_root_errors_name_the_folder_and_the_layout(tmp_path):
    with pytest.raises(ConfigError, match=r"no MEMD_audio/ under .*expected the DEAM layout in SPEC §3\.1"):
        locate_deam_root("", tmp_path)
    _mini_tree(tmp_path / "x", annotations=False)
    with pytest.raises(ConfigError, match="no annotations"):
        locate_deam_root("", tmp_path)
    with pytest.raises(ConfigError, match="not a folder"):
        locate_deam_root(str(tmp_path / "nope"), None)


def _zip_tree(src: Path, dst: Path, audio_wrapper: str = "") -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for zname, top, wrap in (("DEAM_audio.zip", "MEMD_audio", audio_wrapper),
                             ("DEAM_Annotations.zip", "annotations", ""), ("metadata.zip", "metadata", "")):
        with zipfile.ZipFile(dst / zname, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted((src / top).rglob("*")):
                if p.is_file():
                    zf.write(p, (f"{wrap}/" if wrap else "") + p.relative_to(src).as_posix())
    return dst


@pytest.mark.parametrize("wrapper", ["", "DEAM_audio"])
def test_official_zips_are_read_in_place_with_the_same_result(demo, tmp_path, wrapper):
    root, _ = demo
    zroot = _zip_tree(root, tmp_path / "zips", wrapper)
    assert locate_deam_root("", tmp_path) == zroot
    plain = ingest(root, tmp_path / "o1")
    zipped = ingest(zroot, tmp_path / "o2")
    cols = ["sample_id", "content_hash", "duration_s", "sample_rate", "channels", "static_valence_raw",
            "static_arousal_raw", "static_fixed", "genre"]
    pd.testing.assert_frame_equal(plain.rows[cols], zipped.rows[cols])
    assert plain.reasons() == zipped.reasons()
    assert all(p.startswith("DEAM_audio.zip::") for p in zipped.rows["audio_path"])
    assert not list(zroot.glob("MEMD_audio"))  # nothing was unpacked


def test_zip_checksums_mismatch_is_a_warning_not_an_error(demo, tmp_path, monkeypatch):
    root, _ = demo
    zroot = _zip_tree(root, tmp_path / "zips")
    run = ingest(zroot, tmp_path / "out")
    audit = json.loads((run.ctx.out_dir / "audit.json").read_text())
    checks = {c["file"]: c for c in audit["zip_checks"]}
    assert set(checks) == {"DEAM_audio.zip", "DEAM_Annotations.zip", "metadata.zip"}
    assert not any(c["ok"] for c in checks.values())
    assert len(audit["warnings"]) == 3 and "differs from the official download" in audit["warnings"][0]
    # with the recorded values matching the file, the check passes
    z = zroot / "metadata.zip"
    digest = run.ctx.hasher.hash(z).upper()
    monkeypatch.setitem(OFFICIAL_ZIPS, "metadata.zip", (z.stat().st_size, digest))
    assert check_zip(z, digest)["ok"] is True and "warning" not in check_zip(z, digest)


# ---- the audit --------------------------------------------------------------------------
def _audit_data(ids, crossed=(), seed=0, noise=0.08):
    """Static (1–9) and dynamic means for `ids`; static columns crossed for ids in `crossed`."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(2, 8, len(ids))
    a = np.clip(0.5 * (v - 5) + 5 + rng.normal(0, 1.3, len(ids)), 1, 9)  # V and A correlate, as in DEAM
    dyn = pd.DataFrame({"valence": (v - 5) / 4 + rng.normal(0, noise, len(ids)),
                        "arousal": (a - 5) / 4 + rng.normal(0, noise, len(ids))}, index=pd.Index(ids, name="song_id"))
    cross = np.isin(ids, list(crossed))
    static = pd.DataFrame({"valence_mean": np.where(cross, a, v), "arousal_mean": np.where(cross, v, a)},
                          index=pd.Index(ids, name="song_id"))
    return static, dyn


def test_audit_flags_the_crossed_block_and_only_it():
    ids = np.array(list(range(2, 1000, 2)) + list(range(1001, 2001)) + list(range(2001, 2059)))
    static, dyn = _audit_data(ids, crossed=ids[ids <= 1000])
    audit = audit_blocks(static, dyn)
    verdicts = dict(zip(audit["block"], audit["verdict"]))
    assert verdicts["1-1000"] == "crossed"
    assert verdicts["1001-2000"] == "straight" and verdicts["2001-2058"] == "straight"
    row = audit.set_index("block").loc["1-1000"]
    assert row.r_sv_da > row.r_sv_dv and row.r_sa_dv > row.r_sa_da
    assert ids_to_fix(audit, "auto", ids) == set(ids[ids <= 1000].tolist())


def test_audit_leaves_a_clean_tree_alone():
    ids = np.array(list(range(2, 1000, 2)) + list(range(1001, 2059)))
    for seed in range(3):
        static, dyn = _audit_data(ids, seed=seed, noise=0.2)
        audit = audit_blocks(static, dyn)
        assert set(audit["verdict"]) == {"straight"}, audit
        assert (audit["kind"] == "standard").all()  # no spurious detected run
        assert ids_to_fix(audit, "auto", ids) == set()


def test_audit_detects_a_crossed_run_inside_a_clean_block():
    ids = np.arange(1001, 2001)
    run = ids[(ids >= 1300) & (ids < 1360)]
    static, dyn = _audit_data(ids, crossed=run, seed=4)
    audit = audit_blocks(static, dyn)
    det = audit[audit["kind"] == "detected"]
    assert len(det) == 1 and det.iloc[0]["verdict"] == "crossed"
    lo, hi = det.iloc[0]["id_min"], det.iloc[0]["id_max"]
    assert abs(lo - 1300) <= 3 and abs(hi - 1359) <= 3
    fixed = ids_to_fix(audit, "auto", ids)
    assert len(fixed & set(run.tolist())) >= 55 and len(fixed - set(run.tolist())) <= 3


def test_small_blocks_get_no_verdict_and_segment_votes_ignores_isolated_votes():
    static, dyn = _audit_data(np.array([2001, 2002, 2003]))
    assert audit_blocks(static, dyn)["verdict"].tolist() == ["insufficient"]
    votes = -np.ones(200, dtype=int)
    votes[[10, 50, 51, 120]] = 1
    assert segment_votes(votes).sum() == 0
    votes[60:100] = 1
    states = segment_votes(votes)
    assert states[60:100].all() and states[:55].sum() == 0 and states[105:].sum() == 0


def test_static_fix_modes():
    audit = pd.DataFrame([{"block": "1-1000", "id_min": 1, "id_max": 1000, "verdict": "crossed"},
                          {"block": "1001-2000", "id_min": 1001, "id_max": 2000, "verdict": "straight"}])
    ids = [2, 500, 1000, 1001, 1500]
    assert ids_to_fix(audit, "auto", ids) == {2, 500, 1000}
    assert ids_to_fix(audit.assign(verdict="straight"), "auto", ids) == set()
    assert ids_to_fix(audit.assign(verdict="straight"), "swap-le-1000", ids) == {2, 500, 1000}
    assert ids_to_fix(audit, "none", ids) == set()
    with pytest.raises(ConfigError):
        ids_to_fix(audit, "swap", ids)


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
        ctx = StageContext(stage="deam", params=stage.Params(), out_root=tmp_path, out_dir=tmp_path / "o",
                           roots={"deam": r})
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


def _dyn_csv(rows: dict[int, list[float]]) -> str:
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
    frames = [0.1] * 4
    val = {20: frames, 21: frames, 22: frames, 23: frames, 24: [3.0] * 4, 25: [0.1, "", 0.1, ""]}
    aro = {20: frames, 21: frames, 22: frames, 23: frames, 24: [3.0] * 4, 25: ["", 0.2, "", 0.2]}
    write_csv(root, f"{DYNAMIC_DIR}/valence.csv", _dyn_csv(val) + "21,0.5,0.5,0.5,0.5\n22,0.9,0.9,0.9,0.9\n")
    write_csv(root, f"{DYNAMIC_DIR}/arousal.csv", _dyn_csv(aro))
    run = ingest(root, tmp_path / "out")
    assert_accounted(run)
    assert run.reasons() == {"deam:22": "duplicate-annotation"}
    msg = run.rejects[0].message
    assert "static rows disagree" in msg and "valence.csv has 2 rows that disagree" in msg
    rows = run.rows.set_index("song_id")
    for sid in (20, 23):  # no static, full dynamic
        assert pd.isna(rows.loc[sid, "static_valence_raw"]) and pd.isna(rows.loc[sid, "static_source"])
        assert rows.loc[sid, "dyn_n_frames"] == 4
    assert "static rows disagree" in rows.loc[20, "annotation_issues"]
    assert "outside [1, 9]" in rows.loc[23, "annotation_issues"]
    for sid in (21, 24, 25):  # static kept, no frame with both dimensions
        assert rows.loc[sid, "static_valence_raw"] == (4.0 if sid == 21 else 3.0)
        assert rows.loc[sid, "dyn_n_frames"] == 0
    assert len(rows.loc[21, "dyn_valence"]) == 0 and "valence.csv has 2 rows" in rows.loc[21, "annotation_issues"]
    assert "8 dynamic frames outside [-1, 1]" in rows.loc[24, "annotation_issues"]
    deam = run.rows
    clips = run_stage("clips", tmp_path / "c", roots={"deam": root}, manifests={"deam": deam})
    chunks = run_stage("chunks", tmp_path / "k", roots={"deam": root}, manifests={"deam": deam})
    assert {k: v for k, v in clips.reasons().items() if v == "missing-static"} == {
        "deam:20": "missing-static", "deam:23": "missing-static"}
    assert {k: v for k, v in chunks.reasons().items() if v == "missing-dynamic"} == {
        "deam:21": "missing-dynamic", "deam:24": "missing-dynamic", "deam:25": "missing-dynamic"}


def test_the_audit_leaves_out_rows_that_disagree():
    ids = np.arange(1001, 1041)
    static, dyn = _audit_data(ids)
    ann = Annotations(static=static.assign(static_source="s.csv:1"),
                      dynamic={dim: {int(sid): np.array([x]) for sid, x in dyn[dim].items()}
                               for dim in ("valence", "arousal")},
                      static_conflicts={1001: "static rows disagree"},
                      dynamic_conflicts={1002: "valence.csv has 2 rows that disagree"})
    used_static, used_dyn = audit_inputs(ann)
    assert 1001 not in used_static.index and 1002 in used_static.index
    assert 1002 not in used_dyn.index and 1001 in used_dyn.index and len(used_dyn) == 39


KIND_TYPES = {"str": pa.large_string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
              "floats": pa.list_(pa.float64())}


def test_manifest_column_types_do_not_depend_on_the_data(demo, tmp_path):
    """Without metadata, issues or dynamic files every optional column is empty, yet each
    column keeps its Parquet type; `path` (always null for an ingest) is not a column."""
    bare = _mini_tree(tmp_path / "bare")
    runs = [ingest(bare, tmp_path / "o1"), ingest(demo[0], tmp_path / "o2")]
    for run in runs:
        table = pa.Table.from_pandas(run.rows, preserve_index=False)
        assert {f.name: f.type for f in table.schema} == {c: KIND_TYPES[k] for c, k in MANIFEST_KINDS.items()}
    issues = pa.Table.from_pandas(runs[0].rows).column("annotation_issues").to_pylist()
    assert issues == [None, None]  # no issues is None (null), never a float NaN
    # a manifest without rows has every column too (list columns: type unknown without values)
    ctx = runs[0].ctx
    rows, _ = get_stage("deam").finalize(ctx, pd.DataFrame({"sample_id": pd.Series([], dtype=str)}), [])
    types = {f.name: f.type for f in pa.Table.from_pandas(rows, preserve_index=False).schema}
    assert list(types) == list(MANIFEST_KINDS)
    assert all(types[c] == KIND_TYPES[k] for c, k in MANIFEST_KINDS.items() if k != "floats")


def test_malformed_annotation_file_is_a_data_error_naming_it(tmp_path):
    root = _mini_tree(tmp_path / "d")
    write_csv(root, f"{DYNAMIC_DIR}/valence.csv", "id;foo\n2;1\n")
    with pytest.raises(DataError, match="valence.csv"):
        ingest(root, tmp_path / "out")


def test_damaged_zips(demo, tmp_path):
    root, _ = demo
    zroot = _zip_tree(root, tmp_path / "zips")
    (zroot / "metadata.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    run = ingest(zroot, tmp_path / "out")
    audit = json.loads((run.ctx.out_dir / "audit.json").read_text())
    assert any("metadata.zip: not a readable zip" in w for w in audit["warnings"])
    assert run.rows["genre"].isna().all() and len(run.rows) > 0
    (zroot / "DEAM_audio.zip").write_bytes(b"PK\x03\x04 truncated download")
    with pytest.raises(ConfigError, match="DEAM_audio.zip: not a readable zip"):
        locate_deam_root("", zroot)
