"""`clips` and `chunks`: exact lengths, chunk counts, chunk VA, decoding of every rate and
channel layout, and the accounting of bad inputs."""
from __future__ import annotations

import hashlib
import math
import shutil

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf

from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.registry import get_stage
from emoprep.stages.segments import chunks as A
from emoprep.stages.common.audio_io import AudioError, decode_mono
from emoprep.stages.demo.deam import SongSpec, dynamic_frames
from tests.stages.deam.test_stage import (DYNAMIC_DIR, SONG_LEVEL, STATIC_1, assert_accounted, demo,  # noqa: F401
                              ingest, mp3, run_stage, write_csv)

CLIP_N = 2_028_600
CHUNK_N = 220_500


def expected_chunks(duration_s: float) -> int:
    """The issue's formula: floor((d − 15) / 5) chunks, plus one for a tail of ≥ 4.5 s."""
    if duration_s < 15:
        return 0
    full = math.floor((duration_s - 15) / 5 + 1e-9)
    return full + (1 if duration_s - 15 - 5 * full >= 4.5 - 1e-9 else 0)


# ---- chunk arithmetic -------------------------------------------------------------------------
@pytest.mark.parametrize("dur", [44.64, 44.643, 45.0, 45.605, 45.61])
def test_every_excerpt_gives_six_chunks(dur):
    spans, dropped = A.chunk_spans(dur)
    assert len(spans) == 6
    assert [(s.start_s, s.end_s) for s in spans] == [(15.0 + 5 * k, 20.0 + 5 * k) for k in range(6)]
    last = spans[-1]
    if dur < 45:
        assert last.n_pad == round((45 - dur) * 44100) and dropped == 0
    else:
        assert last.n_pad == 0 and dropped == pytest.approx(dur - 45, abs=1e-4)


def test_full_song_chunk_counts_follow_the_formula():
    for dur in np.linspace(19.0, 628.616, 400):
        spans, _ = A.chunk_spans(float(dur))
        assert len(spans) == expected_chunks(float(dur)), dur
        assert all(s.n_audio + s.n_pad == CHUNK_N for s in spans)
    assert A.chunk_spans(19.49)[0] == [] and len(A.chunk_spans(19.5)[0]) == 1


def test_chunk_va_is_the_mean_of_annotated_frames_in_the_half_open_span():
    times = A.frame_times_ms(15.0, 2.0, 20)            # 15.0 … 24.5 s
    frames = np.arange(20, dtype=float)
    frames[3] = np.nan
    v, a, n = A.chunk_va(frames, -frames, times, 15.0, 20.0)   # frames 0..9, 3 missing
    assert n == 9 and v == pytest.approx(np.mean([0, 1, 2, 4, 5, 6, 7, 8, 9])) and a == -v
    v, a, n = A.chunk_va(frames, frames, times, 20.0, 25.0)    # 20.0 s is in, 25.0 s would not be
    assert n == 10 and v == a == pytest.approx(14.5)
    v, a, n = A.chunk_va(frames, frames, times, 30.0, 35.0)
    assert n == 0 and math.isnan(v) and math.isnan(a)


def test_chunk_va_uses_only_frames_with_both_dimensions():
    """Valence on 9 frames, arousal on 8 others, 7 in common: both means cover those 7."""
    times = A.frame_times_ms(15.0, 2.0, 10)
    rng = np.random.default_rng(0)
    valence, arousal = rng.uniform(-1, 1, 10), rng.uniform(-1, 1, 10)
    valence[[0]] = np.nan                              # valence: 9 frames
    arousal[[1, 2]] = np.nan                           # arousal: 8 frames
    common = np.isfinite(valence) & np.isfinite(arousal)
    assert (np.isfinite(valence).sum(), np.isfinite(arousal).sum(), common.sum()) == (9, 8, 7)
    v, a, n = A.chunk_va(valence, arousal, times, 15.0, 20.0)
    assert n == 7
    assert v == pytest.approx(valence[common].mean()) and a == pytest.approx(arousal[common].mean())
    assert v != pytest.approx(np.nanmean(valence))     # not the mean over valence's own 9 frames


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


# ---- the demo tree ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_manifest(demo, tmp_path_factory):
    root, truth = demo
    out = tmp_path_factory.mktemp("deam-out")
    return root, truth, ingest(root, out).rows


def test_clips_on_demo(demo_manifest, tmp_path):
    root, truth, deam = demo_manifest
    run = run_stage("clips", tmp_path, roots={"deam": root}, manifests={"deam": deam})
    assert_accounted(run)
    songs = truth["songs"]
    fits = {f"deam:{i}" for i in deam["song_id"] if songs[i]["duration_s"] <= 46.0}
    assert set(run.rows["sample_id"]) == fits
    assert run.reasons() == {f"deam:{i}": "longer-than-target" for i in deam["song_id"] if songs[i]["duration_s"] > 46.0}
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


def test_clips_trim_policy_keeps_long_songs_cut(demo_manifest, tmp_path):
    root, truth, deam = demo_manifest
    sub = deam[deam["song_id"].isin([1004, 2001])]
    run = run_stage("clips", tmp_path, params=get_stage("clips").Params(policy="trim"),
                    roots={"deam": root}, manifests={"deam": sub})
    rows = run.rows.set_index("song_id")
    assert rows.loc[2001, "trimmed"] and not rows.loc[1004, "trimmed"]
    assert sf.info(tmp_path / rows.loc[2001, "path"]).frames == CLIP_N
    assert run.counters == {"trimmed": 1}


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
    assert want_rejects  # the demo has an under-annotated chunk
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
    # every chunk file is exactly 5.0 s of 44.1 kHz mono PCM_24
    for p in run.rows["path"]:
        info = sf.info(tmp_path / p)
        assert (info.frames, info.samplerate, info.channels, info.subtype) == (CHUNK_N, 44100, 1, "PCM_24")
    short_tails = sum(1 for i in deam["song_id"] if A.chunk_spans(songs[i]["duration_s"])[1] > 0)
    assert run.counters["short-tail-dropped"] == short_tails
    assert run.counters["padded-chunks"] == int((run.rows["padded_s"] > 0).sum())


def test_chunk_audio_is_the_song_segment(demo_manifest, tmp_path):
    """Chunks equal an independent decode: the channel mean for a 44.1 kHz song, librosa's
    soxr_hq resampling of the whole song for a 48 kHz stereo one."""
    import librosa

    root, _, deam = demo_manifest
    sub = deam[deam["song_id"].isin([2001, 1002, 2])]
    run = run_stage("chunks", tmp_path, roots={"deam": root}, manifests={"deam": sub})
    rows = run.rows.set_index("sample_id")
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
    n_pad = int(round(rows.loc["deam:2:5", "padded_s"] * 44100))
    assert n_pad > 0 and np.all(last[-n_pad:] == 0) and np.any(last[:-n_pad] != 0)


def test_chunks_are_byte_identical_across_runs_and_npy_format(demo_manifest, tmp_path):
    root, _, deam = demo_manifest
    sub = deam[deam["song_id"].isin([1003, 1004])]  # 22.05 kHz and 16 kHz mono
    digests = []
    for name in ("a", "b"):
        run = run_stage("chunks", tmp_path / name, roots={"deam": root}, manifests={"deam": sub})
        digests.append([hashlib.sha256((tmp_path / name / p).read_bytes()).hexdigest() for p in run.rows["path"]])
    assert digests[0] == digests[1] and len(digests[0]) == 12
    run = run_stage("chunks", tmp_path / "npy", params=get_stage("chunks").Params(audio_format="npy"),
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
    with pytest.raises(ConfigError, match="policy"):
        run_stage("clips", tmp_path, params=get_stage("clips").Params(policy="cut"),
                  roots={"deam": root}, manifests={"deam": deam})
    with pytest.raises(ConfigError, match="DEAM root"):
        run_stage("clips", tmp_path, manifests={"deam": deam})


# ---- decoding every layout ------------------------------------------------------------------
@pytest.mark.parametrize("sr,channels", [(44100, 2), (48000, 2), (22050, 1), (16000, 1), (48000, 1)])
def test_decode_mono_rates_and_channels(tmp_path, sr, channels):
    mp3(tmp_path / "x.mp3", seconds=3.0, sr=sr, channels=channels)
    dec = decode_mono(tmp_path, "x.mp3", 44100)
    assert dec.samples.dtype == np.float32 and dec.samples.ndim == 1
    assert len(dec.samples) == 3 * 44100 and dec.source_rate == sr and dec.channels == channels
    # a 330 Hz tone stays a 330 Hz tone
    spec = np.abs(np.fft.rfft(dec.samples[44100:88200]))
    assert abs(np.argmax(spec) - 330) <= 1


def test_decode_failures_have_reason_codes(tmp_path):
    mp3(tmp_path / "ok.mp3", seconds=20.0, sr=44100)
    data = (tmp_path / "ok.mp3").read_bytes()
    (tmp_path / "trunc.mp3").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.mp3").write_bytes(b"")
    (tmp_path / "text.mp3").write_text("hello")
    cases = {"trunc.mp3": "truncated-audio", "empty.mp3": "empty-audio", "text.mp3": "unreadable-audio",
             "missing.mp3": "unreadable-audio", "../escape.mp3": "path-outside-root"}
    for ref, reason in cases.items():
        with pytest.raises(AudioError) as err:
            decode_mono(tmp_path, ref, 44100)
        assert err.value.reason == reason and ref in err.value.message


def test_broken_tree_through_clips_and_chunks(tmp_path):
    root = tmp_path / "deam"
    audio = root / "MEMD_audio"
    mp3(audio / "2.mp3", seconds=21.0)                      # 1 chunk, 1 s tail dropped
    mp3(audio / "3.mp3", seconds=21.0, silent=True)         # all-zero: broken, rejected
    mp3(audio / "4.mp3", seconds=17.0)                      # too short for a chunk
    mp3(audio / "5.mp3", seconds=30.0, sr=44100)
    data = (audio / "5.mp3").read_bytes()
    (audio / "5.mp3").write_bytes(data[: len(data) // 3])   # truncated after the probe's header
    mp3(audio / "6.mp3", seconds=21.0)                      # no static annotation
    mp3(audio / "7.mp3", seconds=21.0)                      # no dynamic annotation
    write_csv(root, f"{SONG_LEVEL}/{STATIC_1}", "song_id, valence_mean, valence_std, arousal_mean, arousal_std\n"
              + "".join(f"{i},6,1,4,1\n" for i in (2, 3, 4, 5, 7)))
    frames = ",".join(f"sample_{15000 + 500 * i}ms" for i in range(12))
    body = "".join(f"{i}," + ",".join(["0.25"] * 12) + "\n" for i in (2, 3, 4, 5, 6))
    write_csv(root, f"{DYNAMIC_DIR}/valence.csv", f"song_id,{frames}\n{body}")
    write_csv(root, f"{DYNAMIC_DIR}/arousal.csv", f"song_id,{frames}\n{body}")
    deam = ingest(root, tmp_path / "o").rows
    assert set(deam["song_id"]) == {2, 3, 4, 5, 6, 7}

    clips = run_stage("clips", tmp_path / "c", roots={"deam": root}, manifests={"deam": deam})
    assert_accounted(clips)
    assert clips.reasons() == {"deam:3": "silent-audio", "deam:5": "truncated-audio", "deam:6": "missing-static"}
    assert set(clips.rows["song_id"]) == {2, 4, 7}

    chunks = run_stage("chunks", tmp_path / "k", roots={"deam": root}, manifests={"deam": deam})
    assert_accounted(chunks)
    assert chunks.reasons() == {"deam:3": "silent-audio", "deam:4": "too-short", "deam:5": "truncated-audio",
                                "deam:7": "missing-dynamic"}
    rows = chunks.rows.set_index("sample_id")
    assert sorted(rows.index) == ["deam:2:0", "deam:6:0"]
    assert (rows["valence_raw"] == 0.25).all() and (rows["n_frames"] == 10).all()
    assert chunks.counters["short-tail-dropped"] == 3  # 2, 6 (1 s) and 4 (2 s)


@pytest.mark.parametrize("stage,kinds", [("clips", A.CLIPS_KINDS), ("chunks", A.CHUNKS_KINDS)])
def test_manifest_types_are_declared_and_kept_without_rows(demo_manifest, tmp_path, stage, kinds):
    root, _, deam = demo_manifest
    types = {"str": pa.large_string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    want = {c: types[k] for c, k in kinds.items()}
    run = run_stage(stage, tmp_path / "a", roots={"deam": root}, manifests={"deam": deam[deam["song_id"] == 1003]})
    assert {f.name: f.type for f in pa.Table.from_pandas(run.rows, preserve_index=False).schema} == want
    none = run_stage(stage, tmp_path / "b", roots={"deam": root}, manifests={"deam": deam.iloc[:0]})
    assert len(none.rows) == 0
    assert {f.name: f.type for f in pa.Table.from_pandas(none.rows, preserve_index=False).schema} == want


def test_chunks_from_zipped_audio_match_the_plain_tree(demo_manifest, tmp_path):
    import zipfile

    root, _, deam = demo_manifest
    zroot = tmp_path / "z"
    zroot.mkdir()
    with zipfile.ZipFile(zroot / "DEAM_audio.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(root / "MEMD_audio" / "1003.mp3", "MEMD_audio/1003.mp3")
    sub = deam[deam["song_id"] == 1003].assign(audio_path="DEAM_audio.zip::MEMD_audio/1003.mp3")
    a = run_stage("chunks", tmp_path / "a", roots={"deam": root}, manifests={"deam": deam[deam["song_id"] == 1003]})
    b = run_stage("chunks", tmp_path / "b", roots={"deam": zroot}, manifests={"deam": sub})
    for pa, pb in zip(a.rows["path"], b.rows["path"]):
        assert (tmp_path / "a" / pa).read_bytes() == (tmp_path / "b" / pb).read_bytes()
    shutil.rmtree(zroot)


def test_decode_reproduces_the_encoded_signal(demo):
    """Decoding gives back what was encoded, up to MP3 coding noise. (Reading an MP3 through
    libsndfile in blocks does not: that path has an RMS error ~15× larger.)"""
    from emoprep.stages.demo.deam import synth_music

    root, truth = demo
    for sid in (3, 2001):  # mono and stereo, both 44.1 kHz so no resampler is involved
        s = truth["songs"][sid]
        orig = synth_music(s["valence"], s["arousal"], s["duration_s"], s["sample_rate"], s["channels"],
                           truth["seed"] * 100_003 + sid).mean(axis=1)
        dec = decode_mono(root, f"MEMD_audio/{sid}.mp3", 44100).samples
        assert len(dec) == len(orig)
        assert np.sqrt(np.mean((dec - orig) ** 2)) < 0.02


def test_real_deam_durations_give_1744_clips_and_six_chunks_per_excerpt():
    from emoprep.stages.demo.deam import scale_specs
    specs = scale_specs(seed=0)
    fits = [s for s in specs if round(s.duration_s * 44100) <= round(46.0 * 44100)]
    assert len(fits) == 1744 and all(s.song_id <= 2000 for s in fits)
    for s in specs:
        spans, _ = A.chunk_spans(s.duration_s)
        assert len(spans) == (6 if s.song_id <= 2000 else expected_chunks(s.duration_s)), s
