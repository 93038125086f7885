"""Audio sample stages over the `deam` manifest: `clips` (thesis v1-2) and `chunks` (thesis v3).

clips: every song that fits in 46.0 s, decoded once, downmixed by channel mean, resampled to
44.1 kHz (soxr HQ) and zero-padded to exactly 2,028,600 samples; VA = the static annotation
(1–9, after the ingest's static fix). Longer songs are rejected (`policy = "trim"` keeps
their first 46 s instead).

chunks: chunk k covers [15 + 5k, 20 + 5k) s; a last chunk with at least `pad_tail_min_s`
of audio is zero-padded to 5.0 s, a shorter tail is counted and dropped. VA = mean of the
dynamic frames whose time is in [start, end) and that have both valence and arousal (so both
means cover the same moments); a chunk with fewer than `min_frames` such frames is rejected
`under-annotated`. Each song is decoded once and yields all its chunks.

Both stages read the raw audio through `ctx.roots["deam"]` and the `audio_path` reference
of the deam manifest (a file, or a member of DEAM_audio.zip).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import pandas as pd

from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.stage import Outcome, PlannedItems, Reject, Stage, WorkItem
from emoprep.stages.common.audio_io import AUDIO_SUFFIX, AudioError, decode_mono, fit_length, write_audio
from emoprep.pipeline.columns import with_kinds

AudioFormat = Literal["flac", "npy"]

# The manifests' columns, in order, and their kinds (one Parquet type each, whatever the data).
CLIPS_KINDS = {"sample_id": "str", "source_id": "str", "modality": "int", "song_id": "int",
               "start_s": "float", "end_s": "float", "duration_s": "float", "padded_s": "float",
               "trimmed": "bool", "valence_raw": "float", "arousal_raw": "float",
               "static_fixed": "bool", "n_samples": "int", "sample_rate": "int", "path": "str"}
CHUNKS_KINDS = {"sample_id": "str", "source_id": "str", "modality": "int", "song_id": "int",
                "chunk_index": "int", "start_s": "float", "end_s": "float", "padded_s": "float",
                "n_frames": "int", "valence_raw": "float", "arousal_raw": "float",
                "n_samples": "int", "sample_rate": "int", "path": "str"}


# ---- the science, in small functions ----------------------------------------------------
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
    return chunk_spans_samples(int(round(duration_s * sample_rate)), start_s, chunk_s,
                               pad_tail_min_s, sample_rate)


def chunk_spans_samples(n_samples: int, start_s: float = 15.0, chunk_s: float = 5.0,
                        pad_tail_min_s: float = 4.5, sample_rate: int = 44100) -> tuple[list[ChunkSpan], float]:
    """`chunk_spans` for a song of `n_samples` samples at `sample_rate`."""
    first = int(round(start_s * sample_rate))
    size = int(round(chunk_s * sample_rate))
    min_tail = int(round(pad_tail_min_s * sample_rate))
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
    lo, hi = int(round(start_s * 1000)), int(round(end_s * 1000))
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


def _floats(values: Any) -> np.ndarray:
    """A manifest list (list, array, or None; NaN or None for gaps) as a float array."""
    if values is None:
        return np.zeros(0)
    return np.array([math.nan if v is None else v for v in values], dtype=float)


def _payload_list(values: Any) -> list[float | None]:
    """Floats for a work-item payload: NaN becomes None (payloads stay JSON-clean)."""
    return [None if not math.isfinite(v) else float(v) for v in _floats(values)]


def _deam_rows(ctx: Any, stage: str, columns: tuple[str, ...], optional: tuple[str, ...] = ()
               ) -> tuple[int, Iterator[Any]]:
    """The deam manifest's rows (as namedtuples of `columns` and whichever `optional` ones it
    has) streamed one row group at a time, with their number: at 10× DEAM, reading it whole
    cost the planning process ~100 MB of Arrow buffers for columns no plan uses."""
    names = ctx.manifest_columns("deam")
    missing = [c for c in columns if c not in names]
    if missing:
        raise ConfigError(f"{stage}: the deam manifest has no column(s) {', '.join(missing)}; "
                          "re-run the deam stage")
    if ctx.roots.get("deam") is None:
        raise ConfigError(f"{stage} decodes raw DEAM audio: the DEAM root must be known "
                          "(--data-root or --set deam.root=...)")
    wanted = [*columns, *(c for c in optional if c in names)]
    count = ctx.manifest_rows("deam")
    rows = (r for batch in ctx.iter_manifest("deam", wanted) for r in batch.itertuples(index=False))
    return count, rows


def _check_format(stage: str, audio_format: str) -> None:
    if audio_format not in AUDIO_SUFFIX:
        raise ConfigError(f"{stage}.audio_format must be 'flac' or 'npy', not {audio_format!r}")


def _reject(sample_id: str, reason: str, message: str, **counters: int) -> Outcome:
    return Outcome(rejects=[Reject(sample_id, reason, message)], counters=dict(counters))


# ---- clips (thesis v1-2) ----------------------------------------------------------------
class Clips(Stage):
    name = "clips"
    version = "2"  # 2: absurd rates, truncated FLAC, symlinks out of the root rejected
    libraries = ("soundfile", "soxr", "numpy")
    default_inputs = ("deam",)
    description = "46.0 s mono 44.1 kHz clips of whole songs with static VA (thesis v1-2)"

    @dataclass(frozen=True)
    class Params:
        target_s: float = 46.0
        sample_rate: int = 44100
        policy: Literal["pad", "trim"] = "pad"
        audio_format: AudioFormat = "flac"

    def plan(self, ctx: Any) -> PlannedItems:
        p = ctx.params
        if p.policy not in ("pad", "trim"):
            raise ConfigError(f"clips.policy must be 'pad' or 'trim', not {p.policy!r}")
        _check_format("clips", p.audio_format)
        count, rows = _deam_rows(ctx, "clips", ("song_id", "audio_path", "duration_s", "static_valence_raw",
                                                "static_arousal_raw"), optional=("static_fixed",))
        return PlannedItems(count, (WorkItem(key=f"deam:{int(r.song_id)}", payload={
            "song_id": int(r.song_id), "audio_path": r.audio_path, "duration_s": float(r.duration_s),
            "valence": _nan_none(r.static_valence_raw), "arousal": _nan_none(r.static_arousal_raw),
            "static_fixed": bool(getattr(r, "static_fixed", False))}) for r in rows))

    def process(self, item: WorkItem, ctx: Any) -> Outcome:
        p, q = item.payload, ctx.params
        sid = item.key
        ref = p["audio_path"]
        if p["valence"] is None or p["arousal"] is None:
            return _reject(sid, "missing-static", f"{ref}: song {p['song_id']} has no usable static "
                           "valence/arousal annotation (needed for clips)")
        target_n = int(round(q.target_s * q.sample_rate))
        if q.policy == "pad" and p["duration_s"] * q.sample_rate > target_n + 0.5:
            return _too_long(sid, ref, p["duration_s"], q.target_s)
        try:
            dec = decode_mono(Path(ctx.roots["deam"]), ref, q.sample_rate)
        except AudioError as exc:
            return _reject(sid, exc.reason, exc.message)
        if not np.any(dec.samples):
            return _silent(sid, ref)
        n = len(dec.samples)
        if n > target_n and q.policy == "pad":
            return _too_long(sid, ref, dec.duration_s, q.target_s)
        out = Path(ctx.out_dir) / "audio" / f"{p['song_id']}{AUDIO_SUFFIX[q.audio_format]}"
        write_audio(out, fit_length(dec.samples, target_n), q.sample_rate, q.audio_format)
        kept = min(n, target_n)
        row = {
            "sample_id": sid, "source_id": sid, "modality": 1, "song_id": p["song_id"],
            "start_s": 0.0, "end_s": kept / q.sample_rate, "duration_s": dec.duration_s,
            "padded_s": (target_n - kept) / q.sample_rate, "trimmed": n > target_n,
            "valence_raw": p["valence"], "arousal_raw": p["arousal"], "static_fixed": p["static_fixed"],
            "n_samples": target_n, "sample_rate": q.sample_rate, "path": ctx.rel(out),
        }
        return Outcome(rows=[row], counters={"trimmed": 1} if n > target_n else {})

    def finalize(self, ctx: Any, rows: pd.DataFrame, rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
        return with_kinds(rows, CLIPS_KINDS), rejects


def _silent(sid: str, ref: str) -> Outcome:
    # Digital silence from end to end is a broken or placeholder file, never a song: its
    # blank spectrograms would teach a model that silence carries the song's emotion.
    return _reject(sid, "silent-audio", f"{ref}: every decoded sample is 0 (a broken or placeholder file)")


def _too_long(sid: str, ref: str, duration_s: float, target_s: float) -> Outcome:
    return _reject(sid, "longer-than-target", f"{ref}: {duration_s:.3f} s does not fit in {target_s} s "
                   "without truncation (policy = 'trim' keeps it, cut)")


def _nan_none(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


# ---- chunks (thesis v3) -------------------------------------------------------------------
class Chunks(Stage):
    name = "chunks"
    version = "3"  # 3: absurd rates, truncated FLAC, symlinks out of the root rejected
    libraries = ("soundfile", "soxr", "numpy")
    default_inputs = ("deam",)
    description = "5.0 s chunks from 15 s with the mean dynamic VA of their frames (thesis v3)"

    @dataclass(frozen=True)
    class Params:
        start_s: float = 15.0
        chunk_s: float = 5.0
        pad_tail_min_s: float = 4.5
        min_frames: int = 8
        sample_rate: int = 44100
        audio_format: AudioFormat = "flac"

    def plan(self, ctx: Any) -> PlannedItems:
        q = ctx.params
        _check_format("chunks", q.audio_format)
        if not (0 < q.pad_tail_min_s <= q.chunk_s):
            raise ConfigError(f"chunks.pad_tail_min_s must be in (0, chunk_s], not {q.pad_tail_min_s}")
        count, rows = _deam_rows(ctx, "chunks", ("song_id", "audio_path", "dyn_valence", "dyn_arousal",
                                                 "dyn_t0_s", "dyn_hz"))
        return PlannedItems(count, (WorkItem(key=f"deam:{int(r.song_id)}", payload={
            "song_id": int(r.song_id), "audio_path": r.audio_path,
            "dyn_valence": _payload_list(r.dyn_valence), "dyn_arousal": _payload_list(r.dyn_arousal),
            "dyn_t0_s": float(r.dyn_t0_s), "dyn_hz": float(r.dyn_hz)}) for r in rows))

    def process(self, item: WorkItem, ctx: Any) -> Outcome:
        p, q = item.payload, ctx.params
        song, ref = p["song_id"], p["audio_path"]
        dv, da = pair_frames(_floats(p["dyn_valence"]), _floats(p["dyn_arousal"]))
        if not (np.isfinite(dv) & np.isfinite(da)).any():
            return _reject(item.key, "missing-dynamic", f"{ref}: song {song} has no dynamic frame "
                           "with both valence and arousal annotated (needed for chunks)")
        try:
            dec = decode_mono(Path(ctx.roots["deam"]), ref, q.sample_rate)
        except AudioError as exc:
            return _reject(item.key, exc.reason, exc.message)
        if not np.any(dec.samples):
            return _silent(item.key, ref)
        spans, dropped = chunk_spans_samples(len(dec.samples), q.start_s, q.chunk_s,
                                             q.pad_tail_min_s, q.sample_rate)
        counters = {"short-tail-dropped": 1} if dropped > 0 else {}
        if not spans:
            return _reject(item.key, "too-short", f"{ref}: {dec.duration_s:.3f} s is shorter than "
                           f"{q.start_s} s + {q.pad_tail_min_s} s: no chunk", **counters)
        times = frame_times_ms(p["dyn_t0_s"], p["dyn_hz"], len(dv))
        nominal = int(round(q.chunk_s * p["dyn_hz"]))
        size = int(round(q.chunk_s * q.sample_rate))
        out = Outcome(counters=counters)
        for sp in spans:
            cid = f"deam:{song}:{sp.index}"
            v, a, n_frames = chunk_va(dv, da, times, sp.start_s, sp.end_s)
            if n_frames < q.min_frames:
                out.rejects.append(Reject(cid, "under-annotated",
                                          f"{ref} chunk {sp.index} [{sp.start_s:g}, {sp.end_s:g}) s: "
                                          f"{n_frames} of {nominal} frames have both valence and "
                                          f"arousal, {q.min_frames} needed"))
                continue
            path = Path(ctx.out_dir) / "audio" / str(song) / f"{song}_{sp.index:03d}{AUDIO_SUFFIX[q.audio_format]}"
            write_audio(path, fit_length(dec.samples[sp.first:sp.first + sp.n_audio], size),
                        q.sample_rate, q.audio_format)
            out.rows.append({
                "sample_id": cid, "source_id": f"deam:{song}", "modality": 1, "song_id": song,
                "chunk_index": sp.index, "start_s": sp.start_s, "end_s": sp.end_s,
                "padded_s": sp.n_pad / q.sample_rate, "n_frames": n_frames,
                "valence_raw": v, "arousal_raw": a, "n_samples": size, "sample_rate": q.sample_rate,
                "path": ctx.rel(path),
            })
            if sp.n_pad:
                out.counters["padded-chunks"] = out.counters.get("padded-chunks", 0) + 1
        return out

    def finalize(self, ctx: Any, rows: pd.DataFrame, rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
        return with_kinds(rows, CHUNKS_KINDS), rejects
