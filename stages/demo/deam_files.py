"""DEAM's folder layout and its annotation files (SPEC §3.1), written from per-song ground
truth (`SongSpec`): static CSVs (the 5-column file and the 13-column 2015 file with its
header typo), wide dynamic CSVs, per-year metadata. Shared by the demo tree and the
DEAM-scale tree, which differ in songs and quirks, not in formats.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoprep.pipeline.atomic import atomic_write_bytes
from emoprep.stages.demo.tables import csv_bytes, fmt

AUDIO_DIR = "MEMD_audio"
SONG_LEVEL = "annotations/annotations averaged per song/song_level"
DYNAMIC_DIR = "annotations/annotations averaged per song/dynamic (per second annotations)"
STATIC_1 = "static_annotations_averaged_songs_1_2000.csv"
STATIC_2 = "static_annotations_averaged_songs_2000_2058.csv"
STATIC_HEADER = "song_id, valence_mean, valence_std, arousal_mean, arousal_std"
STATIC_2015_COLS = ["valence_mean", "valence_std", "valence_ max_mean", "valence_max_std",
                    "valence_min_mean", "valence_min_std", "arousal_mean", "arousal_std",
                    "arousal_max_mean", "arousal_max_std", "arousal_min_mean", "arousal_min_std"]
FRAME_T0_MS, FRAME_STEP_MS = 15000, 500
EXCERPT_FRAMES = 60  # 15.0–44.5 s


@dataclass(frozen=True)
class SongSpec:
    """What the generator put in the tree for one song id (the ground truth tests use)."""

    song_id: int
    duration_s: float           # of the audio written (0 when no audio)
    sample_rate: int
    channels: int
    valence: float              # true static valence, 1–9
    arousal: float
    kind: str                   # "excerpt" | "full"
    audio: bool = True          # an MP3 is written
    corrupt: bool = False       # the MP3 is junk
    static: bool = True         # a static row is written
    dynamic: bool = True        # dynamic rows are written
    static_crossed: bool = False  # the static row has valence/arousal swapped (DEAM's fault)
    nan_frames_ms: tuple[int, ...] = ()  # frames left empty inside the annotation


def dynamic_frames(spec: SongSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """2 Hz valence/arousal frames from 15 s: the static value mapped to [-1, 1] plus a slow
    drift (so chunks of a song differ) and noise; frames in `nan_frames_ms` are NaN."""
    if spec.kind == "excerpt":
        n = EXCERPT_FRAMES
    else:  # full songs: frames while they are 0.2 s inside the audio, at most to 626 s
        last = min(spec.duration_s - 0.2, 626.0)
        n = math.floor((last - FRAME_T0_MS / 1000) * 1000 / FRAME_STEP_MS) + 1
    rng = np.random.default_rng(seed)
    t = (FRAME_T0_MS + FRAME_STEP_MS * np.arange(n)) / 1000.0
    out = []
    for value in (spec.valence, spec.arousal):
        period, phase = rng.uniform(20, 60), rng.uniform(0, 2 * np.pi)
        drift = (value - 5) / 4 + 0.12 * np.sin(2 * np.pi * t / period + phase) + rng.normal(0, 0.03, n)
        x = np.round(np.clip(drift, -0.99, 0.99), 6)
        for ms in spec.nan_frames_ms:
            x[(ms - FRAME_T0_MS) // FRAME_STEP_MS] = np.nan
        out.append(x)
    return out[0], out[1]


def static_csv_1_2000(specs: Iterable[SongSpec], seed: int, *, crlf: bool, padded: bool = False) -> bytes:
    """The 5-column static file (header with a space after each comma)."""
    rng = np.random.default_rng(seed)
    lines: list[str | list[str]] = [STATIC_HEADER]
    for s in specs:
        vs, as_ = round(rng.uniform(0.6, 2.2), 2), round(rng.uniform(0.6, 2.2), 2)
        v, a = (s.arousal, s.valence) if s.static_crossed else (s.valence, s.arousal)
        vs, as_ = (as_, vs) if s.static_crossed else (vs, as_)
        cells = [str(s.song_id), fmt(v), fmt(vs), fmt(a), fmt(as_)]
        lines.append(cells)
    return csv_bytes(lines, eol="crlf" if crlf else "lf", pad=6 if padded else 0)


def static_csv_2015(specs: Iterable[SongSpec], seed: int, *, crlf: bool = False, padded: bool = True) -> bytes:
    """The 13-column 2015 file, header typo `valence_ max_mean` included."""
    rng = np.random.default_rng(seed)
    lines: list[str | list[str]] = ["song_id, " + ", ".join(STATIC_2015_COLS)]
    for s in specs:
        v, a = (s.arousal, s.valence) if s.static_crossed else (s.valence, s.arousal)
        cells = [str(s.song_id)]
        for mean in (v, a):
            std = round(rng.uniform(0.4, 1.5), 2)
            hi, lo = round(min(9, mean + rng.uniform(0.8, 2)), 1), round(max(1, mean - rng.uniform(0.8, 2)), 1)
            cells += [fmt(mean), fmt(std), fmt(hi), fmt(round(rng.uniform(0.4, 1.5), 2)),
                      fmt(lo), fmt(round(rng.uniform(0.4, 1.5), 2))]
        lines.append(cells)
    return csv_bytes(lines, eol="crlf" if crlf else "lf", pad=7 if padded else 0)


def dynamic_csvs(specs: list[SongSpec], seed: int) -> tuple[bytes, bytes]:
    """valence.csv and arousal.csv, wide. Short songs have missing trailing cells: ragged
    rows in valence.csv, explicit empty cells in arousal.csv (both occur in copies)."""
    frames = {s.song_id: dynamic_frames(s, seed * 100_003 + s.song_id) for s in specs}
    width = max(len(v) for v, _ in frames.values())
    header = "song_id," + ",".join(f"sample_{FRAME_T0_MS + FRAME_STEP_MS * i}ms" for i in range(width))
    out = []
    for dim, ragged in ((0, True), (1, False)):
        lines: list[str | list[str]] = [header]
        for s in specs:
            cells = [fmt(x) for x in frames[s.song_id][dim]]
            if not ragged:
                cells += [""] * (width - len(cells))
            lines.append([str(s.song_id), *cells])
        out.append(csv_bytes(lines))
    return out[0], out[1]


def metadata_csvs(specs: list[SongSpec]) -> dict[str, bytes]:
    """metadata_2013/2014/2015.csv with their different id headers; 2014 has a ragged row
    and an embedded tab, 2015 a short row."""
    by_year: dict[str, list[SongSpec]] = {"2013": [], "2014": [], "2015": []}
    for s in specs:
        by_year["2013" if s.song_id <= 1000 else "2014" if s.song_id <= 2000 else "2015"].append(s)
    genres = ["Rock", "Pop", "Electronic", "Classical", "Jazz", "Folk", "Hip-Hop"]
    l13 = ["song_id,file_name,Artist,Song title,start of the segment (min.sec),end of the segment (min.sec),Genre"]
    l13.extend(f"{s.song_id},{s.song_id}.mp3,Artist {s.song_id},Song {s.song_id},0.3,1.15,{genres[s.song_id % 7]}"
               for s in by_year["2013"])
    l14 = ["Id,Artist,Album,Track,Genre"]
    for i, s in enumerate(by_year["2014"]):
        row = f"{s.song_id},Artist {s.song_id},Album {s.song_id},Track {s.song_id},{genres[s.song_id % 7]}"
        if i == 1:
            row += ",extra tag,another tag"  # ragged row
        if i == 2:
            row = row.replace("Track ", "Track\t")  # embedded tab
        l14.append(row)
    l15 = ["id,file_name,title,artist,album,genre"]
    for i, s in enumerate(by_year["2015"]):
        l15.append(f"{s.song_id},{s.song_id}.mp3,Title {s.song_id},Artist {s.song_id}"
                   + ("" if i == 0 else f",Album {s.song_id},{genres[s.song_id % 7]}"))
    return {f"metadata_{y}.csv": csv_bytes(lines)
            for y, lines in (("2013", l13), ("2014", l14), ("2015", l15))}


def write_annotations(root: Path, static: list[SongSpec], dynamic: list[SongSpec], seed: int, *,
                      crlf_1_2000: bool, padded_2015: bool, metadata: list[SongSpec] | None = None,
                      release: int = 10**9) -> None:
    """The static files (ids ≤ 2000 of each `release`-sized id range in the 5-column file, the
    rest in the 2015 file), the dynamic files and, if given, the metadata files under `root`."""
    atomic_write_bytes(root / SONG_LEVEL / STATIC_1, static_csv_1_2000(
        [s for s in static if s.song_id % release <= 2000], seed + 1, crlf=crlf_1_2000))
    atomic_write_bytes(root / SONG_LEVEL / STATIC_2, static_csv_2015(
        [s for s in static if s.song_id % release > 2000], seed + 2, padded=padded_2015))
    val, aro = dynamic_csvs(dynamic, seed + 3)
    atomic_write_bytes(root / DYNAMIC_DIR / "valence.csv", val)
    atomic_write_bytes(root / DYNAMIC_DIR / "arousal.csv", aro)
    for name, data in (metadata_csvs(metadata) if metadata else {}).items():
        atomic_write_bytes(root / "metadata" / name, data)
