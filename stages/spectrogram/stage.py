"""Spectrogram stage: riffusion's image transform (thesis v3) and seed 001's mel clips.

`kind = "riffusion"` (SPEC §4 "spectrogram, thesis v3") reproduces riffusion's converter
(riffusion/spectrogram_converter.py + util/image_util.py: torchaudio Spectrogram(power=None) →
abs → MelScale(norm=None, mel_scale="htk") → image_from_spectrogram(power=0.25)) without torch:

- only the `win_length` non-zero samples of each Hann-windowed frame are transformed (a frame of
  `n_fft` samples whose window is zero outside its centre has the same magnitudes as those
  samples zero-padded to `n_fft`: the offset is a pure phase shift);
- frames go through the FFT in blocks of 32, so the complex output stays in cache;
- only the FFT bins that a mel filter touches are kept (4,000 of 8,821 for 0–10 kHz);
- the mel filterbank is a sparse matrix (each bin lies in at most two triangles);
- window and filterbank are built once per parameter set and process.

That leaves the float32 real FFT as the cost. It is torch's (MKL on x86 CPUs — the FFT
riffusion's own torch.stft runs): 15 ms per 5 s chunk on one Xeon core where scipy's
pocketfft takes 35 ms (bench/RESULTS.md). MKL may pick other kernels on another CPU
family, so pixels are reproducible per machine kind, and within riffusion's rounding
everywhere (tests/test_spectrogram.py). A song-level STFT would not save work: chunks do not overlap, so no frame belongs to
two chunks, and a chunk's edge frames see riffusion's reflect padding of the chunk itself.

`kind = "seed001-mel"` (SPEC §4 "spectrogram, seed 001"; seed paper 001 §3.2): 22,050 Hz, RMS
loudness normalisation, energy-based silence trim, pad/truncate to 3.0 s, 128 mels, n_fft 1024,
hop 512, dB, z-score → float32 [1, 128, 130], one NPY shard per song.

Outputs (under the stage folder): `png/<song>/<chunk>.png` (8-bit gray, `size`²),
`fullres/<song>/<chunk>.png` (512 px, when `keep_fullres`), `mel/mel-<song>.npy` (seed001-mel).
File names are percent-encoded ids, so any id maps to one safe file name and back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal
from urllib.parse import quote

import numpy as np

from emoprep.pipeline.atomic import atomic_path
from emoprep.pipeline.errors import DataError
from emoprep.pipeline.stage import Outcome, Reject, Stage, WorkItem
from emoprep.pipeline.paths import output_file

# Reason codes this stage emits (stable; the first two are shared with stages/audio_io.py).
UNREADABLE_AUDIO = "unreadable-audio"      # missing file, not audio, corrupt/truncated file
EMPTY_AUDIO = "empty-audio"                # zero samples
SHORT_AUDIO = "short-audio"                # riffusion: too short for the STFT's reflect padding
WRONG_SAMPLE_RATE = "wrong-sample-rate"    # riffusion: rate differs from the transform's
NON_FINITE_AUDIO = "non-finite-audio"      # NaN or infinite samples (float WAV / NPY chunks)
BAD_PATH = "bad-path"                      # the manifest path leaves the output root
REASON_CODES = (UNREADABLE_AUDIO, EMPTY_AUDIO, SHORT_AUDIO, WRONG_SAMPLE_RATE, NON_FINITE_AUDIO)

CHUNK_COLUMNS = ("sample_id", "source_id", "modality", "start_s", "end_s", "path")
OPTIONAL_CHUNK_COLUMNS = ("sample_rate",)  # NPY chunks (chunks.audio_format = "npy") need it
# Carried into each output row, so `labels` can read the stage whose items get tokenized:
# a chunk this stage rejects then never reaches the normalisation bounds or the split.
LABEL_COLUMNS = ("n_frames", "valence_raw", "arousal_raw")


@dataclass(frozen=True)
class SpectrogramParams:
    """Every parameter that decides the pixels (riffusion's SpectrogramParams defaults) or the
    seed-001 arrays; all enter the stage fingerprint."""

    kind: Literal["riffusion", "seed001-mel"] = "riffusion"
    # riffusion transform (riffusion/spectrogram_params.py: 10 ms step, 100 ms window,
    # 400 ms padded window, 512 mel bands 0–10 kHz, HTK, no norm, power 0.25)
    sample_rate: int = 44100
    n_fft: int = 17640
    win_length: int = 4410
    hop_length: int = 441
    n_mels: int = 512
    f_min: float = 0.0
    f_max: float = 10000.0
    image_power: float = 0.25
    size: int = 224
    keep_fullres: bool = False
    # seed-001 mel clips (seed paper 001 §3.2; values the paper leaves open are ours, see
    # `seed001_mel`)
    seed001_sample_rate: int = 22050
    seed001_clip_s: float = 3.0
    seed001_n_mels: int = 128
    seed001_n_fft: int = 1024
    seed001_hop_length: int = 512
    seed001_target_rms_dbfs: float = -20.0
    seed001_trim_top_db: float = 60.0
    seed001_top_db: float = 80.0

    def __post_init__(self) -> None:
        positive = ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "size",
                    "seed001_sample_rate", "seed001_n_mels", "seed001_n_fft", "seed001_hop_length")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} = {getattr(self, name)} must be positive")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} exceeds n_fft {self.n_fft}")
        if not 0.0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={self.f_min}, "
                             f"f_max={self.f_max}, sample_rate={self.sample_rate}")
        if not self.image_power > 0:
            raise ValueError(f"image_power = {self.image_power} must be positive")
        if not self.seed001_clip_s > 0:
            raise ValueError(f"seed001_clip_s = {self.seed001_clip_s} must be positive")


DEFAULT_PARAMS = SpectrogramParams()


# ---------------------------------------------------------------- riffusion transform
@dataclass(frozen=True)
class _RiffusionPlan:
    """Precomputed pieces of the transform for one parameter set."""

    window: np.ndarray          # float32 [win_length], periodic Hann (torch.hann_window)
    filterbank: Any             # scipy.sparse CSR float32 [n_mels, n_bins]
    n_bins: int                 # FFT bins 0..n_bins-1 are all the filters touch
    left_pad: int               # reflect padding that puts frame t's window centre at t*hop


def _transform_key(p: SpectrogramParams) -> tuple:
    return (p.sample_rate, p.n_fft, p.win_length, p.hop_length, p.n_mels, p.f_min, p.f_max)


def hz_to_mel_htk(freq: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def mel_to_hz_htk(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float,
                   f_max: float) -> np.ndarray:
    """Dense HTK triangles without normalisation, float32 [n_mels, n_fft//2+1].

    torchaudio's `melscale_fbanks` formulation (bin frequencies `linspace(0, sr // 2, n_freqs)`,
    triangles max(0, min(down, up))), evaluated in float64 so it does not depend on torch;
    equal to `librosa.filters.mel(htk=True, norm=None)` for even n_fft."""
    n_freqs = n_fft // 2 + 1
    all_freqs = np.linspace(0.0, sample_rate // 2, n_freqs)
    f_pts = mel_to_hz_htk(np.linspace(hz_to_mel_htk(f_min), hz_to_mel_htk(f_max), n_mels + 2))
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).T.astype(np.float32)


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window, as `torch.hann_window(n)` and librosa's 'hann' give."""
    from scipy.signal import windows

    return windows.hann(n, sym=False).astype(np.float32)


@lru_cache(maxsize=8)
def _riffusion_plan(key: tuple) -> _RiffusionPlan:
    import scipy.sparse

    sample_rate, n_fft, win_length, _hop, n_mels, f_min, f_max = key
    fb = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)
    touched = np.flatnonzero(fb.any(axis=0))
    n_bins = int(touched[-1]) + 1 if touched.size else 1
    # torch.stft centres the window in the n_fft frame (offset (n_fft-win)//2) after padding
    # the signal by n_fft//2; only the window's support matters, so pad by the difference.
    left_pad = n_fft // 2 - (n_fft - win_length) // 2
    return _RiffusionPlan(window=hann_window(win_length),
                          filterbank=scipy.sparse.csr_matrix(fb[:, :n_bins]),
                          n_bins=n_bins, left_pad=left_pad)


def n_frames_for(n_samples: int, p: SpectrogramParams = DEFAULT_PARAMS) -> int:
    """Frames of a centred STFT (torch.stft / librosa with center=True)."""
    return 1 + (n_samples + 2 * (p.n_fft // 2) - p.n_fft) // p.hop_length


def check_audio(audio: np.ndarray, p: SpectrogramParams = DEFAULT_PARAMS) -> np.ndarray:
    """1-D float32 view of `audio`; ValueError for what the transform cannot take."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono 1-D audio, got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError("audio has no samples")
    if audio.size <= p.n_fft // 2:
        raise ValueError(f"audio has {audio.size} samples; the centred STFT's reflect padding "
                         f"needs more than n_fft/2 = {p.n_fft // 2}")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples")
    return audio


# Frames per FFT call: a 32 × 8,821 complex64 block (2.3 MB) stays in cache, where one call
# for all 501 frames writes 35 MB (measured with torch: 16 vs 25 ms per 5 s chunk, identical bits).
FRAME_BLOCK = 32


def riffusion_mel(audio: np.ndarray, p: SpectrogramParams = DEFAULT_PARAMS) -> np.ndarray:
    """Mel magnitudes float32 [n_mels, n_frames] (riffusion's `mel_amplitudes_from_waveform`)."""
    import torch

    audio = check_audio(audio, p)
    plan = _riffusion_plan(_transform_key(p))
    n_frames = n_frames_for(audio.size, p)
    right_pad = (n_frames - 1) * p.hop_length + p.win_length - plan.left_pad - audio.size
    padded = np.pad(audio, (plan.left_pad, max(right_pad, 0)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, p.win_length)[::p.hop_length]
    # the window's support sits at the start of a zeroed n_fft buffer: same magnitudes as
    # torch's centred placement (a shift is a phase factor), no per-call zero-padding copy
    buf = np.zeros((min(FRAME_BLOCK, n_frames), p.n_fft), dtype=np.float32)
    frames_in = torch.from_numpy(buf)  # shares buf's memory
    magnitude = np.empty((n_frames, plan.n_bins), dtype=np.float32)
    for start in range(0, n_frames, FRAME_BLOCK):
        n = min(FRAME_BLOCK, n_frames - start)
        np.multiply(frames[start:start + n], plan.window, out=buf[:n, :p.win_length])
        spectrum = torch.fft.rfft(frames_in[:n], dim=-1).numpy()
        np.abs(spectrum[:, :plan.n_bins], out=magnitude[start:start + n])  # NumPy's abs: 5× torch's here
    return np.asarray(plan.filterbank @ magnitude.T, dtype=np.float32)


def image_from_mel(mel: np.ndarray, power: float = 0.25) -> tuple[np.ndarray, float]:
    """riffusion's `image_from_spectrogram` for one channel: uint8 [n_mels, n_frames], low
    frequencies at the bottom, and the max it divided by.

    Same float32 operations in the same order (÷max, ^power, ×255, 255−, truncating cast),
    so equal inputs give equal pixels. All-zero input (silence) has no max to divide by:
    it gives an all-white image and max_value 0.0."""
    mel = np.asarray(mel, dtype=np.float32)
    max_value = np.max(mel)
    if not np.isfinite(max_value):
        raise ValueError("mel magnitudes contain NaN or infinite values")
    if not max_value > 0:
        return np.full(mel.shape, 255, dtype=np.uint8), 0.0
    data = np.power(mel / max_value, np.float32(power))
    data = 255 - data * 255
    return np.ascontiguousarray(data.astype(np.uint8)[::-1]), float(max_value)


def riffusion_image(audio_44k_mono: np.ndarray,
                    p: SpectrogramParams = DEFAULT_PARAMS) -> tuple[np.ndarray, float]:
    """FAST path: riffusion's spectrogram image, uint8 [n_mels, n_frames] (512 × 501 for 5 s),
    and max_value (the mel magnitude the image was divided by, in units of float samples in
    [-1, 1]; riffusion feeds int16 sample values, so its EXIF MAX_VALUE is ×32768)."""
    return image_from_mel(riffusion_mel(audio_44k_mono, p), p.image_power)


def riffusion_image_reference(audio: np.ndarray,
                              p: SpectrogramParams = DEFAULT_PARAMS) -> tuple[np.ndarray, float]:
    """Plain librosa formulation (full STFT, dense mel matrix): the bench's baseline."""
    import librosa

    audio = check_audio(audio, p)
    stft = librosa.stft(audio, n_fft=p.n_fft, hop_length=p.hop_length, win_length=p.win_length,
                        window="hann", center=True, pad_mode="reflect", dtype=np.complex64)
    fb = librosa.filters.mel(sr=p.sample_rate, n_fft=p.n_fft, n_mels=p.n_mels, fmin=p.f_min,
                             fmax=p.f_max, htk=True, norm=None, dtype=np.float32)
    return image_from_mel(fb @ np.abs(stft), p.image_power)


def to_model_size(img_uint8: np.ndarray, size: int = 224) -> np.ndarray:
    """Lanczos resize (Pillow) of a gray image to size × size, uint8 (thesis: stretch)."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(img_uint8, dtype=np.uint8))
    return np.asarray(img.resize((size, size), Image.Resampling.LANCZOS))


def write_png(path: Path, img_uint8: np.ndarray) -> None:
    """8-bit gray PNG, atomically; fixed options and no metadata, so bytes are deterministic."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(img_uint8, dtype=np.uint8))
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", compress_level=6, optimize=False)


# ---------------------------------------------------------------- seed-001 mel clips
def rms_normalise(y: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scale to an RMS of `target_dbfs` (re full scale 1.0); silence stays silence."""
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    if rms == 0.0:
        return y
    return (y * (10.0 ** (target_dbfs / 20.0) / rms)).astype(np.float32)


def zscore(x: np.ndarray) -> np.ndarray:
    """(x − mean) / std over the whole array; a constant array (std 0) gives zeros."""
    x = np.asarray(x, dtype=np.float64)
    std = float(x.std())
    if std == 0.0:
        return np.zeros(x.shape, dtype=np.float32)
    return ((x - x.mean()) / std).astype(np.float32)


def seed001_mel(audio: np.ndarray, sr: int, p: SpectrogramParams = DEFAULT_PARAMS) -> np.ndarray:
    """Seed 001 mel clip, float32 [1, n_mels, frames] (1 × 128 × 130 by default).

    From the seed paper (001, §3.2 "Audio Feature Preparation"): one sampling rate, "RMS
    loudness normalization", "silence trimming based on energy thresholds", "uniform temporal
    length (3 seconds) via padding or truncation", 128 mel bins, 1024-point FFT, hop 512,
    "conversion to decibel scale", "Z-score normalization", tensors of 1 × 128 × 130.
    From SPEC §4: 22,050 Hz. Ours, where the paper is silent (all in the Params): soxr HQ
    resampling (as every resampling here); target RMS −20 dBFS; `librosa.effects.trim` at
    top_db 60 (librosa's default); keep the first 3.0 s after the trim, zero-pad at the end;
    librosa's default mel (power 2, Slaney scale and norm) with centred frames, the only
    framing that gives the paper's 130 frames (1 + 66,150 // 512); `power_to_db(ref=max,
    top_db=80)`; z-score per clip, so every item stays independent (all-constant → zeros)."""
    import librosa
    import soxr

    y = np.asarray(audio, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"expected non-empty mono 1-D audio, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("audio contains NaN or infinite samples")
    target_sr = p.seed001_sample_rate
    if sr != target_sr:
        y = soxr.resample(y, sr, target_sr, quality="HQ").astype(np.float32)
    y = rms_normalise(y, p.seed001_target_rms_dbfs)
    y, _ = librosa.effects.trim(y, top_db=p.seed001_trim_top_db)
    y = librosa.util.fix_length(y, size=int(round(p.seed001_clip_s * target_sr)))
    mel = librosa.feature.melspectrogram(y=y, sr=target_sr, n_fft=p.seed001_n_fft,
                                         hop_length=p.seed001_hop_length, n_mels=p.seed001_n_mels)
    db = librosa.power_to_db(mel, ref=np.max, top_db=p.seed001_top_db)
    return zscore(db)[None]


# ---------------------------------------------------------------- files and ids
def safe_name(identifier: str) -> str:
    """Injective, filesystem-safe file name for an id: every byte outside [A-Za-z0-9_-] is
    percent-encoded (so `deam:2:0` → `deam%3A2%3A0`, and `..` or `/` can never appear)."""
    return quote(str(identifier), safe="-_").replace(".", "%2E")


class AudioProblem(Exception):
    """A chunk that cannot be used; carries the reject reason code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def read_audio(path: Path, name: str | None = None,
               npy_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples and rate of a chunk file (anything libsndfile reads, or the float32
    NPY that `chunks.audio_format = "npy"` writes, whose rate is `npy_rate`); channels are
    averaged. AudioProblem if unusable.

    Messages name the file as `name` (the manifest's path relative to the output root), so
    rejects do not depend on where the output folder lives."""
    name = name or str(path)
    if not Path(path).is_file():
        raise AudioProblem(UNREADABLE_AUDIO, f"{name}: no such file (the chunks output lost "
                           "it; re-run `emoprep run --stage chunks --force`)")
    try:
        data, sr = _read_samples(Path(path), npy_rate)
    except AudioProblem:
        raise
    except Exception as exc:  # libsndfile / np.load raise several types for corrupt files
        detail = str(exc).replace(str(path), name)
        raise AudioProblem(UNREADABLE_AUDIO, f"{name}: cannot read audio ({detail})") from None
    if data.shape[0] == 0:
        raise AudioProblem(EMPTY_AUDIO, f"{name}: audio has no samples")
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise AudioProblem(NON_FINITE_AUDIO, f"{name}: audio contains NaN or infinite samples")
    return np.ascontiguousarray(mono), int(sr)


def _read_samples(path: Path, npy_rate: int | None) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and the rate."""
    if path.suffix == ".npy":
        data = np.load(path, allow_pickle=False)
        if data.ndim not in (1, 2) or not np.issubdtype(data.dtype, np.floating):
            raise ValueError(f"expected float samples [frames] or [frames, channels], "
                             f"got {data.dtype} {data.shape}")
        if npy_rate is None:
            raise ValueError("an NPY chunk needs the manifest's sample_rate column")
        return data.reshape(len(data), -1).astype(np.float32, copy=False), int(npy_rate)
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data, int(sr)


def _plain(value: Any) -> Any:
    """Manifest values as plain Python (NaN → None)."""
    import pandas as pd

    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


# ---------------------------------------------------------------- the stage
class Spectrogram(Stage):
    """Chunks → spectrogram images (riffusion) or seed-001 mel arrays; one work item per song."""

    name = "spectrogram"
    version = "4"  # 2: rows carry the chunk's label columns; 3: bad-path rejects; 4: torch (MKL) FFT
    Params = SpectrogramParams
    libraries = ("numpy", "scipy", "torch", "pillow", "soundfile", "soxr", "librosa")
    default_inputs = ("chunks",)
    description = "riffusion spectrogram images (224 px PNG) or seed-001 z-scored mel clips"

    def plan(self, ctx) -> Iterable[WorkItem]:
        """One item per song. Streams the chunks manifest row group by row group when each
        song's chunks are contiguous in it (always so for manifests the runner writes: they
        are sorted by sample_id), so 10× DEAM is never held in memory as dicts."""
        names = ctx.manifest_columns("chunks")
        missing = [c for c in CHUNK_COLUMNS if c not in names]
        if missing:
            raise DataError(f"spectrogram: the chunks manifest lacks columns {missing} "
                            f"(expected {list(CHUNK_COLUMNS)}, CONTRIBUTING.md)")
        columns = list(CHUNK_COLUMNS) + [c for c in OPTIONAL_CHUNK_COLUMNS + LABEL_COLUMNS if c in names]
        chunks = (chunk for batch in ctx.iter_manifest("chunks", columns)
                  for chunk in _chunk_dicts(batch))
        if _songs_contiguous(ctx):
            return _song_items(chunks)
        groups: dict[str, list[dict[str, Any]]] = {}
        for chunk in chunks:
            groups.setdefault(_song_of(chunk), []).append(chunk)
        return [_song_item(song, items) for song, items in sorted(groups.items())]

    def process(self, item: WorkItem, ctx) -> Outcome:
        p: SpectrogramParams = ctx.params
        if p.kind == "seed001-mel":
            return self._process_seed001(item, ctx)
        return self._process_riffusion(item, ctx)

    # ---- riffusion images
    def _process_riffusion(self, item: WorkItem, ctx) -> Outcome:
        p: SpectrogramParams = ctx.params
        out = Outcome()
        song_dir = safe_name(item.key)
        for chunk in item.payload["chunks"]:
            try:
                audio = _load_chunk(chunk, ctx, p.sample_rate)
                img, max_value = riffusion_image(audio, p)
            except AudioProblem as exc:
                out.rejects.append(Reject(chunk["sample_id"], exc.reason, str(exc)))
                continue
            stem = safe_name(chunk["sample_id"]) + ".png"
            png = ctx.out_dir / "png" / song_dir / stem
            write_png(png, to_model_size(img, p.size))
            fullres_path = None
            if p.keep_fullres:
                full = ctx.out_dir / "fullres" / song_dir / stem
                write_png(full, img)
                fullres_path = ctx.rel(full)
            if max_value == 0.0:
                out.counters["silent-chunks"] = out.counters.get("silent-chunks", 0) + 1
            out.rows.append({**_carry(chunk), "path": ctx.rel(png),
                             "fullres_path": fullres_path, "max_value": max_value})
        return out

    # ---- seed-001 mel clips: one shard per song, so a resumed run redoes whole songs only
    def _process_seed001(self, item: WorkItem, ctx) -> Outcome:
        p: SpectrogramParams = ctx.params
        out = Outcome()
        arrays, kept = [], []
        for chunk in item.payload["chunks"]:
            try:
                audio, sr = _load_chunk_any_rate(chunk, ctx)
                arrays.append(seed001_mel(audio, sr, p))
            except AudioProblem as exc:
                out.rejects.append(Reject(chunk["sample_id"], exc.reason, str(exc)))
                continue
            kept.append(chunk)
        if not kept:
            return out
        shard = ctx.out_dir / "mel" / f"mel-{safe_name(item.key)}.npy"
        with atomic_path(shard) as tmp:
            np.save(tmp, np.stack(arrays).astype(np.float32), allow_pickle=False)
        rel = ctx.rel(shard)
        for row, chunk in enumerate(kept):
            out.rows.append({**_carry(chunk), "path": rel, "shard": shard.name, "row": row})
        return out


def _chunk_dicts(batch) -> Iterator[dict[str, Any]]:
    for rec in batch.to_dict("records"):
        yield {k: _plain(v) for k, v in rec.items()}


def _song_of(chunk: dict[str, Any]) -> str:
    return str(chunk["source_id"] if isinstance(chunk["source_id"], str) else chunk["sample_id"])


def _song_item(song: str, chunks: list[dict[str, Any]]) -> WorkItem:
    return WorkItem(key=song, payload={"chunks": sorted(chunks, key=_chunk_order)})


def _songs_contiguous(ctx) -> bool:
    """Are each song's rows one run in the manifest? (reads two columns only)"""
    seen: set[str] = set()
    current = None
    for batch in ctx.iter_manifest("chunks", ["sample_id", "source_id"]):
        for chunk in _chunk_dicts(batch):
            song = _song_of(chunk)
            if song != current:
                if song in seen:
                    return False
                seen.add(song)
                current = song
    return True


def _song_items(chunks: Iterable[dict[str, Any]]) -> Iterator[WorkItem]:
    """Consecutive chunks of one song → one item, as the rows stream by."""
    song, group = None, []
    for chunk in chunks:
        if _song_of(chunk) != song and group:
            yield _song_item(song, group)
            group = []
        song = _song_of(chunk)
        group.append(chunk)
    if group:
        yield _song_item(song, group)


def _chunk_order(chunk: dict[str, Any]) -> tuple:
    start = chunk.get("start_s")
    return (start if start is not None else math.inf, str(chunk["sample_id"]))


def _carry(chunk: dict[str, Any]) -> dict[str, Any]:
    keys = ("sample_id", "source_id", "modality", "start_s", "end_s") + LABEL_COLUMNS
    return {k: chunk[k] for k in keys if k in chunk}


def _chunk_path(chunk: dict[str, Any]) -> str:
    rel = chunk.get("path")
    if not isinstance(rel, str) or not rel:
        raise AudioProblem(UNREADABLE_AUDIO, f"{chunk['sample_id']}: the chunks manifest has no path")
    return rel


def _load_chunk_any_rate(chunk: dict[str, Any], ctx) -> tuple[np.ndarray, int]:
    rel = _chunk_path(chunk)
    rate = chunk.get("sample_rate")
    try:
        path = output_file(ctx.out_root, rel)
    except ValueError as exc:
        raise AudioProblem(BAD_PATH, f"{chunk['sample_id']}: chunks manifest path {exc}") from None
    return read_audio(path, rel, int(rate) if rate is not None else None)


def _load_chunk(chunk: dict[str, Any], ctx, sample_rate: int) -> np.ndarray:
    """Samples of a chunk ready for `riffusion_image`, or AudioProblem naming the file."""
    audio, sr = _load_chunk_any_rate(chunk, ctx)
    rel = chunk["path"]
    if sr != sample_rate:
        raise AudioProblem(WRONG_SAMPLE_RATE, f"{rel}: sample rate {sr} Hz, the transform "
                           f"expects {sample_rate} Hz (riffusion asserts equal rates)")
    try:
        return check_audio(audio, ctx.params)
    except ValueError as exc:
        raise AudioProblem(SHORT_AUDIO, f"{rel}: {exc}") from None
