"""riffusion's spectrogram image (thesis v3; SPEC §4 "spectrogram, thesis v3"), without torch's STFT.

It reproduces riffusion's converter (riffusion/spectrogram_converter.py + util/image_util.py:
torchaudio Spectrogram(power=None) → abs → MelScale(norm=None, mel_scale="htk") →
image_from_spectrogram(power=0.25)):

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
everywhere (tests/stages/spectrogram/). A song-level STFT would not save work: chunks do not
overlap, so no frame belongs to two chunks, and a chunk's edge frames see riffusion's reflect
padding of the chunk itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from emoprep.pipeline.atomic import atomic_path
from emoprep.pipeline.lazy import np
from emoprep.stages.spectrogram.params import DEFAULT_PARAMS, SpectrogramParams


# ---------------------------------------------------------------- riffusion transform
@dataclass(frozen=True)
class _RiffusionPlan:
    """Precomputed pieces of the transform for one parameter set."""

    window: np.ndarray          # float32 [win_length], periodic Hann (torch.hann_window)
    filterbank: Any             # scipy.sparse CSR float32 [n_mels, n_bins]
    n_bins: int                 # FFT bins 0..n_bins-1 are all the filters touch
    left_pad: int               # reflect padding that puts frame t's window centre at t*hop


# (sample_rate, n_fft, win_length, hop_length, n_mels, f_min, f_max): what the plan depends on.
TransformKey = tuple[int, int, int, int, int, float, float]


def _transform_key(p: SpectrogramParams) -> TransformKey:
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
def _riffusion_plan(key: TransformKey) -> _RiffusionPlan:
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
