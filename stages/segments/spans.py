"""Chunk arithmetic: which samples and which annotation frames make up each chunk of a song.

Pure functions on numbers and arrays, no I/O: the `chunks` stage cuts songs with them and
`salient` averages a song's dynamic frames over its kept window the same way.

Chunk k covers [start_s + k·chunk_s, start_s + (k + 1)·chunk_s) s, computed on the sample
grid; a last chunk with at least `pad_tail_min_s` of audio is zero-padded, a shorter tail is
dropped. A chunk's VA is the mean of the dynamic frames whose time lies in [start, end) and
that have both valence and arousal, so both means cover the same moments.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from emoprep.pipeline.lazy import np


@dataclass(frozen=True)
class ChunkSpan:
    """Chunk `index`: [start_s, end_s) in the song; samples [first, first + n_audio) are
    audio, the remaining `n_pad` samples of the chunk are zeros."""

    index: int
    start_s: float
    end_s: float
    first: int
    n_audio: int
    n_pad: int


def chunk_spans(duration_s: float, start_s: float = 15.0, chunk_s: float = 5.0,
                pad_tail_min_s: float = 4.5, sample_rate: int = 44100) -> tuple[list[ChunkSpan], float]:
    """The chunks of a song of `duration_s` seconds, and the length (s) of a dropped tail.

    Computed on the sample grid (duration × rate rounded), so a song of exactly 45.0 s has
    six full chunks and no tail, whatever the float rounding of 45.0."""
    return chunk_spans_samples(round(duration_s * sample_rate), start_s, chunk_s,
                               pad_tail_min_s, sample_rate)


def chunk_spans_samples(n_samples: int, start_s: float = 15.0, chunk_s: float = 5.0,
                        pad_tail_min_s: float = 4.5, sample_rate: int = 44100) -> tuple[list[ChunkSpan], float]:
    """`chunk_spans` for a song of `n_samples` samples at `sample_rate`."""
    first = round(start_s * sample_rate)
    size = round(chunk_s * sample_rate)
    min_tail = round(pad_tail_min_s * sample_rate)
    avail = max(0, n_samples - first)
    full, tail = divmod(avail, size)
    spans = [ChunkSpan(k, start_s + k * chunk_s, start_s + (k + 1) * chunk_s, first + k * size, size, 0)
             for k in range(full)]
    dropped = 0.0
    if tail >= min_tail and tail > 0:
        spans.append(ChunkSpan(full, start_s + full * chunk_s, start_s + (full + 1) * chunk_s,
                               first + full * size, tail, size - tail))
    elif tail > 0:
        dropped = tail / sample_rate
    return spans, dropped


def frame_times_ms(t0_s: float, hz: float, n: int) -> np.ndarray:
    """Times (integer ms) of n annotation frames at `hz` from `t0_s` (DEAM: 2 Hz from 15 s)."""
    return np.round(t0_s * 1000 + np.arange(n) * (1000.0 / hz)).astype(np.int64)


def chunk_va(valence: np.ndarray, arousal: np.ndarray, times_ms: np.ndarray, start_s: float,
             end_s: float) -> tuple[float, float, int]:
    """(mean valence, mean arousal, frame count) over the frames with time in [start_s, end_s)
    where valence AND arousal are both annotated, so both means cover the same moments.
    The means are NaN when no such frame exists."""
    valence, arousal = np.asarray(valence, dtype=float), np.asarray(arousal, dtype=float)
    lo, hi = round(start_s * 1000), round(end_s * 1000)
    sel = (times_ms >= lo) & (times_ms < hi) & np.isfinite(valence) & np.isfinite(arousal)
    n = int(sel.sum())
    if not n:
        return math.nan, math.nan, 0
    return float(valence[sel].mean()), float(arousal[sel].mean()), n


def pair_frames(valence: np.ndarray, arousal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both frame lists on one length (the shorter padded with NaN: a missing frame)."""
    v, a = np.asarray(valence, dtype=float), np.asarray(arousal, dtype=float)
    n = max(len(v), len(a))
    return (np.pad(v, (0, n - len(v)), constant_values=math.nan),
            np.pad(a, (0, n - len(a)), constant_values=math.nan))


def float_frames(values: Iterable[float | None] | None) -> np.ndarray:
    """A manifest or payload frame list (list, array, or None; NaN or None for gaps) as a
    float array."""
    if values is None:
        return np.zeros(0)
    return np.array([math.nan if v is None else v for v in values], dtype=float)
