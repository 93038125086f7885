"""The DEAM part of the demo dataset: a synthetic tree in the real layout (SPEC §3.1).

`write_deam_demo` writes ~20 songs that carry every quirk the ingest must survive (mixed
rates, mono files, full songs, CRLF and space-padded static CSVs, the 13-column 2015 file
with its typo, ragged dynamic CSVs with NaN tails, a crossed static block for ids ≤ 1000, a
corrupt MP3, an annotation without audio, audio without annotation, an under-annotated
chunk, metadata with per-year id headers and ragged rows). Its music follows its labels
(`music.synth_music`): tempo and brightness rise with arousal, the mode is major for
positive valence. Byte-deterministic for a seed.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from emoprep.pipeline.atomic import atomic_write_bytes
from emoprep.stages.demo.deam_files import AUDIO_DIR, SongSpec, write_annotations
from emoprep.stages.demo.media import junk_mp3
from emoprep.stages.demo.music import EncodeJob, encode_mp3s, synth_music


def _uncorrelated_pairs(n: int, rng: np.random.Generator, max_abs_r: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """n (valence, arousal) pairs on 2–8 with |r(V, A)| ≤ max_abs_r, so a crossed block is
    visibly different from a straight one even with a handful of songs."""
    grid = np.round(np.linspace(2.0, 8.0, n), 1)
    v = rng.permutation(grid)
    for _ in range(1000):
        a = rng.permutation(grid)
        if abs(np.corrcoef(v, a)[0, 1]) <= max_abs_r:
            return v, a
    return v, a  # pragma: no cover - 1000 permutations always find one for n ≥ 6


def demo_specs(seed: int = 0) -> list[SongSpec]:
    """The demo songs (see the module docstring for the quirks each one carries)."""
    rng = np.random.default_rng(seed)
    excerpt_durations = [44.64, 45.61, 44.85, 45.02, 45.30, 44.72, 45.48, 44.95, 45.15, 45.55,
                         44.68, 45.08, 44.90, 45.40, 44.78, 45.20, 45.12]
    # (id, rate, channels) for the 7 songs of the crossed block and the 8 clean 2014 ones
    block_a = [(2, 44100, 2), (3, 44100, 1), (5, 48000, 1), (8, 44100, 1), (10, 44100, 1),
               (13, 44100, 1), (21, 44100, 1)]
    block_b = [(1001, 44100, 1), (1002, 48000, 2), (1003, 22050, 1), (1004, 16000, 1),
               (1005, 44100, 1), (1006, 44100, 1), (1007, 44100, 1), (1008, 44100, 1)]
    va, aa = _uncorrelated_pairs(len(block_a), rng)
    vb, ab = _uncorrelated_pairs(len(block_b), rng)
    specs = []
    d = iter(excerpt_durations)
    # the value arrays have one entry per song of their block
    for (sid, sr, ch), v, a in zip(block_a, va, aa, strict=True):
        specs.append(SongSpec(sid, next(d), sr, ch, float(v), float(a), "excerpt", static_crossed=True))
    for (sid, sr, ch), v, a in zip(block_b, vb, ab, strict=True):
        specs.append(SongSpec(sid, next(d), sr, ch, float(v), float(a), "excerpt"))
    specs += [
        SongSpec(1009, next(d), 44100, 1, 4.2, 6.1, "excerpt", corrupt=True),
        SongSpec(1010, 0.0, 44100, 1, 6.3, 3.4, "excerpt", audio=False),
        SongSpec(1011, 44.80, 16000, 1, 5.0, 5.0, "excerpt", static=False, dynamic=False),
        SongSpec(2001, 61.30, 44100, 2, 3.3, 6.6, "full"),
        SongSpec(2002, 97.70, 44100, 1, 6.4, 5.2, "full", nan_frames_ms=(36000, 37500, 39000)),
        SongSpec(2003, 124.80, 44100, 1, 5.8, 3.1, "full"),
    ]
    return specs


def write_deam_demo(root: Path, seed: int = 0, workers: int = 2) -> dict[str, Any]:
    """Write the demo DEAM tree under `root` (SPEC §3.1 layout); returns its ground truth.

    Deterministic: the same seed gives byte-identical files."""
    root = Path(root)
    specs = demo_specs(seed)
    jobs: list[EncodeJob] = [
        (str(root / AUDIO_DIR / f"{s.song_id}.mp3"), asdict(s), synth_music, seed * 100_003 + s.song_id)
        for s in specs if s.audio and not s.corrupt]
    encode_mp3s(jobs, workers)
    for s in specs:
        if s.corrupt:
            atomic_write_bytes(root / f"{AUDIO_DIR}/{s.song_id}.mp3", junk_mp3(seed + s.song_id, 4000))
    write_annotations(root, [s for s in specs if s.static], [s for s in specs if s.dynamic], seed,
                      crlf_1_2000=True, padded_2015=True, metadata=specs)
    return {  # no paths: the demo data's bytes must not depend on where it was written
        "seed": seed,
        "songs": {s.song_id: asdict(s) for s in specs},
        "quirks": {
            "static_crossed_ids": [s.song_id for s in specs if s.static_crossed],
            "corrupt_audio_ids": [s.song_id for s in specs if s.corrupt],
            "annotation_without_audio_ids": [s.song_id for s in specs if not s.audio],
            "audio_without_annotation_ids": [s.song_id for s in specs if s.audio and not (s.static or s.dynamic)],
            "nan_frames": {s.song_id: list(s.nan_frames_ms) for s in specs if s.nan_frames_ms},
            "static_1_2000": "CRLF line endings",
            "static_2000_2058": "13 columns, header typo 'valence_ max_mean', space-padded values",
            "dynamic": "valence.csv ragged rows, arousal.csv empty trailing cells",
            "metadata": "song_id / Id / id headers, a ragged row, an embedded tab, a short row",
        },
    }
