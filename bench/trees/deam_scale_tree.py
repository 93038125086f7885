"""A DEAM-scale tree for benchmarks (`bench/deam_scale.py`): the real id set, durations and
rate mix of the DEAM download, with cheap audio (`cheap_tone`), copied `n_scale` times for
10× runs. Byte-deterministic for a seed; a killed build resumes. Lives outside the wheel
(only benchmarks and their tests use it); import it as `bench.trees.deam_scale_tree` with
the repository root on sys.path.
"""
from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from emoprep.pipeline.atomic import atomic_path
from emoprep.stages.demo.deam_files import AUDIO_DIR, SongSpec, write_annotations
from emoprep.stages.demo.media import to_16bit_grid
from emoprep.stages.demo.music import EncodeJob, encode_mp3s

# Real DEAM facts (public audits of the download): mono excerpts, the 16 kHz file.
REAL_MONO_IDS = (811, 990, 1203, 1218, 1230, 1248, 1286, 1373, 1708, 1825, 1866, 1867, 1869)
REAL_16K_ID = 1024


def cheap_tone(valence: float, arousal: float, duration_s: float, sample_rate: int,
               channels: int, seed: int) -> np.ndarray:
    """Cheap bench audio: a two-note chord pulsed at an arousal-dependent tempo (float32)."""
    n = round(duration_s * sample_rate)
    t = np.arange(n) / sample_rate
    f = 110.0 * 2 ** ((seed % 24) / 12)
    pulse = 0.5 + 0.5 * np.cos(2 * np.pi * (1 + 1.5 * (arousal - 1) / 8) * t)
    third = 2 ** ((4 if valence >= 5 else 3) / 12)
    x = 0.4 * pulse * (np.sin(2 * np.pi * f * t) + 0.6 * np.sin(2 * np.pi * f * third * t))
    x = to_16bit_grid(x)
    return to_16bit_grid(np.stack([x, 0.8 * x], axis=1)) if channels == 2 else x[:, None]


def scale_specs(seed: int = 0, stereo: bool = False) -> list[SongSpec]:
    """The real DEAM id set and duration ranges: 744 ids in 2–1000 (with gaps), 1001–2000
    (45 s excerpts, 44.643–45.605 s), 2001–2058 (full songs, 49.563–628.616 s); the real
    rate mix (20 × 48 kHz, 3 × 22.05 kHz, id 1024 at 16 kHz); the 13 real mono ids. Other
    files are mono too unless `stereo` (cheaper to write, same decode path)."""
    rng = np.random.default_rng(seed)
    low = {int(i) for i in rng.choice(np.arange(2, 1001), size=744, replace=False)}
    low |= {272, 811, 990}
    while len(low) > 744:
        low.remove(max(low - {272, 811, 990}))
    ids = sorted(low) + list(range(1001, 2059))
    excerpt_ids = [i for i in ids if i <= 2000]
    dur = {i: float(np.clip(rng.normal(45.052, 0.098), 44.643, 45.605)) for i in excerpt_ids}
    dur[272], dur[excerpt_ids[-7]] = 44.643, 45.605
    for i in range(2001, 2059):
        dur[i] = float(np.clip(rng.lognormal(math.log(228.78), 0.55), 49.563, 628.616))
    dur.update({2011: 628.616, 2016: 56.921, 2017: 49.563})
    pool = [i for i in range(1001, 2001) if i not in REAL_MONO_IDS and i != REAL_16K_ID]
    picks = [int(i) for i in rng.choice(pool, size=23, replace=False)]
    rate = dict.fromkeys(ids, 44100)
    rate.update(dict.fromkeys(picks[:20], 48000))
    rate.update(dict.fromkeys(picks[20:], 22050))
    rate[REAL_16K_ID] = 16000
    v = np.round(np.clip(rng.normal(4.9, 1.2, len(ids)), 1.6, 8.4), 1)
    a = np.round(np.clip(0.55 * (v - 4.9) + rng.normal(4.8, 1.0, len(ids)), 1.6, 8.1), 1)
    return [SongSpec(i, round(dur[i], 3), rate[i],
                     1 if (i in REAL_MONO_IDS or not stereo) else 2, float(v[k]), float(a[k]),
                     "excerpt" if i <= 2000 else "full", static_crossed=i <= 1000)
            for k, i in enumerate(ids)]


def _same_bytes(src: Path, dst: Path) -> None:
    """`dst` holds `src`'s bytes: a hard link where the filesystem allows, else a copy."""
    if dst.exists():
        return
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def write_deam_scale_tree(root: Path, n_scale: int = 1, seed: int = 0, workers: int = 2,
                          stereo: bool = False, only_ids: Iterable[int] | None = None) -> dict[str, Any]:
    """A DEAM-scale tree: `n_scale` copies of the real id set (copy j adds 10,000·j to each
    id; its audio has copy 0's bytes (hard-linked), so 10× costs neither encoding time nor disk).
    Audio already in `root` is kept (a killed build resumes; a bench can seed copy 0 from
    a 1× tree).
    `only_ids` keeps a subset of the base ids (quick tests of the layout)."""
    root = Path(root)
    base = scale_specs(seed, stereo)
    if only_ids is not None:
        keep = set(only_ids)
        base = [s for s in base if s.song_id in keep]
    jobs: list[EncodeJob] = [
        (str(root / AUDIO_DIR / f"{s.song_id}.mp3"), asdict(s), cheap_tone, seed * 100_003 + s.song_id)
        for s in base]
    # Files are written atomically, so one that exists is whole: a killed build resumes.
    encode_mp3s([j for j in jobs if not Path(j[0]).exists()], workers)
    specs = list(base)
    for j in range(1, n_scale):
        for s in base:
            sid = s.song_id + 10_000 * j
            _same_bytes(root / AUDIO_DIR / f"{s.song_id}.mp3", root / AUDIO_DIR / f"{sid}.mp3")
            specs.append(SongSpec(**{**asdict(s), "song_id": sid}))
    # ids > 2000 of every copy go to the 13-column file, as in DEAM
    write_annotations(root, specs, specs, seed, crlf_1_2000=False, padded_2015=False, metadata=base, release=10_000)
    return {"seed": seed, "n_scale": n_scale, "n_songs": len(specs),
            "songs": {s.song_id: {"duration_s": s.duration_s, "sample_rate": s.sample_rate,
                                  "channels": s.channels, "kind": s.kind} for s in specs}}
