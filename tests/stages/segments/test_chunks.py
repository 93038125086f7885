"""`chunks`: chunk counts and exact lengths on the demo tree, chunk VA from the generator's
frames, the chunk audio against an independent decode, and the accounting of bad inputs."""
from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import soundfile as sf

from emoprep.pipeline.errors import ConfigError
from emoprep.stages.common.audio_source import read_views
from emoprep.stages.demo.deam_files import DYNAMIC_DIR, SongSpec, dynamic_frames
from emoprep.stages.segments.chunks import CHUNKS_KINDS
from emoprep.stages.segments.spans import chunk_spans
from tests.helpers.catalog import stage as get_stage
from tests.helpers.deam import ingest, mp3, write_csv
from tests.helpers.segments import CHUNK_N, arrow_types, declared_types, expected_chunks
from tests.helpers.stage_run import assert_accounted, run_stage


def test_chunk_with_seven_common_frames_is_under_annotated(tmp_path):
    root = tmp_path / "deam"
    mp3(root / "MEMD_audio" / "2.mp3", seconds=25.0)   # chunks [15, 20) and [20, 25)
    head = "song_id," + ",".join(f"sample_{15000 + 500 * i}ms" for i in range(20))
    val = ["", *["0.5"] * 19]                          # chunk 0: 9 valence frames
    aro = ["0.1", "", "", *["0.1"] * 17]               # chunk 0: 8 arousal frames, 7 in common
    write_csv(root, f"{DYNAMIC_DIR}/valence.csv", f"{head}\n2," + ",".join(val) + "\n")
    write_csv(root, f"{DYNAMIC_DIR}/arousal.csv", f"{head}\n2," + ",".join(aro) + "\n")
    deam = ingest(root, tmp_path / "o").rows
    assert deam.loc[0, "dyn_n_frames"] == 17          # frames with both, over the song
    run = run_stage("chunks", tmp_path / "k", roots={"deam": root}, manifests={"deam": deam})
    assert run.reasons() == {"deam:2:0": "under-annotated"}
    assert "7 of 10 frames have both valence and arousal, 8 needed" in run.rejects[0].message
    row = run.rows.set_index("sample_id").loc["deam:2:1"]
    assert (row.n_frames, row.valence_raw, row.arousal_raw) == (10, 0.5, 0.1)


def test_chunks_on_demo(demo_manifest, tmp_path):
    root, truth, deam = demo_manifest
    run = run_stage("chunks", tmp_path, roots={"deam": root}, manifests={"deam": deam})
    assert_accounted(run)
    songs = truth["songs"]

    def frames(sid):
        spec = SongSpec(**{**songs[sid], "nan_frames_ms": tuple(songs[sid]["nan_frames_ms"])})
        fv, fa = dynamic_frames(spec, (truth["seed"] + 3) * 100_003 + sid)
        return fv, fa, 15.0 + 0.5 * np.arange(len(fv))

    # expected from the generator's truth: the formula's chunks, minus those with < 8 frames
    want_rows, want_rejects = set(), {}
    for sid in deam["song_id"]:
        fv, fa, t = frames(sid)
        for k in range(expected_chunks(songs[sid]["duration_s"])):
            sel = (t >= 15 + 5 * k) & (t < 20 + 5 * k) & np.isfinite(fv) & np.isfinite(fa)
            n = sel.sum()
            if n >= 8:
                want_rows.add(f"deam:{sid}:{k}")
            else:
                want_rejects[f"deam:{sid}:{k}"] = "under-annotated"
        spans, dropped = chunk_spans(songs[sid]["duration_s"])
        if dropped > 0:  # every candidate chunk is accounted for: a dropped tail is a reject
            want_rejects[f"deam:{sid}:{len(spans)}"] = "short-tail"
    assert "under-annotated" in want_rejects.values()  # the demo has an under-annotated chunk
    assert "short-tail" in want_rejects.values()
    assert run.reasons() == want_rejects
    assert set(run.rows["sample_id"]) == want_rows
    counts = run.rows.groupby("song_id").size().to_dict()
    excerpts = [i for i in deam["song_id"] if songs[i]["kind"] == "excerpt"]
    assert all(counts[i] == 6 for i in excerpts)
    # VA = mean of the generator's frames in [start, end) that have both dimensions
    for r in run.rows.itertuples():
        fv, fa, t = frames(r.song_id)
        sel = (t >= r.start_s) & (t < r.end_s) & np.isfinite(fv) & np.isfinite(fa)
        assert r.valence_raw == pytest.approx(fv[sel].mean(), abs=1e-6)
        assert r.arousal_raw == pytest.approx(fa[sel].mean(), abs=1e-6)
        assert r.n_frames == sel.sum()
        assert abs(r.song_n_samples - songs[r.song_id]["duration_s"] * 44100) <= 2  # resampling rounds
    # chunks are views by default: no file, the song and the samples they take
    assert run.rows["path"].isna().all() and not list(tmp_path.rglob("*.flac"))
    for rec in run.rows.to_dict("records"):
        assert rec["audio_root"] == "deam" and rec["audio_path"] == f"MEMD_audio/{rec['song_id']}.mp3"
        assert rec["offset_samples"] == round(float(rec["start_s"]) * 44100) and rec["n_samples"] == CHUNK_N
        assert rec["n_audio"] == CHUNK_N - round(float(rec["padded_s"]) * 44100)
    short_tails = sum(1 for i in deam["song_id"] if chunk_spans(songs[i]["duration_s"])[1] > 0)
    assert run.counters["short-tail-dropped"] == short_tails
    assert run.counters["padded-chunks"] == int((run.rows["padded_s"] > 0).sum())


def test_chunk_audio_is_the_song_segment(demo_manifest, tmp_path):
    """Chunks equal an independent decode: the channel mean for a 44.1 kHz song, librosa's
    soxr_hq resampling of the whole song for a 48 kHz stereo one."""
    import librosa

    root, _, deam = demo_manifest
    sub = deam[deam["song_id"].isin([2001, 1002, 2])]
    run = run_stage("chunks", tmp_path, params=get_stage("chunks").Params(materialize=True),
                    roots={"deam": root}, manifests={"deam": sub})
    rows = run.rows.set_index("sample_id")
    # every chunk file is exactly 5.0 s of 44.1 kHz mono PCM_24
    for p in run.rows["path"]:
        info = sf.info(tmp_path / p)
        assert (info.frames, info.samplerate, info.channels, info.subtype) == (CHUNK_N, 44100, 1, "PCM_24")
    # a view cut by read_views is the file's audio before its 24-bit quantisation
    views = read_views(run.rows.to_dict("records"), {"deam": root})
    for view, rel in zip(views, run.rows["path"], strict=True):
        flac, _ = sf.read(tmp_path / rel, dtype="float32")
        assert isinstance(view, np.ndarray) and view.shape == flac.shape
        assert np.max(np.abs(view - flac)) <= 2 ** -23
    src, sr = sf.read(root / "MEMD_audio" / "2001.mp3", dtype="float64")
    ref = src.mean(axis=1)
    k = 3
    chunk, _ = sf.read(tmp_path / rows.loc[f"deam:2001:{k}", "path"], dtype="float64")
    seg = ref[int((15 + 5 * k) * sr): int((20 + 5 * k) * sr)]
    assert np.max(np.abs(chunk - seg)) < 2 ** -22
    src, sr = sf.read(root / "MEMD_audio" / "1002.mp3", dtype="float32")
    assert sr == 48000
    ref = librosa.resample(src.mean(axis=1), orig_sr=sr, target_sr=44100, res_type="soxr_hq")
    chunk, _ = sf.read(tmp_path / rows.loc["deam:1002:2", "path"], dtype="float64")
    seg = ref[25 * 44100: 30 * 44100]
    assert np.max(np.abs(chunk - seg)) < 1e-3 and np.std(seg) > 0.01
    # the padded last chunk of a < 45 s excerpt ends in silence
    last, _ = sf.read(tmp_path / rows.loc["deam:2:5", "path"], dtype="float64")
    n_pad = round(float(rows["padded_s"]["deam:2:5"]) * 44100)
    assert n_pad > 0 and np.all(last[-n_pad:] == 0) and np.any(last[:-n_pad] != 0)


def test_chunks_are_byte_identical_across_runs_and_npy_format(demo_manifest, tmp_path):
    root, _, deam = demo_manifest
    sub = deam[deam["song_id"].isin([1003, 1004])]  # 22.05 kHz and 16 kHz mono
    digests = []
    materialize = get_stage("chunks").Params(materialize=True)
    for name in ("a", "b"):
        run = run_stage("chunks", tmp_path / name, params=materialize, roots={"deam": root}, manifests={"deam": sub})
        digests.append([hashlib.sha256((tmp_path / name / p).read_bytes()).hexdigest() for p in run.rows["path"]])
    assert digests[0] == digests[1] and len(digests[0]) == 12
    run = run_stage("chunks", tmp_path / "npy", params=get_stage("chunks").Params(audio_format="npy", materialize=True),
                    roots={"deam": root}, manifests={"deam": sub})
    x = np.load(tmp_path / "npy" / run.rows["path"].iloc[0], allow_pickle=False)
    assert x.dtype == np.float32 and x.shape == (CHUNK_N,)
    flac, _ = sf.read(tmp_path / "a" / run.rows["path"].iloc[0].replace(".npy", ".flac"), dtype="float32")
    assert np.max(np.abs(flac - x)) < 2 ** -22


def test_bad_parameters_are_config_errors(demo_manifest, tmp_path):
    root, _, deam = demo_manifest
    with pytest.raises(ConfigError, match="audio_format"):
        run_stage("chunks", tmp_path, params=get_stage("chunks").Params(audio_format="wav"),
                  roots={"deam": root}, manifests={"deam": deam})


def test_broken_tree_through_chunks(broken_tree, tmp_path):
    root, deam = broken_tree
    chunks = run_stage("chunks", tmp_path / "k", roots={"deam": root}, manifests={"deam": deam})
    assert_accounted(chunks)
    assert chunks.reasons() == {"deam:3": "silent-audio", "deam:4": "too-short", "deam:5": "truncated-audio",
                                "deam:7": "missing-dynamic", "deam:2:1": "short-tail", "deam:6:1": "short-tail"}
    rows = chunks.rows.set_index("sample_id")
    assert sorted(rows.index) == ["deam:2:0", "deam:6:0"]
    assert (rows["valence_raw"] == 0.25).all() and (rows["n_frames"] == 10).all()
    assert chunks.counters["short-tail-dropped"] == 3  # 2, 6 (1 s) and 4 (2 s)


def test_manifest_types_are_declared_and_kept_without_rows(demo_manifest, tmp_path):
    root, _, deam = demo_manifest
    want = declared_types(CHUNKS_KINDS)
    run = run_stage("chunks", tmp_path / "a", roots={"deam": root}, manifests={"deam": deam[deam["song_id"] == 1003]})
    assert arrow_types(run.rows) == want
    none = run_stage("chunks", tmp_path / "b", roots={"deam": root}, manifests={"deam": deam.iloc[:0]})
    assert len(none.rows) == 0
    assert arrow_types(none.rows) == want


def test_chunks_from_zipped_audio_match_the_plain_tree(demo_manifest, tmp_path):
    import zipfile

    root, _, deam = demo_manifest
    zroot = tmp_path / "z"
    zroot.mkdir()
    with zipfile.ZipFile(zroot / "DEAM_audio.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(root / "MEMD_audio" / "1003.mp3", "MEMD_audio/1003.mp3")
    sub = deam[deam["song_id"] == 1003].assign(audio_path="DEAM_audio.zip::MEMD_audio/1003.mp3")
    files = get_stage("chunks").Params(materialize=True)
    a = run_stage("chunks", tmp_path / "a", params=files, roots={"deam": root},
                  manifests={"deam": deam[deam["song_id"] == 1003]})
    b = run_stage("chunks", tmp_path / "b", params=files, roots={"deam": zroot}, manifests={"deam": sub})
    for path_a, path_b in zip(a.rows["path"], b.rows["path"], strict=True):
        assert (tmp_path / "a" / path_a).read_bytes() == (tmp_path / "b" / path_b).read_bytes()
    shutil.rmtree(zroot)
