"""Reading upstream audio: the one place that knows how stages read audio another stage made.

- `read_samples`: the samples and rate of an audio file an upstream stage wrote (anything
  libsndfile reads, or the float32 NPY whose rate is in its manifest row): the decoder every
  reader below and the EnCodec tokenizer use;
- `read_output_audio`: such a file as mono float32, with the reject reason when it cannot be
  used (the spectrogram stage's chunks);
- `audio_payloads` / `load_mono`: the song-level audio stages (`salient`, `features`) get their
  audio whatever made it;
- `is_view` / `read_views`: segments that are views of their song (a `chunks` row without a
  file: `audio_root`, `audio_path`, `offset_samples`, `n_audio`, `n_samples`, `sample_rate`),
  cut from one decode of the song exactly as the stage that planned them cut them.

A source is an upstream stage named in the recipe. Two kinds are read:

- an ingest manifest (`deam`, `pmemo`, `generic` with audio): rows name a raw file by
  `audio_path`, relative to that dataset's root (`ctx.roots[<stage>]`); decoded with
  `audio_io.decode_mono` (one read per file, channel mean, soxr HQ);
- an audio-producing stage (`clips`, `chunks`, `salient`): rows name their FLAC (or NPY) by
  `path`, relative to the output root, or (`chunks` and `clips` by default) are views that
  name their song and the samples they take (`VIEW_COLUMNS`), read with `load_view`.

Each row becomes a plain payload carrying what the stages pass on: ids, the dataset (the
sample-id prefix), raw VA (a clip's `valence_raw`, else the song's static value) and the
dynamic frames when the row has them.
"""
from __future__ import annotations

import io
import math
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from emoprep.manifests.reasons import (
    EMPTY_AUDIO,
    NON_FINITE_AUDIO,
    PATH_OUTSIDE_ROOT,
    UNREADABLE_AUDIO,
)
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import np
from emoprep.pipeline.values import cell, finite_float
from emoprep.stages.common.audio_io import ZIP_SEP, AudioError, Decoded, decode_mono, fit_length, read_ref_bytes
from emoprep.stages.common.dataset_files import resolve_in_root


def read_samples(source: Path | bytes, suffix: str, npy_rate: int | None) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 samples and the rate of an audio file an upstream stage wrote,
    from its path or its bytes: anything libsndfile reads, or a float32 NPY ([frames] or
    [frames, channels]) whose rate is its manifest row's `sample_rate` (`npy_rate`).
    ValueError, or the decoder's own error, when the content is not such audio."""
    if suffix.lower() == ".npy":
        data = np.load(source if isinstance(source, Path) else io.BytesIO(source), allow_pickle=False)
        if data.ndim not in (1, 2) or not np.issubdtype(data.dtype, np.floating):
            raise ValueError(f"expected float samples [frames] or [frames, channels], "
                             f"got {data.dtype} {data.shape}")
        if npy_rate is None:
            raise ValueError("an NPY chunk needs the manifest's sample_rate column")
        return data.reshape(len(data), -1).astype(np.float32, copy=False), int(npy_rate)
    import soundfile as sf

    data, sr = sf.read(str(source) if isinstance(source, Path) else io.BytesIO(source),
                       dtype="float32", always_2d=True)
    return data, int(sr)


def read_output_audio(path: Path, name: str | None = None,
                      npy_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples and rate of an upstream audio file; channels are averaged.
    AudioError (`unreadable-audio`, `empty-audio`, `non-finite-audio`) if unusable.

    Messages name the file as `name` (the manifest's path relative to the output root), so
    rejects do not depend on where the output folder lives."""
    name = name or str(path)
    if not Path(path).is_file():
        raise AudioError(UNREADABLE_AUDIO, f"{name}: no such file (the chunks output lost "
                         "it; re-run `emoprep run --stage chunks --force`)")
    try:
        data, sr = read_samples(Path(path), Path(path).suffix, npy_rate)
    except Exception as exc:  # noqa: BLE001 - libsndfile / np.load raise several types for corrupt files
        detail = str(exc).replace(str(path), name)
        raise AudioError(UNREADABLE_AUDIO, f"{name}: cannot read audio ({detail})") from None
    if data.shape[0] == 0:
        raise AudioError(EMPTY_AUDIO, f"{name}: audio has no samples")
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise AudioError(NON_FINITE_AUDIO, f"{name}: audio contains NaN or infinite samples")
    return np.ascontiguousarray(mono), int(sr)


# The columns by which a segment row names the samples it takes from its song.
VIEW_COLUMNS = frozenset({"audio_root", "audio_path", "offset_samples", "n_audio", "n_samples", "sample_rate"})


def is_view(row: Mapping[Any, Any]) -> bool:
    """A segment row with no file of its own that names its song (a `chunks` view)."""
    path, ref = row.get("path"), row.get("audio_path")
    return not (isinstance(path, str) and path) and isinstance(ref, str) and bool(ref)


def view_dataset(view: Mapping[Any, Any]) -> str:
    """The dataset whose root a view's `audio_path` is under (`deam` when the row omits it)."""
    return str(view.get("audio_root") or "deam")


def song_sha256(root: Path, view: Mapping[Any, Any]) -> str:
    """SHA-256 of the song file a view is cut from (what keys its tokens). AudioError."""
    import hashlib

    return hashlib.sha256(read_ref_bytes(Path(root), str(view["audio_path"]))).hexdigest()


def load_view(view: Mapping[str, Any], roots: Mapping[str, Any], sample_rate: int) -> Decoded:
    """One view at `sample_rate`: cut at the rate it was planned at, then resampled as
    `decode_mono` resamples the materialised file (soxr HQ, round(n × rate / source rate)
    samples), so a consumer at another rate gets what it got from the file. AudioError."""
    import soxr

    got = read_views([dict(view)], roots)[0]
    if isinstance(got, AudioError):
        raise got
    rate = int(view["sample_rate"])
    if rate == sample_rate:
        return Decoded(got, rate, rate, len(got), 1)
    y = soxr.resample(got, rate, sample_rate, quality="HQ")
    return Decoded(fit_length(y, round(len(got) * sample_rate / rate)), sample_rate, rate, len(got), 1)


def read_views(rows: Sequence[Mapping[Any, Any]], roots: Mapping[str, Any]) -> list[np.ndarray | AudioError]:
    """The samples of each view row, in order: each song is decoded once (`decode_mono` at the
    row's `sample_rate`, as the planning stage decoded it), then every row takes
    samples [offset, offset + n_audio) zero-padded to `n_samples`. A song that cannot be
    decoded gives its AudioError for each of its rows."""
    songs: dict[tuple[str, str, int], np.ndarray | AudioError] = {}
    out: list[np.ndarray | AudioError] = []
    for row in rows:
        key = (view_dataset(row), str(row["audio_path"]), int(row["sample_rate"]))
        if key not in songs:
            root = roots.get(key[0])
            if root is None:
                songs[key] = AudioError(UNREADABLE_AUDIO, f"{key[1]}: the {key[0]} root is unknown "
                                        f"(--data-root or --set {key[0]}.root=DIR)")
            else:
                try:
                    songs[key] = decode_mono(Path(root), key[1], key[2]).samples
                except AudioError as exc:
                    songs[key] = exc
        song = songs[key]
        if isinstance(song, AudioError):
            out.append(song)
            continue
        first = int(row["offset_samples"])
        out.append(fit_length(song[first:first + int(row["n_audio"])], int(row["n_samples"])))
    return out


def _frames(values: Any) -> list[float | None] | None:
    if values is None or (isinstance(values, float) and math.isnan(values)):
        return None
    return [None if v is None or not math.isfinite(float(v)) else float(v) for v in values]


def row_va(rec: Mapping[Hashable, Any]) -> tuple[float | None, float | None]:
    """A row's raw VA: its own `valence_raw`/`arousal_raw` (clips, chunks), else the song's
    static value (`static_valence_raw`, ingest manifests)."""
    for v_col, a_col in (("valence_raw", "arousal_raw"), ("static_valence_raw", "static_arousal_raw")):
        if v_col in rec or a_col in rec:
            return finite_float(rec.get(v_col)), finite_float(rec.get(a_col))
    return None, None


def audio_payloads(ctx: StageContext[Any], sources: tuple[str, ...], stage: str) -> list[dict[str, Any]]:
    """One payload per row of each source manifest, sorted by sample id within a source.
    Raises ConfigError when a source has neither `audio_path` nor `path`, or when a raw
    source's dataset root is unknown."""
    out: list[dict[str, Any]] = []
    for source in sources:
        df = ctx.input_manifest(source)
        if set(df.columns) >= VIEW_COLUMNS:  # segments (chunks, clips): views, or files if materialised
            if "modality" in df.columns:
                df = df[df["modality"] == 1]
            for rec in sorted(df.to_dict("records"), key=lambda r: str(r["sample_id"])):
                if is_view(rec):
                    if ctx.roots.get(view_dataset(rec)) is None:
                        raise ConfigError(f"{stage} reads views of {source}: the {view_dataset(rec)} root "
                                          "must be known (--data-root or --set <dataset>.root=DIR)")
                    p = _payload(rec, source, "view", str(rec["audio_path"]))
                    p["view"] = {c: cell(rec.get(c)) for c in VIEW_COLUMNS}
                    out.append(p)
                else:
                    out.append(_payload(rec, source, "out", str(rec["path"])))
            continue
        if "audio_path" in df.columns:
            if ctx.roots.get(source) is None:
                raise ConfigError(f"{stage} reads raw {source} audio: the {source} root must be known "
                                  f"(--data-root or --set {source}.root=DIR)")
            kind, col = "raw", "audio_path"
        elif "path" in df.columns:
            kind, col = "out", "path"
        else:
            raise ConfigError(f"{stage}: the {source} manifest names no audio (no audio_path or path "
                              "column); choose an ingest or audio stage as source")
        if "modality" in df.columns:
            df = df[df["modality"] == 1]
        out.extend(_payload(rec, source, kind, str(rec[col]))
                   for rec in sorted(df.to_dict("records"), key=lambda r: str(r["sample_id"])))
    seen: dict[str, str] = {}
    for p in out:
        if p["sample_id"] in seen:
            raise ConfigError(f"{stage}: sources {seen[p['sample_id']]!r} and {p['source']!r} both hold "
                              f"{p['sample_id']}; list each item's source once in {stage}.sources")
        seen[p["sample_id"]] = p["source"]
    return out


def _payload(rec: Mapping[Hashable, Any], source: str, kind: str, ref: str) -> dict[str, Any]:
    sid = str(rec["sample_id"])
    v, a = row_va(rec)
    p: dict[str, Any] = {
        "sample_id": sid, "source_id": str(rec.get("source_id") or sid),
        "dataset": sid.split(":", 1)[0], "source": source, "kind": kind, "ref": ref,
        "valence_raw": v, "arousal_raw": a,
        "start_s": finite_float(rec.get("start_s")) or 0.0,
        "sample_rate": int(rec["sample_rate"]) if finite_float(rec.get("sample_rate")) else None,
    }
    dv, da = _frames(rec.get("dyn_valence")), _frames(rec.get("dyn_arousal"))
    if dv is not None and da is not None and finite_float(rec.get("dyn_hz")):
        p.update(dyn_valence=dv, dyn_arousal=da, dyn_t0_s=float(rec["dyn_t0_s"]), dyn_hz=float(rec["dyn_hz"]))
    return p


def load_mono(p: dict[str, Any], ctx: ItemContext[Any], sample_rate: int) -> Decoded:
    """The payload's audio as mono float32 at `sample_rate`. Raises AudioError."""
    if p["kind"] == "view":
        return load_view(p["view"], ctx.roots, sample_rate)
    if p["kind"] == "raw":
        root = Path(ctx.roots[p["source"]])
        return decode_mono(root, on_disk_ref(root, p["ref"]), sample_rate)
    if p["ref"].endswith(".npy"):
        return _load_npy(Path(ctx.out_root), p, sample_rate)
    return decode_mono(Path(ctx.out_root), p["ref"], sample_rate)


def on_disk_ref(root: Path, ref: str) -> str:
    """The reference as the file is named on disk: manifests hold NFC names, a copy unpacked
    on macOS has NFD ones (zip members and absent files are returned unchanged; the decoder
    reports them). Raises AudioError for a path leading out of the root."""
    if ZIP_SEP in ref:
        return ref
    try:
        path = resolve_in_root(root, ref)
    except ValueError as exc:
        raise AudioError(PATH_OUTSIDE_ROOT, f"{ref}: {exc}") from None
    except OSError:
        return ref
    return path.relative_to(root).as_posix()


def _load_npy(out_root: Path, p: dict[str, Any], sample_rate: int) -> Decoded:
    """An NPY output (float32, channels averaged) at the rate its manifest row records."""
    import soxr

    rate = p.get("sample_rate")
    if not rate:
        raise AudioError(UNREADABLE_AUDIO, f"{p['ref']}: NPY audio without a sample_rate column")
    data = read_ref_bytes(out_root, p["ref"])  # AudioError path-outside-root for '..', symlinks
    try:
        frames, _ = read_samples(data, ".npy", int(rate))
    except (OSError, ValueError) as exc:
        raise AudioError(UNREADABLE_AUDIO, f"{p['ref']}: cannot read ({type(exc).__name__})") from None
    x = frames[:, 0] if frames.shape[1] == 1 else frames.mean(axis=1, dtype=np.float32)
    if not len(x):
        raise AudioError(EMPTY_AUDIO, f"{p['ref']}: no samples")
    y = x if rate == sample_rate else soxr.resample(x, rate, sample_rate, quality="HQ")
    n_out = round(len(x) * sample_rate / rate)
    return Decoded(fit_length(y, n_out), sample_rate, rate, len(x), 1)
