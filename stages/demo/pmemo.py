"""A synthetic PMEmo 2019 tree in the real layout (SPEC §3.3), for the demo dataset.

Eleven music ids, ten chorus clips (12–47 s, mono but one, to keep MP3 encoding cheap) whose
music follows their labels (the DEAM demo's synthesiser), with the quirks the ingest must
survive: `metadata.csv` rows with unquoted commas in titles and artists, a song with
dynamic frames but no static label (PMEmo has 794 clips and 767 static labels), a song with
no annotation at all, a static row without audio, a corrupt MP3, an out-of-range dynamic
value, and a clip shorter than 30 s (the `salient` stage's short-song case). Static values
are on PMEmo's 0–1 scale; dynamic frames are long-format rows at 2 Hz from 15.0 s.
Byte-deterministic for a seed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoprep.pipeline.atomic import atomic_write_bytes
from emoprep.stages.demo.media import junk_mp3
from emoprep.stages.demo.music import EncodeJob, encode_mp3s, synth_music
from emoprep.stages.demo.tables import csv_bytes, fmt

AUDIO_DIR = "chorus"
METADATA_HEADER = "musicId,fileName,title,artist,album,duration,chorus_start_time,chorus_end_time"


@dataclass(frozen=True)
class ClipSpec:
    """Ground truth for one PMEmo demo id (VA on 0–1)."""

    music_id: int
    duration_s: float
    channels: int
    valence: float
    arousal: float
    audio: bool = True
    corrupt: bool = False
    static: bool = True
    dynamic: bool = True
    title: str = ""
    artist: str = ""


def demo_clips() -> list[ClipSpec]:
    """The demo ids and the quirk each carries (see the module docstring)."""
    return [
        ClipSpec(1, 31.5, 2, 0.72, 0.81, title="Hello, Goodbye", artist="Band A"),
        ClipSpec(4, 22.4, 1, 0.31, 0.22, title="Rain", artist="Solo, Artist"),  # < 30 s
        ClipSpec(5, 36.2, 1, 0.55, 0.64, title="Morning", artist="Band B"),
        ClipSpec(7, 33.0, 1, 0.18, 0.70, title="Storm, Part 2, Live", artist="Band C"),
        ClipSpec(9, 47.3, 1, 0.83, 0.35, title="Fields", artist="Band D"),
        ClipSpec(12, 30.0, 1, 0.40, 0.45, title="Echo", artist="Band E"),
        ClipSpec(15, 31.7, 1, 0.62, 0.28, static=False, title="Quiet", artist="Band F"),
        ClipSpec(20, 12.0, 1, 0.50, 0.50, static=False, dynamic=False, title="Untitled", artist="Band G"),
        ClipSpec(22, 33.0, 1, 0.25, 0.85, corrupt=True, title="Broken", artist="Band H"),
        ClipSpec(31, 40.9, 1, 0.35, 0.60, title="Night Drive", artist="Band I"),
        ClipSpec(40, 0.0, 1, 0.66, 0.52, audio=False, title="Lost", artist="Band J"),
    ]


def to_deam_scale(x01: float) -> float:
    """0–1 → 1–9, the scale the demo synthesiser reads."""
    return 1.0 + 8.0 * x01


def dynamic_rows(spec: ClipSpec, seed: int) -> list[tuple[float, float, float]]:
    """(frameTime, arousal, valence) at 2 Hz from 15.0 s while 0.2 s inside the clip: the
    static value plus a slow drift and noise, clipped to [0.01, 0.99]."""
    n = math.floor((spec.duration_s - 0.2 - 15.0) * 2) + 1
    rng = np.random.default_rng(seed)
    t = 15.0 + 0.5 * np.arange(max(n, 0))
    out = []
    for value in (spec.arousal, spec.valence):
        period, phase = rng.uniform(10, 30), rng.uniform(0, 2 * np.pi)
        x = value + 0.06 * np.sin(2 * np.pi * t / period + phase) + rng.normal(0, 0.015, len(t))
        out.append(np.round(np.clip(x, 0.01, 0.99), 6))
    return [(float(ti), float(a), float(v)) for ti, a, v in zip(t, out[0], out[1], strict=True)]


def static_csv(specs: list[ClipSpec], seed: int) -> tuple[bytes, bytes]:
    """static_annotations.csv and static_annotations_std.csv."""
    rng = np.random.default_rng(seed)
    mean, std = ["musicId,Arousal(mean),Valence(mean)"], ["musicId,Arousal(std),Valence(std)"]
    for s in specs:
        if s.static:
            mean.append(f"{s.music_id},{fmt(s.arousal)},{fmt(s.valence)}")
            std.append(f"{s.music_id},{fmt(round(rng.uniform(0.1, 0.3), 4))},{fmt(round(rng.uniform(0.1, 0.3), 4))}")
    return csv_bytes(mean), csv_bytes(std)


def dynamic_csv(specs: list[ClipSpec], seed: int) -> bytes:
    """dynamic_annotations.csv (long); one value of id 5 is out of range (1.7)."""
    lines = ["musicId,frameTime,Arousal(mean),Valence(mean)"]
    for s in specs:
        if not s.dynamic or not s.audio:
            continue
        for k, (t, a, v) in enumerate(dynamic_rows(s, seed * 1009 + s.music_id)):
            if s.music_id == 5 and k == 3:
                a = 1.7
            lines.append(f"{s.music_id},{fmt(t)},{fmt(a)},{fmt(v)}")
    return csv_bytes(lines)


def metadata_csv(specs: list[ClipSpec]) -> bytes:
    """metadata.csv as the release writes it: text fields with commas are NOT quoted."""
    lines = [METADATA_HEADER]
    for s in specs:
        song = 180.0 + 7 * s.music_id
        start = 40.0 + s.music_id
        lines.append(f"{s.music_id},{s.music_id}.mp3,{s.title},{s.artist},Album {s.music_id},"
                     f"{fmt(song)},{fmt(start)},{fmt(start + s.duration_s)}")
    return csv_bytes(lines)


def write_pmemo_demo(root: Path, seed: int = 0, workers: int = 2) -> dict[str, Any]:
    """Write the PMEmo demo tree under `root`; returns its ground truth (no paths)."""
    root = Path(root)
    specs = demo_clips()
    jobs: list[EncodeJob] = [(str(root / AUDIO_DIR / f"{s.music_id}.mp3"),
             {"valence": to_deam_scale(s.valence), "arousal": to_deam_scale(s.arousal),
              "duration_s": s.duration_s, "sample_rate": 44100, "channels": s.channels},
             synth_music, seed * 100_019 + s.music_id)
            for s in specs if s.audio and not s.corrupt]
    encode_mp3s(jobs, workers)
    for s in specs:
        if s.corrupt:
            atomic_write_bytes(root / AUDIO_DIR / f"{s.music_id}.mp3", junk_mp3(seed + 7 * s.music_id, 3000))
    mean, std = static_csv(specs, seed + 1)
    atomic_write_bytes(root / "annotations" / "static_annotations.csv", mean)
    atomic_write_bytes(root / "annotations" / "static_annotations_std.csv", std)
    atomic_write_bytes(root / "annotations" / "dynamic_annotations.csv", dynamic_csv(specs, seed + 2))
    atomic_write_bytes(root / "metadata.csv", metadata_csv(specs))
    return {
        "seed": seed,
        "clips": {s.music_id: asdict(s) for s in specs},
        "quirks": {
            "metadata_unquoted_commas": [s.music_id for s in specs if "," in s.title + s.artist],
            "dynamic_only_ids": [s.music_id for s in specs if s.audio and not s.static and s.dynamic],
            "unannotated_ids": [s.music_id for s in specs if s.audio and not s.static and not s.dynamic],
            "corrupt_audio_ids": [s.music_id for s in specs if s.corrupt],
            "annotation_without_audio_ids": [s.music_id for s in specs if not s.audio],
            "shorter_than_30s_ids": [s.music_id for s in specs if s.audio and not s.corrupt and s.duration_s < 30],
            "out_of_range_dynamic": {5: "frame 3 arousal 1.7"},
        },
    }
