"""Test-side replica of riffusion's audio → spectrogram image converter, in torch.

riffusion (riffusion/riffusion-hobby) builds the image in three files:
- spectrogram_params.py: n_fft = int(400 ms · sr), win_length = int(100 ms · sr),
  hop_length = int(10 ms · sr), 512 mels from 0 to 10 kHz, mel_scale_norm None, "htk",
  power_for_image 0.25;
- spectrogram_converter.py: torchaudio.transforms.Spectrogram(n_fft, hop_length, win_length,
  pad=0, window_fn=torch.hann_window, power=None, normalized=False, center=True,
  pad_mode="reflect", onesided=True) → torch.abs → torchaudio.transforms.MelScale(
  n_mels, sample_rate, f_min, f_max, n_stft=n_fft // 2 + 1, norm=None, mel_scale="htk");
- util/image_util.py image_from_spectrogram: ÷ np.max, np.power(·, 0.25), ×255, 255 − ·,
  astype(uint8), PIL "L" → "RGB", FLIP_TOP_BOTTOM.

torchaudio cannot be installed here, so its two transforms are written out as they are in
pytorch/audio (functional.spectrogram → torch.stft; functional.melscale_fbanks →
_hz_to_mel / _mel_to_hz (htk) / _create_triangular_filterbank; MelScale.forward's matmul),
all in float32 torch as torchaudio runs them. riffusion feeds pydub's integer sample values
as float32 (int16 range); `image_from_float_audio` scales float audio by 2**15 the same way
(a power of two: the image does not change, max_value scales by 32768).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class RiffusionParams:
    """riffusion/spectrogram_params.py defaults (mono)."""

    sample_rate: int = 44100
    step_size_ms: int = 10
    window_duration_ms: int = 100
    padded_duration_ms: int = 400
    num_frequencies: int = 512
    min_frequency: int = 0
    max_frequency: int = 10000
    power_for_image: float = 0.25

    @property
    def n_fft(self) -> int:
        return int(self.padded_duration_ms / 1000.0 * self.sample_rate)

    @property
    def win_length(self) -> int:
        return int(self.window_duration_ms / 1000.0 * self.sample_rate)

    @property
    def hop_length(self) -> int:
        return int(self.step_size_ms / 1000.0 * self.sample_rate)


# ---- torchaudio.functional (htk, norm=None paths only)
def _hz_to_mel(freq: float) -> float:
    return 2595.0 * math.log10(1.0 + (freq / 700.0))


def _mel_to_hz(mels: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


def _create_triangular_filterbank(all_freqs: torch.Tensor, f_pts: torch.Tensor) -> torch.Tensor:
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    zero = torch.zeros(1, dtype=all_freqs.dtype)
    down_slopes = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up_slopes = slopes[:, 2:] / f_diff[1:]
    return torch.max(zero, torch.min(down_slopes, up_slopes))


def melscale_fbanks(n_freqs: int, f_min: float, f_max: float, n_mels: int,
                    sample_rate: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n_freqs, n_mels), as torchaudio.functional.melscale_fbanks(norm=None, mel_scale="htk").

    torchaudio works in the default dtype (float32); `dtype=torch.float64` is a test-only
    extension that evaluates the same formula without float32 rounding."""
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=dtype)
    m_min = _hz_to_mel(f_min)
    m_max = _hz_to_mel(f_max)
    m_pts = torch.linspace(m_min, m_max, n_mels + 2, dtype=dtype)
    f_pts = _mel_to_hz(m_pts)
    return _create_triangular_filterbank(all_freqs, f_pts)


def spectrogram_complex(waveform: torch.Tensor, p: RiffusionParams) -> torch.Tensor:
    """torchaudio.functional.spectrogram(pad=0, power=None, normalized=False, center=True,
    pad_mode="reflect", onesided=True) with window torch.hann_window(win_length)."""
    window = torch.hann_window(p.win_length, dtype=waveform.dtype)
    shape = waveform.size()
    waveform = waveform.reshape(-1, shape[-1])
    spec_f = torch.stft(input=waveform, n_fft=p.n_fft, hop_length=p.hop_length,
                        win_length=p.win_length, window=window, center=True, pad_mode="reflect",
                        normalized=False, onesided=True, return_complex=True)
    return spec_f.reshape(shape[:-1] + spec_f.shape[-2:])


def mel_amplitudes_from_waveform(waveform: torch.Tensor, p: RiffusionParams) -> torch.Tensor:
    """SpectrogramConverter.mel_amplitudes_from_waveform: (batch, samples) → (batch, mel, time)."""
    amplitudes = torch.abs(spectrogram_complex(waveform, p))
    fb = melscale_fbanks(p.n_fft // 2 + 1, float(p.min_frequency), float(p.max_frequency),
                         p.num_frequencies, p.sample_rate, dtype=waveform.dtype)
    return torch.matmul(amplitudes.transpose(-1, -2), fb).transpose(-1, -2)


# ---- riffusion/util/image_util.py (mono branch)
def image_from_spectrogram(spectrogram: np.ndarray, power: float = 0.25) -> Image.Image:
    max_value = np.max(spectrogram)
    data = spectrogram / max_value
    data = np.power(data, power)
    data = data * 255
    data = 255 - data
    data = data.astype(np.uint8)
    image = Image.fromarray(data[0], mode="L").convert("RGB")
    return image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)


def spectrogram_image_from_samples(samples: np.ndarray, p: RiffusionParams = RiffusionParams(),
                                   exact: bool = False) -> tuple[Image.Image, float]:
    """SpectrogramImageConverter.spectrogram_image_from_audio for mono sample values (the
    float32 of pydub's integers): the RGB image and its EXIF MAX_VALUE.

    `exact=True` (test-only) runs the transform in float64 and rounds the mel magnitudes to
    float32 before the image step: riffusion's formula without its float32 rounding noise."""
    waveform = np.asarray(samples)[None, :]
    dtype = np.float64 if exact else np.float32
    if waveform.dtype != dtype:
        waveform = waveform.astype(dtype)
    with torch.no_grad():
        spectrogram = mel_amplitudes_from_waveform(torch.from_numpy(waveform), p).cpu().numpy()
    spectrogram = spectrogram.astype(np.float32)
    return image_from_spectrogram(spectrogram, p.power_for_image), float(np.max(spectrogram))


def image_from_float_audio(audio: np.ndarray, p: RiffusionParams = RiffusionParams(),
                           exact: bool = False) -> tuple[np.ndarray, float]:
    """Gray uint8 [mel, time] and max_value in float-sample units, for audio in [-1, 1]."""
    samples = np.asarray(audio, np.float32) * np.float32(2.0**15)
    image, max_value = spectrogram_image_from_samples(samples, p, exact=exact)
    return np.asarray(image)[:, :, 0].copy(), max_value / 2.0**15
