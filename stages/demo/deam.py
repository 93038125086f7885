"""Synthetic DEAM trees in the real layout (SPEC §3.1): the demo dataset and a DEAM-scale tree.

`write_deam_demo` writes ~20 songs that carry every quirk the ingest must survive (mixed
rates, mono files, full songs, CRLF and space-padded static CSVs, the 13-column 2015 file
with its typo, ragged dynamic CSVs with NaN tails, a crossed static block for ids ≤ 1000, a
corrupt MP3, an annotation without audio, audio without annotation, an under-annotated
chunk, metadata with per-year id headers and ragged rows). Its music follows its labels:
tempo and brightness rise with arousal, the mode is major for positive valence.

`write_deam_scale_tree` writes the real id set and real durations with cheap audio, for
benchmarks. Both are byte-deterministic for a seed (samples are quantised to 16 bit before
MP3 encoding, so libm differences between machines do not leak into the files).
"""
from __future__ import annotations

import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from emoprep.pipeline.atomic import atomic_path, atomic_write_bytes

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
# Real DEAM facts (public audits of the download): mono excerpts, the 16 kHz file.
REAL_MONO_IDS = (811, 990, 1203, 1218, 1230, 1248, 1286, 1373, 1708, 1825, 1866, 1867, 1869)
REAL_16K_ID = 1024


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


# ---- audio -------------------------------------------------------------------------------
def _harmonics(phase: np.ndarray, n_harm: int, rolloff: float) -> np.ndarray:
    """Σ_k sin(kθ)/k^rolloff with the recurrence sin((k+1)θ) = 2cosθ·sin(kθ) − sin((k−1)θ):
    two trig calls for any number of harmonics."""
    s1 = np.sin(phase)
    two_c = 2 * np.cos(phase)
    out = s1.copy()
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
    n = int(round(duration_s * sample_rate))
    beat = 60.0 / (60 + 100 * a01)
    scale = [0, 2, 4, 5, 7, 9, 11] if valence >= 5 else [0, 2, 3, 5, 7, 8, 10]
    chords = [0, 3, 4, 0]  # I-IV-V-I or i-iv-v-i: the tonic (and so the mode) is clear
    tonic = 52 + int(rng.integers(0, 6))
    n_harm = 1 + int(round(5 * a01))
    rolloff = 2.2 - 1.2 * a01

    def hz(degree: int, octave: int = 0) -> float:
        midi = tonic + 12 * (degree // 7 + octave) + scale[degree % 7]
        return 440.0 * 2 ** ((midi - 69) / 12)

    melody = np.zeros(n, np.float32)
    pad = np.zeros(n, np.float32)
    perc = np.zeros(n, np.float32)
    bar = 4 * beat
    for b in range(int(math.ceil(duration_s / bar))):
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


def to_16bit_grid(x: np.ndarray) -> np.ndarray:
    """Round to the 16-bit grid and return float32: tiny libm differences between machines
    vanish, and the MP3 encoder gets float input (libsndfile's 16-bit stereo MP3 path is not
    byte-deterministic from run to run; its float path is)."""
    q = np.clip(np.round(np.asarray(x, dtype=np.float64) * 32767), -32768, 32767)
    return (q / 32768).astype(np.float32)


def cheap_tone(valence: float, arousal: float, duration_s: float, sample_rate: int,
               channels: int, seed: int) -> np.ndarray:
    """Cheap bench audio: a two-note chord pulsed at an arousal-dependent tempo (float32)."""
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    f = 110.0 * 2 ** ((seed % 24) / 12)
    pulse = 0.5 + 0.5 * np.cos(2 * np.pi * (1 + 1.5 * (arousal - 1) / 8) * t)
    third = 2 ** ((4 if valence >= 5 else 3) / 12)
    x = 0.4 * pulse * (np.sin(2 * np.pi * f * t) + 0.6 * np.sin(2 * np.pi * f * third * t))
    x = to_16bit_grid(x)
    return to_16bit_grid(np.stack([x, 0.8 * x], axis=1)) if channels == 2 else x[:, None]


def _encode_mp3(job: tuple[str, dict[str, Any], str, int]) -> str:
    """Worker: synthesise one song and write it as MP3 (atomic). Returns the path."""
    import soundfile as sf

    path, spec, synth, seed = job
    fn = synth_music if synth == "music" else cheap_tone
    audio = fn(spec["valence"], spec["arousal"], spec["duration_s"], spec["sample_rate"],
               spec["channels"], seed)
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, spec["sample_rate"], format="MP3")
    return path


def _run_jobs(jobs: list[tuple[str, dict[str, Any], str, int]], workers: int) -> None:
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


# ---- annotations -------------------------------------------------------------------------
def fmt(x: float) -> str:
    """Numbers as the DEAM CSVs print them: `3`, `3.1`, `0.94` (no trailing zeros)."""
    return f"{x:.6f}".rstrip("0").rstrip(".") if math.isfinite(x) else ""


def dynamic_frames(spec: SongSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """2 Hz valence/arousal frames from 15 s: the static value mapped to [-1, 1] plus a slow
    drift (so chunks of a song differ) and noise; frames in `nan_frames_ms` are NaN."""
    if spec.kind == "excerpt":
        n = EXCERPT_FRAMES
    else:  # full songs: frames while they are 0.2 s inside the audio, at most to 626 s
        last = min(spec.duration_s - 0.2, 626.0)
        n = int(math.floor((last - FRAME_T0_MS / 1000) * 1000 / FRAME_STEP_MS)) + 1
    rng = np.random.default_rng(seed)
    t = (FRAME_T0_MS + FRAME_STEP_MS * np.arange(n)) / 1000.0
    out = []
    for value in (spec.valence, spec.arousal):
        period, phase = rng.uniform(20, 60), rng.uniform(0, 2 * np.pi)
        x = (value - 5) / 4 + 0.12 * np.sin(2 * np.pi * t / period + phase) + rng.normal(0, 0.03, n)
        x = np.round(np.clip(x, -0.99, 0.99), 6)
        for ms in spec.nan_frames_ms:
            x[(ms - FRAME_T0_MS) // FRAME_STEP_MS] = np.nan
        out.append(x)
    return out[0], out[1]


def static_csv_1_2000(specs: Iterable[SongSpec], seed: int, *, crlf: bool, padded: bool = False) -> bytes:
    """The 5-column static file (header with a space after each comma)."""
    rng = np.random.default_rng(seed)
    lines = [STATIC_HEADER]
    for s in specs:
        vs, as_ = round(rng.uniform(0.6, 2.2), 2), round(rng.uniform(0.6, 2.2), 2)
        v, a = (s.arousal, s.valence) if s.static_crossed else (s.valence, s.arousal)
        vs, as_ = (as_, vs) if s.static_crossed else (vs, as_)
        cells = [str(s.song_id), fmt(v), fmt(vs), fmt(a), fmt(as_)]
        lines.append(",".join(c.rjust(6) for c in cells) if padded else ",".join(cells))
    eol = "\r\n" if crlf else "\n"
    return (eol.join(lines) + eol).encode()


def static_csv_2015(specs: Iterable[SongSpec], seed: int, *, crlf: bool = False, padded: bool = True) -> bytes:
    """The 13-column 2015 file, header typo `valence_ max_mean` included."""
    rng = np.random.default_rng(seed)
    lines = ["song_id, " + ", ".join(STATIC_2015_COLS)]
    for s in specs:
        v, a = (s.arousal, s.valence) if s.static_crossed else (s.valence, s.arousal)
        cells = [str(s.song_id)]
        for mean in (v, a):
            std = round(rng.uniform(0.4, 1.5), 2)
            hi, lo = round(min(9, mean + rng.uniform(0.8, 2)), 1), round(max(1, mean - rng.uniform(0.8, 2)), 1)
            cells += [fmt(mean), fmt(std), fmt(hi), fmt(round(rng.uniform(0.4, 1.5), 2)),
                      fmt(lo), fmt(round(rng.uniform(0.4, 1.5), 2))]
        lines.append(",".join(c.rjust(7) for c in cells) if padded else ",".join(cells))
    eol = "\r\n" if crlf else "\n"
    return (eol.join(lines) + eol).encode()


def dynamic_csvs(specs: list[SongSpec], seed: int) -> tuple[bytes, bytes]:
    """valence.csv and arousal.csv, wide. Short songs have missing trailing cells: ragged
    rows in valence.csv, explicit empty cells in arousal.csv (both occur in copies)."""
    frames = {s.song_id: dynamic_frames(s, seed * 100_003 + s.song_id) for s in specs}
    width = max(len(v) for v, _ in frames.values())
    header = "song_id," + ",".join(f"sample_{FRAME_T0_MS + FRAME_STEP_MS * i}ms" for i in range(width))
    out = []
    for dim, ragged in ((0, True), (1, False)):
        lines = [header]
        for s in specs:
            cells = [fmt(x) for x in frames[s.song_id][dim]]
            if not ragged:
                cells += [""] * (width - len(cells))
            lines.append(",".join([str(s.song_id), *cells]))
        out.append(("\n".join(lines) + "\n").encode())
    return out[0], out[1]


def metadata_csvs(specs: list[SongSpec]) -> dict[str, bytes]:
    """metadata_2013/2014/2015.csv with their different id headers; 2014 has a ragged row
    and an embedded tab, 2015 a short row."""
    by_year: dict[str, list[SongSpec]] = {"2013": [], "2014": [], "2015": []}
    for s in specs:
        by_year["2013" if s.song_id <= 1000 else "2014" if s.song_id <= 2000 else "2015"].append(s)
    genres = ["Rock", "Pop", "Electronic", "Classical", "Jazz", "Folk", "Hip-Hop"]
    l13 = ["song_id,file_name,Artist,Song title,start of the segment (min.sec),end of the segment (min.sec),Genre"]
    for s in by_year["2013"]:
        l13.append(f"{s.song_id},{s.song_id}.mp3,Artist {s.song_id},Song {s.song_id},0.3,1.15,{genres[s.song_id % 7]}")
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
    return {f"metadata_{y}.csv": ("\n".join(lines) + "\n").encode()
            for y, lines in (("2013", l13), ("2014", l14), ("2015", l15))}


def _write(root: Path, rel: str, data: bytes) -> None:
    atomic_write_bytes(root / rel, data)


def _write_annotations(root: Path, specs: list[SongSpec], seed: int, *, crlf_1_2000: bool,
                       padded_2015: bool) -> None:
    static = [s for s in specs if s.static]
    _write(root, f"{SONG_LEVEL}/{STATIC_1}",
           static_csv_1_2000([s for s in static if s.song_id <= 2000], seed + 1, crlf=crlf_1_2000))
    _write(root, f"{SONG_LEVEL}/{STATIC_2}",
           static_csv_2015([s for s in static if s.song_id > 2000], seed + 2, padded=padded_2015))
    val, aro = dynamic_csvs([s for s in specs if s.dynamic], seed + 3)
    _write(root, f"{DYNAMIC_DIR}/valence.csv", val)
    _write(root, f"{DYNAMIC_DIR}/arousal.csv", aro)
    for name, data in metadata_csvs(specs).items():
        _write(root, f"metadata/{name}", data)


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


# ---- the demo ------------------------------------------------------------------------------
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
    for (sid, sr, ch), v, a in zip(block_a, va, aa):
        specs.append(SongSpec(sid, next(d), sr, ch, float(v), float(a), "excerpt", static_crossed=True))
    for (sid, sr, ch), v, a in zip(block_b, vb, ab):
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
    jobs = [(str(root / AUDIO_DIR / f"{s.song_id}.mp3"), asdict(s), "music", seed * 100_003 + s.song_id)
            for s in specs if s.audio and not s.corrupt]
    _run_jobs(jobs, workers)
    for s in specs:
        if s.corrupt:  # an ID3 tag followed by junk: libsndfile cannot open it
            junk = np.random.default_rng(seed + s.song_id).bytes(4000)
            _write(root, f"{AUDIO_DIR}/{s.song_id}.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00" + junk)
    _write_annotations(root, specs, seed, crlf_1_2000=True, padded_2015=True)
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


# ---- DEAM scale --------------------------------------------------------------------------
def scale_specs(seed: int = 0, stereo: bool = False) -> list[SongSpec]:
    """The real DEAM id set and duration ranges: 744 ids in 2–1000 (with gaps), 1001–2000
    (45 s excerpts, 44.643–45.605 s), 2001–2058 (full songs, 49.563–628.616 s); the real
    rate mix (20 × 48 kHz, 3 × 22.05 kHz, id 1024 at 16 kHz); the 13 real mono ids. Other
    files are mono too unless `stereo` (cheaper to write, same decode path)."""
    rng = np.random.default_rng(seed)
    low = set(int(i) for i in rng.choice(np.arange(2, 1001), size=744, replace=False))
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
    rate = {i: 44100 for i in ids}
    rate.update({i: 48000 for i in picks[:20]})
    rate.update({i: 22050 for i in picks[20:]})
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
    jobs = [(str(root / AUDIO_DIR / f"{s.song_id}.mp3"), asdict(s), "cheap", seed * 100_003 + s.song_id)
            for s in base]
    # Files are written atomically, so one that exists is whole: a killed build resumes.
    _run_jobs([j for j in jobs if not Path(j[0]).exists()], workers)
    specs = list(base)
    for j in range(1, n_scale):
        for s in base:
            sid = s.song_id + 10_000 * j
            _same_bytes(root / AUDIO_DIR / f"{s.song_id}.mp3", root / AUDIO_DIR / f"{sid}.mp3")
            specs.append(SongSpec(**{**asdict(s), "song_id": sid}))
    # ids > 2000 of every copy go to the 13-column file, as in DEAM
    static = specs
    _write(root, f"{SONG_LEVEL}/{STATIC_1}",
           static_csv_1_2000([s for s in static if s.song_id % 10_000 <= 2000], seed + 1, crlf=False))
    _write(root, f"{SONG_LEVEL}/{STATIC_2}",
           static_csv_2015([s for s in static if s.song_id % 10_000 > 2000], seed + 2, padded=False))
    val, aro = dynamic_csvs(specs, seed + 3)
    _write(root, f"{DYNAMIC_DIR}/valence.csv", val)
    _write(root, f"{DYNAMIC_DIR}/arousal.csv", aro)
    for name, data in metadata_csvs(base).items():
        _write(root, f"metadata/{name}", data)
    return {"seed": seed, "n_scale": n_scale, "n_songs": len(specs),
            "songs": {s.song_id: {"duration_s": s.duration_s, "sample_rate": s.sample_rate,
                                  "channels": s.channels, "kind": s.kind} for s in specs}}
