"""Tests for stages/spectrogram/: riffusion's image transform (against a torch replica of
riffusion's converter and a plain librosa formulation), the seed-001 mel clips, and the stage's
plan/process on chunk FLACs written here."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

import tests.helpers.riffusion_reference as rr
from emoprep.manifests.reasons import REJECT_CODES
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import DataError
from emoprep.stages.common import naming
from emoprep.stages.demo.signals import MUSIC_KINDS, synthetic_music
from emoprep.stages.spectrogram import params, riffusion, seed001
from emoprep.stages.spectrogram import stage as sp

SR = 44100
CHUNK = 220_500


def diff_stats(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """Largest gray-level difference and the fraction of pixels that differ."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(d.max()), float((d > 0).mean())


@pytest.fixture(scope="module")
def music() -> dict[str, np.ndarray]:
    return {kind: synthetic_music(kind, seed=i) for i, kind in enumerate(MUSIC_KINDS)}


@pytest.fixture(scope="module")
def fast_images(music):
    return {kind: riffusion.riffusion_image(audio) for kind, audio in music.items()}


# ---------------------------------------------------------------- pixels vs riffusion
@pytest.mark.parametrize("kind", MUSIC_KINDS)
def test_matches_riffusion_converter(kind, music, fast_images):
    img, max_value = fast_images[kind]
    ref, ref_max = rr.image_from_float_audio(music[kind])
    assert img.shape == ref.shape == (512, 501)
    assert img.dtype == np.uint8
    worst, frac = diff_stats(img, ref)
    assert worst <= 1, f"{kind}: {worst} gray levels off riffusion"
    assert frac < 0.001, f"{kind}: {frac:.4%} of pixels differ from riffusion"
    assert max_value == pytest.approx(ref_max, rel=1e-4)


@pytest.mark.parametrize("kind", MUSIC_KINDS)
def test_matches_librosa_reference(kind, music, fast_images):
    img, max_value = fast_images[kind]
    ref, ref_max = riffusion.riffusion_image_reference(music[kind])
    worst, frac = diff_stats(img, ref)
    assert worst <= 1 and frac < 0.001, (kind, worst, frac)
    assert max_value == pytest.approx(ref_max, rel=1e-4)


def test_images_are_not_trivial(fast_images):
    """The comparisons above mean something only if the images use the gray range."""
    for kind, (img, _) in fast_images.items():
        assert img.min() == 0 and img.max() >= 200, kind
        assert len(np.unique(img)) > 100, kind


@pytest.mark.parametrize("kind", ["chord", "sweep", "quiet"])
def test_noiseless_tones_differ_only_by_riffusions_own_rounding(kind):
    """Without a noise floor, empty spectrum regions are float32 round-off (~1e-7 of the peak),
    which the 0.25 power lifts to a few gray levels. riffusion's float32 output then differs
    from its own formula evaluated exactly; ours must differ from it no more than that."""
    audio = synthetic_music(kind, noise_dbfs=None)
    img, _ = riffusion.riffusion_image(audio)
    riff, _ = rr.image_from_float_audio(audio)
    exact, _ = rr.image_from_float_audio(audio, exact=True)
    ours_worst, ours_frac = diff_stats(img, riff)
    own_worst, own_frac = diff_stats(exact, riff)
    assert ours_worst <= own_worst
    assert ours_frac <= own_frac


# ---------------------------------------------------------------- transform properties
def test_silence_is_white_with_zero_max():
    img, max_value = riffusion.riffusion_image(np.zeros(CHUNK, np.float32))
    assert img.shape == (512, 501) and (img == 255).all()
    assert max_value == 0.0
    assert (riffusion.to_model_size(img) == 255).all()
    mel_ref, ref_max = riffusion.riffusion_image_reference(np.zeros(CHUNK, np.float32))
    assert (mel_ref == 255).all() and ref_max == 0.0


def test_low_frequencies_at_the_bottom_and_loud_is_dark():
    """A 200 Hz tone darkens the row of the mel band centred nearest 200 Hz, counted from the
    bottom (band centres from the HTK formula, computed here independently)."""
    t = np.arange(CHUNK) / SR
    img, _ = riffusion.riffusion_image((0.5 * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32))
    mel_max = 2595.0 * np.log10(1.0 + 10000.0 / 700.0)
    centres = 700.0 * (10 ** (np.linspace(0.0, mel_max, 514)[1:-1] / 2595.0) - 1.0)
    band = int(np.argmin(np.abs(centres - 200.0)))
    darkest_row = int(np.argmin(img[:, 250]))
    assert darkest_row == 511 - band
    assert img[darkest_row, 250] == 0
    assert img[:100, 250].min() > 200  # bands far above 200 Hz stay light


def test_gain_scales_max_value_not_pixels(music):
    audio = music["mix"]
    img, m = riffusion.riffusion_image(audio)
    img2, m2 = riffusion.riffusion_image(audio * np.float32(0.25))
    assert np.array_equal(img, img2)   # a power-of-two gain is exact in float
    assert m2 == pytest.approx(m / 4, rel=1e-6)


@pytest.mark.filterwarnings("ignore:n_fft=17640 is too large")
@pytest.mark.parametrize("n_samples", [CHUNK, 44_100, 10_000, 8_821])
def test_frame_count_matches_a_centred_stft(n_samples):
    import librosa

    audio = synthetic_music("mix")[:n_samples]
    img, _ = riffusion.riffusion_image(audio)
    expected = librosa.stft(audio, n_fft=17640, hop_length=441, win_length=4410).shape[1]
    assert img.shape == (512, expected)


def test_filterbank_is_riffusions():
    import librosa
    import torch

    fb = riffusion.mel_filterbank(SR, 17640, 512, 0.0, 10000.0)
    ref = librosa.filters.mel(sr=SR, n_fft=17640, n_mels=512, fmin=0.0, fmax=10000.0,
                              htk=True, norm=None)
    assert fb.shape == (512, 8821)
    np.testing.assert_allclose(fb, ref, atol=1e-7)
    torch_fb = rr.melscale_fbanks(8821, 0.0, 10000.0, 512, SR).numpy().T
    np.testing.assert_allclose(fb, torch_fb, atol=1e-4)        # torchaudio's float32 rounding
    exact_fb = rr.melscale_fbanks(8821, 0.0, 10000.0, 512, SR, dtype=torch.float64).numpy().T
    np.testing.assert_allclose(fb, exact_fb, atol=1e-7)
    assert not fb[:, 4000:].any()                  # nothing at or above 10 kHz (bin 4000)
    assert ((fb > 0).sum(axis=0) <= 2).all()       # a bin lies in at most two triangles


def test_bad_audio_raises_value_error():
    p = params.DEFAULT_PARAMS
    with pytest.raises(ValueError, match="no samples"):
        riffusion.riffusion_image(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="reflect padding"):
        riffusion.riffusion_image(np.zeros(p.n_fft // 2, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        riffusion.riffusion_image(np.r_[np.zeros(CHUNK - 1), np.nan].astype(np.float32))
    with pytest.raises(ValueError, match="mono"):
        riffusion.riffusion_image(np.zeros((2, CHUNK), np.float32))


def test_params_reject_inconsistent_values():
    with pytest.raises(ValueError, match="win_length"):
        params.SpectrogramParams(win_length=20000)
    with pytest.raises(ValueError, match="f_max"):
        params.SpectrogramParams(f_max=30000.0)
    with pytest.raises(ValueError, match="hop_length"):
        params.SpectrogramParams(hop_length=0)


@pytest.mark.parametrize(("ours", "theirs", "shape"), [
    ({"n_mels": 256, "hop_length": 882}, {"num_frequencies": 256, "step_size_ms": 20}, (256, 251)),
    # 22.05 kHz: an odd window (2,205) inside an even n_fft (8,820), off-centre by half a sample
    ({"sample_rate": 22050, "n_fft": 8820, "win_length": 2205, "hop_length": 220},
     {"sample_rate": 22050}, (512, 502)),
])
def test_other_transform_parameters_match_riffusion(ours, theirs, shape, music):
    """Other parameter sets give riffusion's pixels too (the plan cache is per parameter set)."""
    audio = music["mix"] if ours.get("sample_rate", SR) == SR else music["mix"][::2].copy()
    img, _ = riffusion.riffusion_image(audio, params.SpectrogramParams(**ours))
    ref, _ = rr.image_from_float_audio(audio, rr.RiffusionParams(**theirs))
    assert img.shape == ref.shape == shape
    worst, frac = diff_stats(img, ref)
    assert worst <= 1 and frac < 0.001, (worst, frac)
    assert riffusion.riffusion_image(music["mix"])[0].shape == (512, 501)


def test_to_model_size_is_pillow_lanczos():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, size=(512, 501), dtype=np.uint8)
    small = riffusion.to_model_size(img)
    assert small.shape == (224, 224) and small.dtype == np.uint8
    expected = np.asarray(Image.fromarray(img).resize((224, 224), Image.Resampling.LANCZOS))
    assert np.array_equal(small, expected)
    ramp = np.tile(np.linspace(0, 255, 512).astype(np.uint8)[:, None], (1, 501))
    col = riffusion.to_model_size(ramp)[:, 100].astype(int)
    assert (np.diff(col) >= 0).all() and col[0] < 5 and col[-1] > 250


def test_safe_name_is_injective_and_safe():
    ids = ["deam:2:0", "deam_2_0", "a/b", "..", ".", "x%3Ay", "x:y", "é"]
    names = [naming.safe_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    for name in names:
        assert "/" not in name and ":" not in name and name not in (".", "..")
    assert naming.safe_name("deam:2:0") == "deam%3A2%3A0"


# ---------------------------------------------------------------- seed-001 mel clips
def test_seed001_shape_and_standardisation(music):
    mel = seed001.seed001_mel(music["mix"], SR)
    assert mel.shape == (1, 128, 130) and mel.dtype == np.float32
    assert abs(float(mel.mean())) < 1e-4
    assert float(mel.std()) == pytest.approx(1.0, abs=1e-3)


def test_seed001_silence_is_zeros():
    mel = seed001.seed001_mel(np.zeros(CHUNK, np.float32), SR)
    assert mel.shape == (1, 128, 130) and not mel.any()


def test_seed001_trims_leading_silence_and_normalises_loudness(music):
    """A clip with 1 s of digital silence in front, 20 dB quieter, gives about the same array
    as the clip itself: the trim removes the silence, RMS normalisation and z-score the gain.
    With the trim disabled (top_db huge) the silence stays and the arrays disagree."""
    import soxr

    sr = 22050
    clip = soxr.resample(music["chord"], SR, sr, quality="HQ")[: 4 * sr]
    delayed = np.r_[np.zeros(sr, np.float32), clip * np.float32(0.1)]
    a = seed001.seed001_mel(clip, sr)
    b = seed001.seed001_mel(delayed, sr)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
    no_trim = params.SpectrogramParams(seed001_trim_top_db=1000.0)
    c = seed001.seed001_mel(delayed, sr, no_trim)
    assert float(c[0, :, :40].std()) < 1e-3         # untrimmed: the first second is flat
    assert float(b[0, :, :40].std()) > 0.5


def test_seed001_resamples_to_22050(music):
    import soxr

    at_44k = seed001.seed001_mel(music["chord"], SR)
    at_22k = seed001.seed001_mel(soxr.resample(music["chord"], SR, 22050, quality="HQ"), 22050)
    np.testing.assert_allclose(at_44k, at_22k, atol=1e-3)


def test_seed001_pads_short_audio():
    t = np.arange(int(0.5 * 22050)) / 22050
    mel = seed001.seed001_mel((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    assert mel.shape == (1, 128, 130)
    # the padded tail is the quietest part of the clip
    assert mel[0, :, -10:].mean() < mel[0, :, :10].mean()


def test_zscore_constant_is_zeros():
    assert not seed001.zscore(np.full((4, 5), 3.0)).any()


# ---------------------------------------------------------------- the stage
def write_chunk(path: Path, audio: np.ndarray, sr: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr, subtype="PCM_24", format=path.suffix[1:].upper())


def chunk_row(sample_id: str, source_id: str, k: int, path: str, sr: int = SR) -> dict[str, object]:
    return {"sample_id": sample_id, "source_id": source_id, "modality": 1, "chunk_index": k,
            "start_s": 15.0 + 5 * k, "end_s": 20.0 + 5 * k, "path": path, "sample_rate": sr}


@pytest.fixture
def chunk_tree(tmp_path, music):
    """Three songs of chunks under tmp/chunks/fp/ (FLAC, and NPY as chunks.audio_format="npy"
    writes), a silent chunk, and bad ones: corrupt, missing, 22 kHz, empty, too short, NaN."""
    root = tmp_path
    rows = []
    for k, kind in enumerate(["mix", "drums", "padded-tail"]):
        rel = f"chunks/fp/audio/2/{k}.flac"
        write_chunk(root / rel, music[kind])
        rows.append(chunk_row(f"deam:2:{k}", "deam:2", k, rel))
    good = [("deam:10:0", "chunks/fp/audio/10/0.flac", music["chord"]),
            ("deam:10:1", "chunks/fp/audio/10/1.flac", np.zeros(CHUNK, np.float32))]
    for k, (sid, rel, audio) in enumerate(good):
        write_chunk(root / rel, audio)
        rows.append(chunk_row(sid, "deam:10", k, rel))
    (root / "chunks/fp/audio/10/2.flac").write_bytes(b"fLaC\x00\x00 truncated")
    rows.append(chunk_row("deam:10:2", "deam:10", 2, "chunks/fp/audio/10/2.flac"))
    rows.append(chunk_row("deam:10:3", "deam:10", 3, "chunks/fp/audio/10/3.flac"))  # missing
    write_chunk(root / "chunks/fp/audio/10/4.flac", music["sweep"][::2].copy(), sr=22050)
    rows.append(chunk_row("deam:10:4", "deam:10", 4, "chunks/fp/audio/10/4.flac"))
    # libsndfile cannot write an empty FLAC; an empty WAV is the readable zero-sample case
    write_chunk(root / "chunks/fp/audio/10/5.wav", np.zeros(0, np.float32))
    rows.append(chunk_row("deam:10:5", "deam:10", 5, "chunks/fp/audio/10/5.wav"))
    write_chunk(root / "chunks/fp/audio/10/6.flac", music["mix"][:4000])
    rows.append(chunk_row("deam:10:6", "deam:10", 6, "chunks/fp/audio/10/6.flac"))
    np.save(root / "chunks/fp/audio/10/7.npy", np.r_[music["mix"][:-1], np.nan].astype(np.float32))
    rows.append(chunk_row("deam:10:7", "deam:10", 7, "chunks/fp/audio/10/7.npy"))
    (root / "chunks/fp/audio/11").mkdir(parents=True)
    np.save(root / "chunks/fp/audio/11/0.npy", music["quiet"])
    rows.append(chunk_row("deam:11:0", "deam:11", 0, "chunks/fp/audio/11/0.npy"))
    return root, pd.DataFrame(rows)


def make_ctx(root: Path, chunks: pd.DataFrame, **values: Any) -> StageContext[params.SpectrogramParams]:
    return StageContext(stage="spectrogram", params=params.SpectrogramParams(**values),
                        out_root=root, out_dir=root / "spectrogram" / "fp",
                        input_dirs={"chunks": root / "chunks" / "fp"},
                        manifests={"chunks": chunks})


def run_items(ctx: StageContext[params.SpectrogramParams]):
    stage = sp.Spectrogram()
    items = list(stage.plan(ctx))
    item_ctx = ctx.item_context()
    outcomes = {item.key: stage.process(item, item_ctx) for item in items}
    return items, outcomes


def test_plan_groups_chunks_by_song(chunk_tree):
    root, chunks = chunk_tree
    for order in (chunks, chunks.iloc[::-1], chunks.sample(frac=1.0, random_state=3)):
        # contiguous songs stream; scattered ones are grouped whole: same items either way
        items = list(sp.Spectrogram().plan(make_ctx(root, order)))
        assert sorted(i.key for i in items) == ["deam:10", "deam:11", "deam:2"]
        by_key = {i.key: i for i in items}
        assert [c["sample_id"] for c in by_key["deam:2"].payload["chunks"]] == ["deam:2:0", "deam:2:1", "deam:2:2"]
    for item in items:  # payloads are plain values (they cross process boundaries)
        for chunk in item.payload["chunks"]:
            assert all(v is None or type(v) in (str, int, float) for v in chunk.values())


def test_plan_names_missing_columns(chunk_tree):
    root, chunks = chunk_tree
    with pytest.raises(DataError, match="source_id"):
        sp.Spectrogram().plan(make_ctx(root, chunks.drop(columns=["source_id"])))


def test_process_writes_pngs_rows_and_rejects(chunk_tree, music):
    root, chunks = chunk_tree
    ctx = make_ctx(root, chunks)
    _, outcomes = run_items(ctx)
    rows = {r["sample_id"]: r for o in outcomes.values() for r in o.rows}
    rejects = {r.sample_id: r for o in outcomes.values() for r in o.rejects}
    assert set(rows) | set(rejects) == set(chunks["sample_id"])      # inputs = outputs + rejects
    assert not set(rows) & set(rejects)
    assert {k: r.reason for k, r in rejects.items()} == {
        "deam:10:2": "unreadable-audio", "deam:10:3": "unreadable-audio",
        "deam:10:4": "wrong-sample-rate", "deam:10:5": "empty-audio", "deam:10:6": "short-audio",
        "deam:10:7": "non-finite-audio"}
    assert {r.reason for r in rejects.values()} <= set(REJECT_CODES)
    for sid, rej in rejects.items():
        assert rej.message.startswith("chunks/fp/audio/10/")  # relative: no output-root in rows
        assert str(root) not in rej.message
        assert f"audio/10/{sid.rsplit(':', 1)[1]}." in rej.message      # the message names the file
    assert outcomes["deam:10"].counters == {"silent-chunks": 1}

    row = rows["deam:2:0"]
    assert row["path"] == "spectrogram/fp/png/deam%3A2/deam%3A2%3A0.png"
    assert row["fullres_path"] is None
    assert (row["source_id"], row["modality"], row["start_s"], row["end_s"]) == ("deam:2", 1, 15.0, 20.0)
    with Image.open(root / row["path"]) as im:
        assert im.mode == "L" and im.size == (224, 224)
        png = np.asarray(im)
    decoded, _ = sf.read(str(root / chunks.loc[0, "path"]), dtype="float32")
    expected, max_value = riffusion.riffusion_image(decoded)
    assert np.array_equal(png, riffusion.to_model_size(expected))
    assert row["max_value"] == max_value
    # PCM_24 storage is transparent at the image's precision
    assert diff_stats(expected, riffusion.riffusion_image(music["mix"])[0])[0] <= 1
    silent = rows["deam:10:1"]
    assert silent["max_value"] == 0.0
    with Image.open(root / silent["path"]) as im:
        assert (np.asarray(im) == 255).all()
    npy_row = rows["deam:11:0"]                       # an NPY chunk gives the same pixels
    with Image.open(root / npy_row["path"]) as im:
        assert np.array_equal(np.asarray(im), riffusion.to_model_size(riffusion.riffusion_image(music["quiet"])[0]))
    assert not list(root.rglob(".tmp-*"))


def test_process_is_deterministic_and_keeps_fullres(chunk_tree):
    root, chunks = chunk_tree
    ctx = make_ctx(root, chunks, keep_fullres=True)
    _, first = run_items(ctx)
    row = next(r for r in first["deam:2"].rows if r["sample_id"] == "deam:2:1")
    png = (root / row["path"]).read_bytes()
    with Image.open(root / row["fullres_path"]) as im:
        assert im.mode == "L" and im.size == (501, 512)
    _, second = run_items(ctx)
    assert second["deam:2"].rows == first["deam:2"].rows
    assert (root / row["path"]).read_bytes() == png


def test_process_seed001_writes_one_shard_per_song(chunk_tree, music):
    root, chunks = chunk_tree
    ctx = make_ctx(root, chunks, kind="seed001-mel")
    _, outcomes = run_items(ctx)
    song = outcomes["deam:2"]
    assert [r["row"] for r in song.rows] == [0, 1, 2]
    assert {r["path"] for r in song.rows} == {"spectrogram/fp/mel/mel-deam%3A2.npy"}
    shard = np.load(root / song.rows[0]["path"], allow_pickle=False)
    assert shard.shape == (3, 1, 128, 130) and shard.dtype == np.float32
    decoded, _ = sf.read(str(root / chunks.loc[1, "path"]), dtype="float32")
    np.testing.assert_array_equal(shard[1], seed001.seed001_mel(decoded, SR))
    other = outcomes["deam:10"]
    assert np.load(root / other.rows[0]["path"], allow_pickle=False).shape == (4, 1, 128, 130)
    assert {r.sample_id: r.reason for r in other.rejects} == {
        "deam:10:2": "unreadable-audio", "deam:10:3": "unreadable-audio",
        "deam:10:5": "empty-audio", "deam:10:7": "non-finite-audio"}
    # seed001 takes any rate and length: the 22 kHz and the 4,000-sample chunks are kept
    assert [r["sample_id"] for r in other.rows] == ["deam:10:0", "deam:10:1", "deam:10:4", "deam:10:6"]


def test_every_transform_parameter_enters_the_fingerprint():
    """Changing any parameter invalidates the stage (the engine hashes params_as_dict)."""
    from emoprep.pipeline.fingerprint import components, fingerprint

    stage = sp.Spectrogram()
    base = fingerprint(components(stage, params.SpectrogramParams(), {"chunks": "x"}))
    changes: dict[str, Any] = {"n_fft": 17642, "win_length": 4400, "hop_length": 440, "n_mels": 256,
               "f_min": 20.0, "f_max": 11000.0, "image_power": 0.3, "size": 256,
               "keep_fullres": True, "kind": "seed001-mel", "seed001_n_mels": 64,
               "seed001_trim_top_db": 40.0, "seed001_target_rms_dbfs": -23.0}
    for name, value in changes.items():
        changed = fingerprint(components(stage, params.SpectrogramParams(**{name: value}), {"chunks": "x"}))
        assert changed != base, name
    assert fingerprint(components(stage, params.SpectrogramParams(), {"chunks": "x"})) == base


def test_pixels_do_not_depend_on_torch_thread_count(music):
    """Pool workers run torch with 1 thread, an inline run with all cores: same bits."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = riffusion.riffusion_mel(music["mix"])
        torch.set_num_threads(max(2, before))
        many = riffusion.riffusion_mel(music["mix"])
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(one, many)
