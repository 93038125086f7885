"""The `clips` stage (thesis v1-2): every song of the `deam` manifest as one 46.0 s clip.

Every song that fits in 46.0 s is decoded once, downmixed by channel mean, resampled to
44.1 kHz (soxr HQ) and zero-padded to exactly 2,028,600 samples; VA = the static annotation
(1–9, after the ingest's static fix). Longer songs are rejected (`policy = "trim"` keeps
their first 46 s instead).

The raw audio is read through `ctx.roots["deam"]` and the `audio_path` reference of the
deam manifest (a file, or a member of DEAM_audio.zip).

A clip is a view of its song by default (as `chunks`): its row names the song (`audio_root`,
`audio_path`, `content_hash`) and the samples it takes (`offset_samples` 0, `n_audio`, zeros
to `n_samples`); consumers cut it from one decode with `common.audio_source.read_views`.
`materialize = true` also writes the clip as a file (`path`), the bytes of earlier versions.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from emoprep.manifests.columns import ITEM_COLUMNS
from emoprep.manifests.reasons import LONGER_THAN_TARGET, MISSING_STATIC
from emoprep.pipeline.columns import ColumnKind
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import np
from emoprep.pipeline.stage import Outcome, PlannedItems, Stage, WorkItem
from emoprep.pipeline.values import finite_float
from emoprep.stages.common.audio_io import AUDIO_SUFFIX, AudioError, decode_mono, fit_length, write_audio
from emoprep.stages.segments.deam_songs import AudioFormat, check_format, deam_rows, silent

# The manifest's columns, in order, and their kinds (one Parquet type each, whatever the data).
CLIPS_KINDS: dict[str, ColumnKind] = {
    **ITEM_COLUMNS, "song_id": "int",
    "start_s": "float", "end_s": "float", "duration_s": "float", "padded_s": "float",
    "trimmed": "bool", "valence_raw": "float", "arousal_raw": "float",
    "static_fixed": "bool", "n_samples": "int", "sample_rate": "int",
    "audio_root": "str", "audio_path": "str", "content_hash": "str", "offset_samples": "int", "n_audio": "int",
    "path": "str"}


@dataclass(frozen=True)
class ClipsParams:
    target_s: float = 46.0
    sample_rate: int = 44100
    policy: Literal["pad", "trim"] = "pad"
    audio_format: AudioFormat = "flac"
    materialize: bool = False    # True: also write every clip as an audio file (`path`)


class Clips(Stage[ClipsParams]):
    name = "clips"
    version = "3"  # 3: clips are views of their song (materialize = true writes files)
    # 2: absurd rates, truncated FLAC, symlinks out of the root rejected
    libraries = ("soundfile", "soxr", "numpy")
    default_inputs = ("deam",)
    description = "46.0 s mono 44.1 kHz clips of whole songs with static VA (thesis v1-2)"
    Params = ClipsParams
    manifest_columns = CLIPS_KINDS

    def plan(self, ctx: StageContext[ClipsParams]) -> PlannedItems:
        p = ctx.params
        if p.policy not in ("pad", "trim"):
            raise ConfigError(f"clips.policy must be 'pad' or 'trim', not {p.policy!r}")
        check_format("clips", p.audio_format)
        count, rows = deam_rows(ctx, "clips", ("song_id", "audio_path", "duration_s", "static_valence_raw",
                                               "static_arousal_raw"), optional=("static_fixed", "content_hash"))
        # static VA is a float column of the deam manifest: finite_float only turns NaN into None
        return PlannedItems(count, (WorkItem(key=f"deam:{int(r.song_id)}", payload={
            "song_id": int(r.song_id), "audio_path": r.audio_path, "duration_s": float(r.duration_s),
            "valence": finite_float(r.static_valence_raw), "arousal": finite_float(r.static_arousal_raw),
            "static_fixed": bool(getattr(r, "static_fixed", False)),
            "content_hash": getattr(r, "content_hash", None)}) for r in rows))

    def process(self, item: WorkItem, ctx: ItemContext[ClipsParams]) -> Outcome:
        p, q = item.payload, ctx.params
        sid = item.key
        ref = p["audio_path"]
        if p["valence"] is None or p["arousal"] is None:
            return Outcome.rejected(sid, MISSING_STATIC, f"{ref}: song {p['song_id']} has no usable static "
                                    "valence/arousal annotation (needed for clips)")
        target_n = round(q.target_s * q.sample_rate)
        if q.policy == "pad" and p["duration_s"] * q.sample_rate > target_n + 0.5:
            return _too_long(sid, ref, p["duration_s"], q.target_s)
        try:
            dec = decode_mono(Path(ctx.roots["deam"]), ref, q.sample_rate)
        except AudioError as exc:
            return Outcome.rejected(sid, exc.reason, exc.message)
        if not np.any(dec.samples):
            return silent(sid, ref)
        n = len(dec.samples)
        if n > target_n and q.policy == "pad":
            return _too_long(sid, ref, dec.duration_s, q.target_s)
        rel = None
        if q.materialize:
            out = Path(ctx.out_dir) / "audio" / f"{p['song_id']}{AUDIO_SUFFIX[q.audio_format]}"
            write_audio(out, fit_length(dec.samples, target_n), q.sample_rate, q.audio_format)
            rel = ctx.rel(out)
        kept = min(n, target_n)
        row = {
            "sample_id": sid, "source_id": sid, "modality": 1, "song_id": p["song_id"],
            "start_s": 0.0, "end_s": kept / q.sample_rate, "duration_s": dec.duration_s,
            "padded_s": (target_n - kept) / q.sample_rate, "trimmed": n > target_n,
            "valence_raw": p["valence"], "arousal_raw": p["arousal"], "static_fixed": p["static_fixed"],
            "n_samples": target_n, "sample_rate": q.sample_rate, "audio_root": "deam", "audio_path": ref,
            "content_hash": p["content_hash"], "offset_samples": 0, "n_audio": kept, "path": rel,
        }
        return Outcome(rows=[row], counters={"trimmed": 1} if n > target_n else {})


def _too_long(sid: str, ref: str, duration_s: float, target_s: float) -> Outcome:
    return Outcome.rejected(sid, LONGER_THAN_TARGET, f"{ref}: {duration_s:.3f} s does not fit in {target_s} s "
                            "without truncation (policy = 'trim' keeps it, cut)")
