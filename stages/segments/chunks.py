"""The `chunks` stage (thesis v3): 5.0 s chunks of every song of the `deam` manifest, each with
the mean dynamic VA of its frames.

Chunk k covers [15 + 5k, 20 + 5k) s; a last chunk with at least `pad_tail_min_s` of audio is
zero-padded to 5.0 s, a shorter tail is dropped (a `short-tail` reject of its chunk id). VA = mean of the dynamic frames
whose time is in [start, end) and that have both valence and arousal (so both means cover the
same moments); a chunk with fewer than `min_frames` such frames is rejected `under-annotated`.
Each song is decoded once and yields all its chunks (the arithmetic is in `spans`); every row
carries the song's decoded length in samples, so the chunks any other tail or frame rule
would give can be computed from the manifests (the report's "as published vs corrected").

The raw audio is read through `ctx.roots["deam"]` and the `audio_path` reference of the
deam manifest (a file, or a member of DEAM_audio.zip).

A chunk is a view by default, as a lhotse Cut references a Recording: its row names the song
(`audio_root`, `audio_path`, `content_hash`) and the samples it takes at `sample_rate` (`offset_samples`,
`n_audio`, then zeros to `n_samples`); `common.audio_source.read_views` cuts them from one
decode of the song exactly as here. `materialize = true` also writes each chunk as a file (`path`), the
bytes of earlier versions, for users who want the audio itself.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from emoprep.manifests.columns import ITEM_COLUMNS
from emoprep.manifests.reasons import MISSING_DYNAMIC, SHORT_TAIL, TOO_SHORT, UNDER_ANNOTATED
from emoprep.pipeline.columns import ColumnKind
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import np
from emoprep.pipeline.stage import Outcome, PlannedItems, Reject, Stage, WorkItem
from emoprep.stages.common.audio_io import AUDIO_SUFFIX, AudioError, decode_mono, fit_length, write_audio
from emoprep.stages.segments.deam_songs import AudioFormat, check_format, deam_rows, silent
from emoprep.stages.segments.spans import chunk_spans_samples, chunk_va, float_frames, frame_times_ms, pair_frames

# The manifest's columns, in order, and their kinds (one Parquet type each, whatever the data).
CHUNKS_KINDS: dict[str, ColumnKind] = {
    **ITEM_COLUMNS, "song_id": "int",
    "chunk_index": "int", "start_s": "float", "end_s": "float", "padded_s": "float",
    "n_frames": "int", "valence_raw": "float", "arousal_raw": "float",
    "n_samples": "int", "sample_rate": "int", "song_n_samples": "int",
    "audio_root": "str", "audio_path": "str", "content_hash": "str", "offset_samples": "int", "n_audio": "int",
    "path": "str"}


@dataclass(frozen=True)
class ChunksParams:
    start_s: float = 15.0
    chunk_s: float = 5.0
    pad_tail_min_s: float = 4.5
    min_frames: int = 8
    sample_rate: int = 44100
    audio_format: AudioFormat = "flac"
    materialize: bool = False    # True: also write every chunk as an audio file (`path`)


def _payload_list(values: Iterable[float | None] | None) -> list[float | None]:
    """Floats for a work-item payload: NaN becomes None (payloads stay JSON-clean)."""
    return [None if not math.isfinite(v) else float(v) for v in float_frames(values)]


class Chunks(Stage[ChunksParams]):
    name = "chunks"
    version = "5"  # 5: chunks are views of their song (materialize = true writes files)
    # 4: a dropped tail is a short-tail reject; rows carry song_n_samples
    # 3: absurd rates, truncated FLAC, symlinks out of the root rejected
    libraries = ("soundfile", "soxr", "numpy")
    default_inputs = ("deam",)
    description = "5.0 s chunks from 15 s with the mean dynamic VA of their frames (thesis v3)"
    Params = ChunksParams
    manifest_columns = CHUNKS_KINDS

    def plan(self, ctx: StageContext[ChunksParams]) -> PlannedItems:
        q = ctx.params
        check_format("chunks", q.audio_format)
        if not (0 < q.pad_tail_min_s <= q.chunk_s):
            raise ConfigError(f"chunks.pad_tail_min_s must be in (0, chunk_s], not {q.pad_tail_min_s}")
        count, rows = deam_rows(ctx, "chunks", ("song_id", "audio_path", "dyn_valence", "dyn_arousal",
                                                "dyn_t0_s", "dyn_hz"), optional=("content_hash",))
        return PlannedItems(count, (WorkItem(key=f"deam:{int(r.song_id)}", payload={
            "song_id": int(r.song_id), "audio_path": r.audio_path,
            "dyn_valence": _payload_list(r.dyn_valence), "dyn_arousal": _payload_list(r.dyn_arousal),
            "dyn_t0_s": float(r.dyn_t0_s), "dyn_hz": float(r.dyn_hz),
            "content_hash": getattr(r, "content_hash", None)}) for r in rows))

    def process(self, item: WorkItem, ctx: ItemContext[ChunksParams]) -> Outcome:
        p, q = item.payload, ctx.params
        song, ref = p["song_id"], p["audio_path"]
        dv, da = pair_frames(float_frames(p["dyn_valence"]), float_frames(p["dyn_arousal"]))
        if not (np.isfinite(dv) & np.isfinite(da)).any():
            return Outcome.rejected(item.key, MISSING_DYNAMIC, f"{ref}: song {song} has no dynamic frame "
                                    "with both valence and arousal annotated (needed for chunks)")
        try:
            dec = decode_mono(Path(ctx.roots["deam"]), ref, q.sample_rate)
        except AudioError as exc:
            return Outcome.rejected(item.key, exc.reason, exc.message)
        if not np.any(dec.samples):
            return silent(item.key, ref)
        spans, dropped = chunk_spans_samples(len(dec.samples), q.start_s, q.chunk_s,
                                             q.pad_tail_min_s, q.sample_rate)
        counters = {"short-tail-dropped": 1} if dropped > 0 else {}
        if not spans:
            return Outcome.rejected(item.key, TOO_SHORT, f"{ref}: {dec.duration_s:.3f} s is shorter than "
                                    f"{q.start_s} s + {q.pad_tail_min_s} s: no chunk", **counters)
        times = frame_times_ms(p["dyn_t0_s"], p["dyn_hz"], len(dv))
        nominal = round(q.chunk_s * p["dyn_hz"])
        size = round(q.chunk_s * q.sample_rate)
        out = Outcome(counters=counters)
        if dropped > 0:
            k = len(spans)
            out.rejects.append(Reject(f"deam:{song}:{k}", SHORT_TAIL,
                                      f"{ref} chunk {k} [{q.start_s + k * q.chunk_s:g}, "
                                      f"{q.start_s + (k + 1) * q.chunk_s:g}) s: {dropped:.3f} s of audio, "
                                      f"pad_tail_min_s = {q.pad_tail_min_s:g} s needed"))
        for sp in spans:
            cid = f"deam:{song}:{sp.index}"
            v, a, n_frames = chunk_va(dv, da, times, sp.start_s, sp.end_s)
            if n_frames < q.min_frames:
                out.rejects.append(Reject(cid, UNDER_ANNOTATED,
                                          f"{ref} chunk {sp.index} [{sp.start_s:g}, {sp.end_s:g}) s: "
                                          f"{n_frames} of {nominal} frames have both valence and "
                                          f"arousal, {q.min_frames} needed"))
                continue
            rel = None
            if q.materialize:
                path = Path(ctx.out_dir) / "audio" / str(song) / f"{song}_{sp.index:03d}{AUDIO_SUFFIX[q.audio_format]}"
                write_audio(path, fit_length(dec.samples[sp.first:sp.first + sp.n_audio], size),
                            q.sample_rate, q.audio_format)
                rel = ctx.rel(path)
            out.rows.append({
                "sample_id": cid, "source_id": f"deam:{song}", "modality": 1, "song_id": song,
                "chunk_index": sp.index, "start_s": sp.start_s, "end_s": sp.end_s,
                "padded_s": sp.n_pad / q.sample_rate, "n_frames": n_frames,
                "valence_raw": v, "arousal_raw": a, "n_samples": size, "sample_rate": q.sample_rate,
                "song_n_samples": len(dec.samples), "audio_root": "deam", "audio_path": ref,
                "content_hash": p["content_hash"],
                "offset_samples": sp.first, "n_audio": sp.n_audio, "path": rel,
            })
            if sp.n_pad:
                out.counters["padded-chunks"] = out.counters.get("padded-chunks", 0) + 1
        return out
