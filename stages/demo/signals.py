"""Synthetic 5 s music chunks of known character (chords, drums, a sweep, a quiet tail, a mix,
a zero-padded tail), float32 at 44.1 kHz: the inputs on which the spectrogram tests and
benchmarks compare the stage with the riffusion reference."""
from __future__ import annotations

import numpy as np

MUSIC_KINDS = ("chord", "drums", "sweep", "quiet", "mix", "padded-tail")


def _notes(t: np.ndarray, freqs: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Harmonic notes (5 partials, 1/h amplitudes, random phases) with an attack/decay."""
    out = np.zeros_like(t)
    for f in freqs:
        for h in range(1, 6):
            out += np.sin(2 * np.pi * f * h * t + rng.uniform(0, 2 * np.pi)) / h
    envelope = np.minimum(t / 0.02, 1.0) * np.exp(-t / 1.5)
    notes: np.ndarray = out * envelope
    return notes


def _chords(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    progression = ((261.63, 329.63, 392.00), (220.00, 261.63, 329.63),
                   (174.61, 220.00, 261.63), (196.00, 246.94, 293.66))
    out = np.zeros_like(t)
    step = t[-1] / len(progression)
    for k, chord in enumerate(progression):
        part = (t >= k * step) & (t < (k + 1) * step)
        out[part] = _notes(t[part] - k * step, chord, rng)
    return out


def _drums(t: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros_like(t)
    for start in np.arange(0.0, t[-1], 0.125):
        i = int(start * sr)
        n = min(int(0.3 * sr), t.size - i)
        tt = np.arange(n) / sr
        beat = round(start / 0.125) % 4
        if beat == 0:      # kick: falling sine
            hit = np.sin(2 * np.pi * (50 * tt + 70 * (1 - np.exp(-tt / 0.03)) * 0.03)) * np.exp(-tt / 0.12)
        elif beat == 2:    # snare: noise burst
            hit = rng.standard_normal(n) * np.exp(-tt / 0.05) * 0.5
        else:              # hi-hat: differentiated (high-passed) noise
            hit = np.diff(rng.standard_normal(n + 1)) * np.exp(-tt / 0.02) * 0.2
        out[i:i + n] += hit
    return out


def synthetic_music(kind: str, seed: int = 0, noise_dbfs: float | None = -80.0,
                    sr: int = 44100, duration_s: float = 5.0) -> np.ndarray:
    """A 5 s float32 chunk of synthetic music, peak 0.8, plus a white noise floor at
    `noise_dbfs` RMS (every recording has one; None for none).

    kinds: chord (a harmonic chord progression), drums (kick / snare / hi-hat), sweep
    (exponential 40 Hz → 15 kHz), quiet (chords falling to −50 dB after 2 s), mix (chords,
    bass, drums), padded-tail (mix for 4.6 s then exact zeros, as the chunks stage pads tails).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(round(duration_s * sr)) / sr
    y: np.ndarray
    if kind == "chord":
        y = _chords(t, rng)
    elif kind == "drums":
        y = _drums(t, sr, rng)
    elif kind == "sweep":
        f0, f1 = 40.0, 15000.0
        k = np.log(f1 / f0) / t[-1]
        y = np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    elif kind == "quiet":
        y = _chords(t, rng) * np.where(t < 2.0, 1.0, 10 ** (-50 / 20))
    elif kind in ("mix", "padded-tail"):
        bass = np.sin(2 * np.pi * 55.0 * t + 0.5 * np.sin(2 * np.pi * 0.5 * t))
        y = _chords(t, rng) / 3 + bass * 0.3 + _drums(t, sr, rng) * 0.5
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {MUSIC_KINDS}")
    y = 0.8 * y / np.max(np.abs(y))
    if noise_dbfs is not None:
        y = y + rng.standard_normal(t.size) * 10 ** (noise_dbfs / 20)
    if kind == "padded-tail":
        y[int(4.6 * sr):] = 0.0
    return y.astype(np.float32)
