"""Synthetic songs for the demo trees and their MP3 files: music whose features follow its
valence and arousal (the DEAM and PMEmo demos), and the process pool that encodes them.
Byte-deterministic: samples are quantised to 16 bit before MP3 encoding, so libm
differences between machines do not leak into files.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from emoprep.pipeline.atomic import atomic_path
from emoprep.stages.demo.media import to_16bit_grid

# (MP3 path, {"valence", "arousal", "duration_s", "sample_rate", "channels"}, synthesiser
# (a module-level function with `synth_music`'s signature, so it pickles), seed)
EncodeJob = tuple[str, dict[str, Any], Callable[..., np.ndarray], int]


def _harmonics(phase: np.ndarray, n_harm: int, rolloff: float) -> np.ndarray:
    """Σ_k sin(kθ)/k^rolloff with the recurrence sin((k+1)θ) = 2cosθ·sin(kθ) − sin((k−1)θ):
    two trig calls for any number of harmonics."""
    s1 = np.sin(phase)
    two_c = 2 * np.cos(phase)
    out: np.ndarray = s1.copy()
    prev, cur = np.zeros_like(s1), s1
    for k in range(2, n_harm + 1):
        prev, cur = cur, two_c * cur - prev
        out += cur / k ** rolloff
    return out


def synth_music(valence: float, arousal: float, duration_s: float, sample_rate: int,
                channels: int, seed: int) -> np.ndarray:
    """A short piece whose features follow VA: tempo 60–160 BPM and brightness (harmonics,
    percussion) with arousal; major scale for valence ≥ 5, minor below. Returns float32
    samples on the 16-bit grid, shape (n, channels)."""
    rng = np.random.default_rng(seed)
    a01 = (arousal - 1) / 8
    n = round(duration_s * sample_rate)
    beat = 60.0 / (60 + 100 * a01)
    scale = [0, 2, 4, 5, 7, 9, 11] if valence >= 5 else [0, 2, 3, 5, 7, 8, 10]
    chords = [0, 3, 4, 0]  # I-IV-V-I or i-iv-v-i: the tonic (and so the mode) is clear
    tonic = 52 + int(rng.integers(0, 6))
    n_harm = 1 + round(5 * a01)
    rolloff = 2.2 - 1.2 * a01

    def hz(degree: int, octave: int = 0) -> float:
        midi = tonic + 12 * (degree // 7 + octave) + scale[degree % 7]
        return 440.0 * 2 ** ((midi - 69) / 12)

    melody = np.zeros(n, np.float32)
    pad = np.zeros(n, np.float32)
    perc = np.zeros(n, np.float32)
    bar = 4 * beat
    for b in range(math.ceil(duration_s / bar)):
        s0, s1 = int(b * bar * sample_rate), min(n, int((b + 1) * bar * sample_rate))
        if s0 >= n:
            break
        tt = np.arange(s1 - s0, dtype=np.float32) / sample_rate
        root = chords[b % 4]  # the chord root with partials, over a tonic pedal
        pad[s0:s1] = (_harmonics((2 * np.pi * hz(root, -1)) * tt, 3, 1.0)
                      + 0.8 * np.sin((2 * np.pi * hz(0, -1)) * tt) + 0.5 * np.sin((2 * np.pi * hz(2, -1)) * tt))
    for i in range(int(duration_s / beat) + 1):
        s0 = int(i * beat * sample_rate)
        if s0 >= n:
            break
        length = min(int(beat * sample_rate), n - s0)
        tt = np.arange(length, dtype=np.float32) / sample_rate
        deg = chords[(i // 4) % 4] + int(rng.choice([0, 2, 4]))
        f = hz(deg, 1 if rng.random() < 0.3 else 0)
        env = np.exp(-tt * (3 + 6 * a01))
        melody[s0:s0 + length] = env * _harmonics((2 * np.pi * f) * tt, n_harm, rolloff)
        hit = min(int(0.06 * sample_rate), length)
        perc[s0:s0 + hit] = rng.standard_normal(hit) * np.exp(-np.arange(hit) / (0.01 * sample_rate))
    mix = 0.45 * melody + 0.12 * pad + (0.05 + 0.3 * a01) * perc
    fade = min(n // 2, int(0.05 * sample_rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        mix[:fade] *= ramp
        mix[n - fade:] *= ramp[::-1]
    mix *= 0.8 / max(1e-9, float(np.max(np.abs(mix))))
    out = (np.stack([0.9 * mix + 0.03 * perc, 0.75 * mix - 0.03 * perc], axis=1)
           if channels == 2 else mix[:, None])
    return to_16bit_grid(out)


def _encode_mp3(job: EncodeJob) -> str:
    """Worker: synthesise one song and write it as MP3 (atomic). Returns the path."""
    import soundfile as sf

    path, spec, synth, seed = job
    audio = synth(spec["valence"], spec["arousal"], spec["duration_s"], spec["sample_rate"],
               spec["channels"], seed)
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, spec["sample_rate"], format="MP3")
    return path


def encode_mp3s(jobs: list[EncodeJob], workers: int) -> None:
    """Encode in a small process pool (MP3 encoding is the cost), longest songs first."""
    jobs = sorted(jobs, key=lambda j: -j[1]["duration_s"] * j[1]["channels"] * j[1]["sample_rate"])
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            _encode_mp3(job)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for _ in pool.map(_encode_mp3, jobs, chunksize=max(1, len(jobs) // (8 * workers))):
            pass
