"""`spans`: chunk counts and sample spans on the sample grid, and chunk VA over the frames
that have both dimensions."""
from __future__ import annotations

import math

import numpy as np
import pytest

from emoprep.stages.segments.spans import chunk_spans, chunk_va, frame_times_ms
from tests.helpers.segments import CHUNK_N, expected_chunks


@pytest.mark.parametrize("dur", [44.64, 44.643, 45.0, 45.605, 45.61])
def test_every_excerpt_gives_six_chunks(dur):
    spans, dropped = chunk_spans(dur)
    assert len(spans) == 6
    assert [(s.start_s, s.end_s) for s in spans] == [(15.0 + 5 * k, 20.0 + 5 * k) for k in range(6)]
    last = spans[-1]
    if dur < 45:
        assert last.n_pad == round((45 - dur) * 44100) and dropped == 0
    else:
        assert last.n_pad == 0 and dropped == pytest.approx(dur - 45, abs=1e-4)


def test_full_song_chunk_counts_follow_the_formula():
    for dur in np.linspace(19.0, 628.616, 400):
        spans, _ = chunk_spans(float(dur))
        assert len(spans) == expected_chunks(float(dur)), dur
        assert all(s.n_audio + s.n_pad == CHUNK_N for s in spans)
    assert chunk_spans(19.49)[0] == [] and len(chunk_spans(19.5)[0]) == 1


def test_chunk_va_is_the_mean_of_annotated_frames_in_the_half_open_span():
    times = frame_times_ms(15.0, 2.0, 20)            # 15.0 … 24.5 s
    frames = np.arange(20, dtype=float)
    frames[3] = np.nan
    v, a, n = chunk_va(frames, -frames, times, 15.0, 20.0)   # frames 0..9, 3 missing
    assert n == 9 and v == pytest.approx(np.mean([0, 1, 2, 4, 5, 6, 7, 8, 9])) and a == -v
    v, a, n = chunk_va(frames, frames, times, 20.0, 25.0)    # 20.0 s is in, 25.0 s would not be
    assert n == 10 and v == a == pytest.approx(14.5)
    v, a, n = chunk_va(frames, frames, times, 30.0, 35.0)
    assert n == 0 and math.isnan(v) and math.isnan(a)


def test_chunk_va_uses_only_frames_with_both_dimensions():
    """Valence on 9 frames, arousal on 8 others, 7 in common: both means cover those 7."""
    times = frame_times_ms(15.0, 2.0, 10)
    rng = np.random.default_rng(0)
    valence, arousal = rng.uniform(-1, 1, 10), rng.uniform(-1, 1, 10)
    valence[[0]] = np.nan                              # valence: 9 frames
    arousal[[1, 2]] = np.nan                           # arousal: 8 frames
    common = np.isfinite(valence) & np.isfinite(arousal)
    assert (np.isfinite(valence).sum(), np.isfinite(arousal).sum(), common.sum()) == (9, 8, 7)
    v, a, n = chunk_va(valence, arousal, times, 15.0, 20.0)
    assert n == 7
    assert v == pytest.approx(valence[common].mean()) and a == pytest.approx(arousal[common].mean())
    assert v != pytest.approx(np.nanmean(valence))     # not the mean over valence's own 9 frames


def test_real_deam_durations_give_1744_clips_and_six_chunks_per_excerpt():
    from bench.trees.deam_scale_tree import scale_specs
    specs = scale_specs(seed=0)
    fits = [s for s in specs if round(s.duration_s * 44100) <= round(46.0 * 44100)]
    assert len(fits) == 1744 and all(s.song_id <= 2000 for s in fits)
    for s in specs:
        spans, _ = chunk_spans(s.duration_s)
        assert len(spans) == (6 if s.song_id <= 2000 else expected_chunks(s.duration_s)), s
