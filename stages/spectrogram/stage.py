"""The `spectrogram` stage: chunks → riffusion images (thesis v3) or seed 001's mel clips.

One work item per song: all its chunks are rendered together, so resume is per song while
every chunk still gets its own manifest row or reject. Chunks that are views (the default,
`chunks.materialize = false`) are cut from one decode of the song (`read_views`).

`kind = "riffusion"` (`riffusion.py`): 512-px mel image per chunk, Lanczos to `size`.
`kind = "seed001-mel"` (`seed001.py`): float32 [1, 128, 130] per chunk, one NPY shard per song.

Outputs (under the stage folder): `png/<song>/<chunk>.png` (8-bit gray, `size`²),
`fullres/<song>/<chunk>.png` (512 px, when `keep_fullres`), `mel/mel-<song>.npy` (seed001-mel).
File names are `safe_name`s of the ids, so any id maps to one safe file name and back.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from emoprep.manifests.reasons import BAD_PATH, SHORT_AUDIO, UNREADABLE_AUDIO, WRONG_SAMPLE_RATE
from emoprep.pipeline.atomic import atomic_path
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.errors import DataError
from emoprep.pipeline.lazy import np, pd
from emoprep.pipeline.paths import output_file
from emoprep.pipeline.stage import Outcome, Reject, Stage, WorkItem
from emoprep.pipeline.values import cell
from emoprep.stages.common.audio_io import AudioError
from emoprep.stages.common.audio_source import is_view, read_output_audio, read_views
from emoprep.stages.common.naming import safe_name
from emoprep.stages.spectrogram.params import SpectrogramParams
from emoprep.stages.spectrogram.riffusion import check_audio, riffusion_image, to_model_size, write_png
from emoprep.stages.spectrogram.seed001 import seed001_mel

CHUNK_COLUMNS = ("sample_id", "source_id", "modality", "start_s", "end_s", "path")
# NPY chunks (chunks.audio_format = "npy") need the rate; views (no file) name their song
OPTIONAL_CHUNK_COLUMNS = ("sample_rate", "audio_root", "audio_path", "offset_samples", "n_audio", "n_samples")
# Carried into each output row, so `labels` can read the stage whose items get tokenized:
# a chunk this stage rejects then never reaches the normalisation bounds or the split.
LABEL_COLUMNS = ("n_frames", "valence_raw", "arousal_raw")
# The libraries each kind calls (they enter its fingerprint): riffusion's transform is scipy's
# window + sparse mel and torch's FFT, seed 001's is librosa's; both decode with soundfile and
# resample with soxr.
KIND_LIBRARIES = {"riffusion": ("numpy", "scipy", "torch", "pillow", "soundfile", "soxr"),
                  "seed001-mel": ("numpy", "librosa", "soundfile", "soxr")}


# ---------------------------------------------------------------- the stage
class Spectrogram(Stage[SpectrogramParams]):
    """Chunks → spectrogram images (riffusion) or seed-001 mel arrays; one work item per song."""

    name = "spectrogram"
    version = "5"  # 2: rows carry the chunk's label columns; 3: bad-path rejects; 4: torch (MKL) FFT;
    # 5: chunk views decoded once per song
    Params = SpectrogramParams
    libraries = ("numpy", "scipy", "torch", "pillow", "soundfile", "soxr", "librosa")  # every kind's
    default_inputs = ("chunks",)
    description = "riffusion spectrogram images (224 px PNG) or seed-001 z-scored mel clips"

    def libraries_for(self, params: SpectrogramParams) -> tuple[str, ...]:
        return KIND_LIBRARIES[params.kind]

    def plan(self, ctx: StageContext[SpectrogramParams]) -> Iterable[WorkItem]:
        """One item per song. Streams the chunks manifest row group by row group when each
        song's chunks are contiguous in it (always so for manifests the runner writes: they
        are sorted by sample_id), so 10× DEAM is never held in memory as dicts."""
        names = ctx.manifest_columns("chunks")
        missing = [c for c in CHUNK_COLUMNS if c not in names]
        if missing:
            raise DataError(f"spectrogram: the chunks manifest lacks columns {missing} "
                            f"(expected {list(CHUNK_COLUMNS)}, CONTRIBUTING.md)")
        columns = list(CHUNK_COLUMNS) + [c for c in OPTIONAL_CHUNK_COLUMNS + LABEL_COLUMNS if c in names]
        chunks = (chunk for batch in ctx.iter_manifest("chunks", columns)
                  for chunk in _chunk_dicts(batch))
        if _songs_contiguous(ctx):
            return _song_items(chunks)
        groups: dict[str, list[dict[str, Any]]] = {}
        for chunk in chunks:
            groups.setdefault(_song_of(chunk), []).append(chunk)
        return [_song_item(song, items) for song, items in sorted(groups.items())]

    def process(self, item: WorkItem, ctx: ItemContext[SpectrogramParams]) -> Outcome:
        p = ctx.params
        if p.kind == "seed001-mel":
            return self._process_seed001(item, ctx)
        return self._process_riffusion(item, ctx)

    # ---- riffusion images
    def _process_riffusion(self, item: WorkItem, ctx: ItemContext[SpectrogramParams]) -> Outcome:
        p = ctx.params
        out = Outcome()
        song_dir = safe_name(item.key)
        views = _views(item.payload["chunks"], ctx)
        for chunk in item.payload["chunks"]:
            try:
                audio = _load_chunk(chunk, ctx, p.sample_rate, views)
                img, max_value = riffusion_image(audio, p)
            except AudioError as exc:
                out.rejects.append(Reject(chunk["sample_id"], exc.reason, str(exc)))
                continue
            stem = safe_name(chunk["sample_id"]) + ".png"
            png = ctx.out_dir / "png" / song_dir / stem
            write_png(png, to_model_size(img, p.size))
            fullres_path = None
            if p.keep_fullres:
                full = ctx.out_dir / "fullres" / song_dir / stem
                write_png(full, img)
                fullres_path = ctx.rel(full)
            if max_value == 0.0:
                out.counters["silent-chunks"] = out.counters.get("silent-chunks", 0) + 1
            out.rows.append({**_carry(chunk), "path": ctx.rel(png),
                             "fullres_path": fullres_path, "max_value": max_value})
        return out

    # ---- seed-001 mel clips: one shard per song, so a resumed run redoes whole songs only
    def _process_seed001(self, item: WorkItem, ctx: ItemContext[SpectrogramParams]) -> Outcome:
        p = ctx.params
        out = Outcome()
        arrays, kept = [], []
        views = _views(item.payload["chunks"], ctx)
        for chunk in item.payload["chunks"]:
            try:
                audio, sr = _load_chunk_any_rate(chunk, ctx, views)
                arrays.append(seed001_mel(audio, sr, p))
            except AudioError as exc:
                out.rejects.append(Reject(chunk["sample_id"], exc.reason, str(exc)))
                continue
            kept.append(chunk)
        if not kept:
            return out
        shard = ctx.out_dir / "mel" / f"mel-{safe_name(item.key)}.npy"
        with atomic_path(shard) as tmp:
            np.save(tmp, np.stack(arrays).astype(np.float32), allow_pickle=False)
        rel = ctx.rel(shard)
        for row, chunk in enumerate(kept):
            out.rows.append({**_carry(chunk), "path": rel, "shard": shard.name, "row": row})
        return out


def _chunk_dicts(batch: pd.DataFrame) -> Iterator[dict[str, Any]]:
    for rec in batch.to_dict("records"):
        yield {str(k): cell(v) for k, v in rec.items()}


def _song_of(chunk: dict[str, Any]) -> str:
    return str(chunk["source_id"] if isinstance(chunk["source_id"], str) else chunk["sample_id"])


def _song_item(song: str, chunks: list[dict[str, Any]]) -> WorkItem:
    return WorkItem(key=song, payload={"chunks": sorted(chunks, key=_chunk_order)})


def _songs_contiguous(ctx: StageContext[SpectrogramParams]) -> bool:
    """Are each song's rows one run in the manifest? (reads two columns only)"""
    seen: set[str] = set()
    current = None
    for batch in ctx.iter_manifest("chunks", ["sample_id", "source_id"]):
        for chunk in _chunk_dicts(batch):
            song = _song_of(chunk)
            if song != current:
                if song in seen:
                    return False
                seen.add(song)
                current = song
    return True


def _song_items(chunks: Iterable[dict[str, Any]]) -> Iterator[WorkItem]:
    """Consecutive chunks of one song → one item, as the rows stream by."""
    song = ""
    group: list[dict[str, Any]] = []
    for chunk in chunks:
        if _song_of(chunk) != song and group:
            yield _song_item(song, group)
            group = []
        song = _song_of(chunk)
        group.append(chunk)
    if group:
        yield _song_item(song, group)


def _chunk_order(chunk: dict[str, Any]) -> tuple[float, str]:
    start = chunk.get("start_s")
    return (start if start is not None else math.inf, str(chunk["sample_id"]))


def _carry(chunk: dict[str, Any]) -> dict[str, Any]:
    keys = ("sample_id", "source_id", "modality", "start_s", "end_s", *LABEL_COLUMNS)
    return {k: chunk[k] for k in keys if k in chunk}


def _chunk_path(chunk: dict[str, Any]) -> str:
    rel = chunk.get("path")
    if not isinstance(rel, str) or not rel:
        raise AudioError(UNREADABLE_AUDIO, f"{chunk['sample_id']}: the chunks manifest has no path")
    return rel


def _views(chunks: list[dict[str, Any]], ctx: ItemContext[SpectrogramParams]) -> dict[str, np.ndarray | AudioError]:
    """sample_id -> samples (or the song's AudioError) of the chunks that are views."""
    rows = [c for c in chunks if is_view(c)]
    return dict(zip((str(c["sample_id"]) for c in rows), read_views(rows, ctx.roots), strict=True))


def _load_chunk_any_rate(chunk: dict[str, Any], ctx: ItemContext[SpectrogramParams],
                         views: dict[str, np.ndarray | AudioError]) -> tuple[np.ndarray, int]:
    view = views.get(str(chunk["sample_id"]))
    if view is not None:
        if isinstance(view, AudioError):
            raise view
        return view, int(chunk["sample_rate"])
    rel = _chunk_path(chunk)
    rate = chunk.get("sample_rate")
    try:
        path = output_file(ctx.out_root, rel)
    except ValueError as exc:
        raise AudioError(BAD_PATH, f"{chunk['sample_id']}: chunks manifest path {exc}") from None
    return read_output_audio(path, rel, int(rate) if rate is not None else None)


def _load_chunk(chunk: dict[str, Any], ctx: ItemContext[SpectrogramParams], sample_rate: int,
                views: dict[str, np.ndarray | AudioError]) -> np.ndarray:
    """Samples of a chunk ready for `riffusion_image`, or AudioError naming the file."""
    audio, sr = _load_chunk_any_rate(chunk, ctx, views)
    rel = chunk["path"] or f"{chunk['audio_path']} [{chunk['sample_id']}]"
    if sr != sample_rate:
        raise AudioError(WRONG_SAMPLE_RATE, f"{rel}: sample rate {sr} Hz, the transform "
                           f"expects {sample_rate} Hz (riffusion asserts equal rates)")
    try:
        return check_audio(audio, ctx.params)
    except ValueError as exc:
        raise AudioError(SHORT_AUDIO, f"{rel}: {exc}") from None
