"""DEAM trees for the static-fix tests: real annotation files (the 5-column static CSV, the
13-column 2015 file, wide dynamic CSVs) for a chosen number of songs, with one release block
crossed (or none), songs next to the 1000/1001 boundary whose static valence ≈ arousal, and
static/dynamic noise like DEAM's (straight r ≈ 0.95 per dimension, valence and arousal
correlated). Every song gets the same one-second MP3, so the `deam` stage runs fast."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from emoprep.stages.demo.deam_files import (
    AUDIO_DIR,
    DYNAMIC_DIR,
    SONG_LEVEL,
    STATIC_1,
    STATIC_2,
    SongSpec,
    dynamic_csvs,
    static_csv_1_2000,
    static_csv_2015,
)
from tests.helpers.deam import mp3

RELEASES = {"2013": (1, 1000), "2014": (1001, 2000), "2015": (2001, 2058)}
# DEAM's ids: 744 of 2–1000 (2013), 1001–2000 (2014), 2001–2058 (2015) = 1,802 songs
DEAM_IDS = np.concatenate([np.unique(np.round(np.linspace(2, 1000, 744)).astype(int)),
                           np.arange(1001, 2059)])
BOUNDARY_IDS = (999, 1000, 1001, 1002)  # static valence ≈ arousal: they vote at random


def tree_ids(n: int, seed: int = 0) -> list[int]:
    """`n` DEAM ids: the four boundary songs plus songs drawn from 2013 in DEAM's proportion
    (41 %, at least 3) and the rest from 2014–2015."""
    if n >= len(DEAM_IDS):
        return [int(i) for i in DEAM_IDS]
    rng = np.random.default_rng(seed)
    low = np.setdiff1d(DEAM_IDS[DEAM_IDS <= 1000], BOUNDARY_IDS)
    high = np.setdiff1d(DEAM_IDS[DEAM_IDS > 1000], BOUNDARY_IDS)
    n_low = max(3, round(0.41 * (n - len(BOUNDARY_IDS))))
    picked = [*BOUNDARY_IDS, *rng.choice(low, n_low, replace=False),
              *rng.choice(high, n - len(BOUNDARY_IDS) - n_low, replace=False)]
    return sorted(int(i) for i in picked)


def write_audit_tree(root: Path, n: int, crossed: tuple[int, int] | None, seed: int = 0) -> list[int]:
    """Write the tree; songs with lo ≤ id ≤ hi of `crossed` have their static columns crossed.
    Returns the song ids."""
    ids = tree_ids(n, seed)
    rng = np.random.default_rng(seed + 1)
    static, dynamic = [], []
    for sid in ids:
        v = float(rng.uniform(1.8, 8.2))
        a = v + rng.uniform(-0.05, 0.05) if sid in BOUNDARY_IDS else 5 + 0.55 * (v - 5) + rng.normal(0, 1.3)
        v, a = round(v, 2), round(float(np.clip(a, 1.1, 8.9)), 2)
        is_crossed = crossed is not None and crossed[0] <= sid <= crossed[1]
        static.append(SongSpec(sid, 45.0, 44100, 2, v, a, "excerpt", static_crossed=is_crossed))
        # the dynamic ratings: the static value compressed to 80 % on [-1, 1] plus noise
        dv, da = (0.8 * (x - 5) / 4 + rng.normal(0, 0.1) for x in (v, a))
        dynamic.append(SongSpec(sid, 45.0, 44100, 2, 5 + 4 * dv, 5 + 4 * da, "excerpt"))
    ann = root / SONG_LEVEL
    ann.mkdir(parents=True, exist_ok=True)
    (ann / STATIC_1).write_bytes(static_csv_1_2000([s for s in static if s.song_id <= 2000], seed, crlf=False))
    (ann / STATIC_2).write_bytes(static_csv_2015([s for s in static if s.song_id > 2000], seed))
    val, aro = dynamic_csvs(dynamic, seed)
    (root / DYNAMIC_DIR).mkdir(parents=True, exist_ok=True)
    (root / DYNAMIC_DIR / "valence.csv").write_bytes(val)
    (root / DYNAMIC_DIR / "arousal.csv").write_bytes(aro)
    first = root / AUDIO_DIR / f"{ids[0]}.mp3"
    mp3(first, seconds=1.0)
    for sid in ids[1:]:
        shutil.copyfile(first, root / AUDIO_DIR / f"{sid}.mp3")
    return ids
