"""`clips`: exact 46.0 s clips of whole songs with their static VA, the trim policy, and the
accounting of bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from emoprep.pipeline.errors import ConfigError
from emoprep.stages.common.audio_source import read_views
from emoprep.stages.segments.clips import CLIPS_KINDS
from tests.helpers.catalog import stage as get_stage
from tests.helpers.segments import CLIP_N, arrow_types, declared_types
from tests.helpers.stage_run import assert_accounted, run_stage

FILES = get_stage("clips").Params(materialize=True)


def test_clips_on_demo(demo_manifest, tmp_path):
    root, truth, deam = demo_manifest
    run = run_stage("clips", tmp_path, params=FILES, roots={"deam": root}, manifests={"deam": deam})
    assert_accounted(run)
    songs = truth["songs"]
    fits = {f"deam:{i}" for i in deam["song_id"] if songs[i]["duration_s"] <= 46.0}
    assert set(run.rows["sample_id"]) == fits
    assert run.reasons() == {f"deam:{i}": "longer-than-target"
                             for i in deam["song_id"] if songs[i]["duration_s"] > 46.0}
    for r in run.rows.itertuples():
        info = sf.info(tmp_path / r.path)
        assert (info.frames, info.samplerate, info.channels, info.subtype) == (CLIP_N, 44100, 1, "PCM_24")
        s = songs[r.song_id]
        assert (r.valence_raw, r.arousal_raw) == pytest.approx((s["valence"], s["arousal"]))  # fixed static
        assert r.end_s == pytest.approx(s["duration_s"], abs=1e-3)
    # the padding is silence and the audio before it is the song (44.1 kHz stereo: no resampling)
    two = run.rows.set_index("song_id").loc[2]
    clip, _ = sf.read(tmp_path / two.path, dtype="float64")
    src, _ = sf.read(root / "MEMD_audio" / "2.mp3", dtype="float64")
    n = len(src)
    assert np.all(clip[n:] == 0)
    assert np.max(np.abs(clip[:n] - np.clip(src.mean(axis=1), -1, 1))) < 2 ** -22


def test_clips_are_views_of_their_song_by_default(demo_manifest, tmp_path):
    """No audio is written; each row names its song and the samples it takes, and
    `read_views` gives the materialised file's audio before its 24-bit quantisation."""
    root, _truth, deam = demo_manifest
    sub = deam[deam["song_id"].isin([2, 1004, 2001])]
    views = run_stage("clips", tmp_path / "v", roots={"deam": root}, manifests={"deam": sub})
    files = run_stage("clips", tmp_path / "f", params=FILES, roots={"deam": root}, manifests={"deam": sub})
    assert not (tmp_path / "v" / "audio").exists()
    assert views.rows["path"].isna().all()
    assert views.reasons() == files.reasons() == {"deam:2001": "longer-than-target"}
    rows = views.rows.to_dict("records")
    assert [(r["audio_root"], r["offset_samples"], r["n_samples"]) for r in rows] == [("deam", 0, CLIP_N)] * 2
    assert all(isinstance(r["content_hash"], str) and len(r["content_hash"]) == 64 for r in rows)
    for row, audio, path in zip(rows, read_views(rows, {"deam": root}), files.rows["path"], strict=True):
        clip, _ = sf.read(tmp_path / "f" / path, dtype="float32")
        assert isinstance(audio, np.ndarray)
        assert len(audio) == len(clip) == CLIP_N and np.all(audio[row["n_audio"]:] == 0)
        assert np.max(np.abs(np.clip(audio, -1, 1) - clip)) <= 2 ** -23


def test_clips_trim_policy_keeps_long_songs_cut(demo_manifest, tmp_path):
    root, _truth, deam = demo_manifest
    sub = deam[deam["song_id"].isin([1004, 2001])]
    run = run_stage("clips", tmp_path, params=get_stage("clips").Params(policy="trim", materialize=True),
                    roots={"deam": root}, manifests={"deam": sub})
    rows = run.rows.set_index("song_id")
    assert rows.loc[2001, "trimmed"] and not rows.loc[1004, "trimmed"]
    assert sf.info(tmp_path / rows.loc[2001, "path"]).frames == CLIP_N
    assert run.counters == {"trimmed": 1}


def test_bad_parameters_are_config_errors(demo_manifest, tmp_path):
    root, _, deam = demo_manifest
    with pytest.raises(ConfigError, match="policy"):
        run_stage("clips", tmp_path, params=get_stage("clips").Params(policy="cut"),
                  roots={"deam": root}, manifests={"deam": deam})
    with pytest.raises(ConfigError, match="DEAM root"):
        run_stage("clips", tmp_path, manifests={"deam": deam})


def test_broken_tree_through_clips(broken_tree, tmp_path):
    root, deam = broken_tree
    clips = run_stage("clips", tmp_path / "c", roots={"deam": root}, manifests={"deam": deam})
    assert_accounted(clips)
    assert clips.reasons() == {"deam:3": "silent-audio", "deam:5": "truncated-audio", "deam:6": "missing-static"}
    assert set(clips.rows["song_id"]) == {2, 4, 7}


def test_manifest_types_are_declared_and_kept_without_rows(demo_manifest, tmp_path):
    root, _, deam = demo_manifest
    want = declared_types(CLIPS_KINDS)
    run = run_stage("clips", tmp_path / "a", roots={"deam": root}, manifests={"deam": deam[deam["song_id"] == 1003]})
    assert arrow_types(run.rows) == want
    none = run_stage("clips", tmp_path / "b", roots={"deam": root}, manifests={"deam": deam.iloc[:0]})
    assert len(none.rows) == 0
    assert arrow_types(none.rows) == want


def test_encodec_reads_a_clip_view_as_the_materialised_clip(demo_manifest, tmp_path):
    """The tokenizer's input from a view equals its input from the NPY clip file (exact
    float32), and the view's digest is the song file's SHA-256."""
    import hashlib

    from emoprep.stages.tokens import encodec

    root, _truth, deam = demo_manifest
    sub = deam[deam["song_id"].isin([2, 1004])]
    views = run_stage("clips", tmp_path / "v", roots={"deam": root}, manifests={"deam": sub})
    npy = run_stage("clips", tmp_path / "n", params=get_stage("clips").Params(audio_format="npy", materialize=True),
                    roots={"deam": root}, manifests={"deam": sub})
    for view, path in zip(views.rows.to_dict("records"), npy.rows["path"], strict=True):
        got, err, sha = encodec.load_view_clip(str(root), view, "encodec-24khz")
        want, err2, _ = encodec.load_clip(tmp_path / "n" / path, "encodec-24khz", 44100)
        assert err is None and err2 is None and got is not None and want is not None
        assert np.array_equal(got, want)
        assert sha == hashlib.sha256((root / view["audio_path"]).read_bytes()).hexdigest() == view["content_hash"]
    missing = {**views.rows.to_dict("records")[0], "audio_path": "MEMD_audio/404.mp3"}
    arr, err, sha = encodec.load_view_clip(str(root), missing, "encodec-24khz")
    assert arr is None and err is not None and err[0] == "unreadable-audio" and sha == "unreadable"
