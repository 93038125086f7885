"""Seed 001's mel clip (SPEC §4 "spectrogram, seed 001"; seed paper 001 §3.2): 22,050 Hz, RMS
loudness normalisation, energy-based silence trim, pad/truncate to 3.0 s, 128 mels, n_fft
1024, hop 512, dB, z-score → float32 [1, 128, 130].
"""
from __future__ import annotations

from emoprep.pipeline.lazy import np
from emoprep.stages.spectrogram.params import DEFAULT_PARAMS, SpectrogramParams


# ---------------------------------------------------------------- seed-001 mel clips
def rms_normalise(y: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scale to an RMS of `target_dbfs` (re full scale 1.0); silence stays silence."""
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    if rms == 0.0:
        return y
    scaled: np.ndarray = (y * (10.0 ** (target_dbfs / 20.0) / rms)).astype(np.float32)
    return scaled


def zscore(x: np.ndarray) -> np.ndarray:
    """(x − mean) / std over the whole array; a constant array (std 0) gives zeros."""
    x = np.asarray(x, dtype=np.float64)
    std = float(x.std())
    if std == 0.0:
        return np.zeros(x.shape, dtype=np.float32)
    z: np.ndarray = ((x - x.mean()) / std).astype(np.float32)
    return z


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
    y = librosa.util.fix_length(y, size=round(p.seed001_clip_s * target_sr))
    mel = librosa.feature.melspectrogram(y=y, sr=target_sr, n_fft=p.seed001_n_fft,
                                         hop_length=p.seed001_hop_length, n_mels=p.seed001_n_mels)
    db = librosa.power_to_db(mel, ref=np.max, top_db=p.seed001_top_db)
    return zscore(db)[None]
