"""A DEAM copy's annotations combined into one entry per song: static rows from both static
files, dynamic valence/arousal on one frame grid, metadata (best effort).

Repeated rows with the same values are merged and counted; repeated rows that disagree are
*conflicts*, kept per annotation kind. A static conflict makes only that song's static
annotation unusable and a dynamic conflict only its dynamic one, so a song can still serve
the stage that needs the other kind (`clips` reads static, `chunks` dynamic).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from emoprep.pipeline.errors import DataError
from emoprep.pipeline.lazy import np, pd
from emoprep.stages.common.audio_io import AudioError, read_ref_bytes, split_ref
from emoprep.stages.deam.layout import DeamLayout
from emoprep.stages.deam.parsers import (
    AnnotationFormatError,
    frame_grid,
    parse_metadata_csv,
    parse_static_csv,
    read_dynamic_rows,
)

STATIC_RANGE = (1.0, 9.0)
DYNAMIC_RANGE = (-1.0, 1.0)


@dataclass
class Annotations:
    """Every annotation of a DEAM copy, one entry per song id."""

    static: pd.DataFrame                 # index song_id; valence_mean, ..., static_source
    # "valence"/"arousal": song id -> frames on the (t0_ms, step_ms) grid, trailing NaNs
    # trimmed. Per-song arrays, not a songs × longest-song matrix: DEAM's 58 full songs run
    # to 1,257 frames where the other 1,744 have 60, so a dense table is ~20× the data.
    dynamic: dict[str, dict[int, np.ndarray]]
    t0_ms: int = 15000
    step_ms: int = 500
    metadata: pd.DataFrame = field(default_factory=lambda: pd.DataFrame())
    static_conflicts: dict[int, str] = field(default_factory=dict)   # song id -> what disagrees
    dynamic_conflicts: dict[int, str] = field(default_factory=dict)  # song id -> what disagrees
    identical_duplicates: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    mentions: dict[int, list[str]] = field(default_factory=dict)  # song id -> files naming it

    def ids(self) -> set[int]:
        out = set(self.static.index)
        for frames in self.dynamic.values():
            out |= set(frames)
        return {int(i) for i in out}

    def has_dynamic(self, sid: int) -> bool:
        return any(sid in frames for frames in self.dynamic.values())


def _ref_name(ref: str) -> str:
    rel, member = split_ref(ref)
    return PurePosixPath(member or rel).name


def combine_static(frames: list[pd.DataFrame]) -> tuple[pd.DataFrame, dict[int, str], dict[int, int]]:
    """One static row per song id. Repeated rows with the same values are merged (counted);
    rows that disagree are reported as conflicts (that annotation is not used, never guessed)."""
    if not frames:
        empty = pd.DataFrame(columns=["valence_mean", "valence_std", "arousal_mean", "arousal_std",
                                      "static_source"], index=pd.Index([], dtype="int64", name="song_id"))
        return empty, {}, {}
    df = pd.concat(frames, ignore_index=True)
    value_cols = [c for c in ("valence_mean", "valence_std", "arousal_mean", "arousal_std") if c in df]
    conflicts: dict[int, str] = {}
    identical: dict[int, int] = {}
    dup = df[df.duplicated("song_id", keep=False)]
    for sid, grp in dup.groupby(dup["song_id"], sort=True):
        vals = grp[value_cols].to_numpy(dtype=float)
        same = np.all(np.isclose(vals, vals[0], equal_nan=True, rtol=0, atol=1e-9))
        where = ", ".join(grp["static_source"])
        if same:
            identical[int(sid)] = len(grp) - 1
        else:
            conflicts[int(sid)] = f"static rows disagree ({where})"
    out = df.drop_duplicates("song_id", keep="first").set_index("song_id").sort_index()
    return out, conflicts, identical



def trim_frames(row: np.ndarray) -> np.ndarray:
    """`row` without its trailing NaNs (a copy: the parser's row buffer is not kept)."""
    annotated = np.flatnonzero(~np.isnan(row))
    return np.array(row[: annotated[-1] + 1 if annotated.size else 0], dtype=float)


def _padded(row: np.ndarray, n: int) -> np.ndarray:
    return row if len(row) == n else np.concatenate([row, np.full(n - len(row), np.nan)])


def _same_frames(a: np.ndarray, b: np.ndarray) -> bool:
    n = max(len(a), len(b))
    return bool(np.all(np.isclose(_padded(a, n), _padded(b, n), equal_nan=True, rtol=0, atol=1e-9)))


def combine_dynamic(rows: Iterable[tuple[int, np.ndarray]],
                    label: str) -> tuple[dict[int, np.ndarray], dict[int, str], dict[int, int]]:
    """One frame array per song id (as `combine_static` for repeated rows): the first row
    of an id is kept; repeats that agree are counted, repeats that disagree are conflicts."""
    frames: dict[int, np.ndarray] = {}
    repeats: dict[int, list[np.ndarray]] = {}
    for sid, row in rows:
        row = trim_frames(row)
        if int(sid) in frames:
            repeats.setdefault(int(sid), []).append(row)
        else:
            frames[int(sid)] = row
    conflicts: dict[int, str] = {}
    identical: dict[int, int] = {}
    for sid, others in sorted(repeats.items()):
        if all(_same_frames(frames[sid], o) for o in others):
            identical[sid] = len(others)
        else:
            conflicts[sid] = f"{label} has {len(others) + 1} rows that disagree"
    return dict(sorted(frames.items())), conflicts, identical


def _load_static(layout: DeamLayout, problems: list[str]) -> list[pd.DataFrame]:
    """Each static file as rows with a `static_source` (`file.csv:line`) column."""
    statics = []
    for ref in layout.static:
        name = _ref_name(ref)
        try:
            df = parse_static_csv(read_ref_bytes(layout.root, ref), name)
        except (AnnotationFormatError, AudioError) as exc:
            raise DataError(f"{ref}: {exc}") from None
        problems += df.attrs.get("problems", [])
        df["static_source"] = [f"{name}:{ln}" for ln in df["source_line"]]
        statics.append(df.drop(columns=["source_line"]))
    return statics


def _load_dynamic(layout: DeamLayout, problems: list[str], conflicts: dict[int, str],
                  identical: dict[int, int]) -> tuple[dict[str, dict[int, np.ndarray]], tuple[int, int]]:
    """Both dynamic files, one frame array per song each, and their common (first ms, step ms)
    grid. Conflicts of either file are collected per song in `conflicts`."""
    dynamic: dict[str, dict[int, np.ndarray]] = {}
    grids = {}
    for dim, ref in sorted(layout.dynamic.items()):
        name = _ref_name(ref)
        try:
            times, rows = read_dynamic_rows(read_ref_bytes(layout.root, ref), name, problems)
            grids[dim] = frame_grid(times)
            df, c, i = combine_dynamic(rows, name)
        except (AnnotationFormatError, AudioError) as exc:
            raise DataError(f"{ref}: {exc}") from None
        for sid, msg in c.items():
            conflicts[sid] = f"{conflicts[sid]}; {msg}" if sid in conflicts else msg
        for sid, n in i.items():
            identical[sid] = identical.get(sid, 0) + n
        dynamic[dim] = df
    grid = (15000, 500)
    if grids:
        if len(set(grids.values())) > 1:
            raise DataError(f"dynamic valence/arousal CSVs use different frame grids: {grids}")
        grid = next(iter(grids.values()))
    return dynamic, grid


def _mentions(layout: DeamLayout, static: pd.DataFrame,
              dynamic: dict[str, dict[int, np.ndarray]]) -> dict[int, list[str]]:
    """Song id -> names of the annotation files that have a row for it."""
    mentions: dict[int, list[str]] = {}
    sources = static.get("static_source", pd.Series(dtype=str))
    for sid, source in zip(sources.index.tolist(), sources.tolist(), strict=True):
        mentions.setdefault(int(sid), []).append(source.split(":")[0])
    for dim, frames in dynamic.items():
        for sid in frames:
            mentions.setdefault(int(sid), []).append(_ref_name(layout.dynamic[dim]))
    return mentions


def _load_metadata(layout: DeamLayout, problems: list[str]) -> pd.DataFrame:
    """Metadata indexed by song id (first file wins), or an empty frame; never raises."""
    metas = []
    for ref in layout.metadata:
        name = _ref_name(ref)
        try:
            data = read_ref_bytes(layout.root, ref)
        except AudioError as exc:
            problems.append(str(exc))
            continue
        df = parse_metadata_csv(data, name)
        problems += df.attrs.get("problems", [])
        metas.append(df)
    return (pd.concat(metas, ignore_index=True).drop_duplicates("song_id").set_index("song_id")
            if metas else pd.DataFrame())


def load_annotations(layout: DeamLayout) -> Annotations:
    """Parse the static, dynamic and metadata files of `layout`.

    Raises DataError when a static or dynamic file is not in the DEAM format (its header is
    wrong: the whole file is unusable, and silently dropping it would reject every song for
    the wrong reason); bad lines inside a file and anything about metadata are problems."""
    problems: list[str] = []
    static, static_conflicts, identical = combine_static(_load_static(layout, problems))
    dynamic_conflicts: dict[int, str] = {}
    dynamic, (t0, step) = _load_dynamic(layout, problems, dynamic_conflicts, identical)
    mentions = _mentions(layout, static, dynamic)
    metadata = _load_metadata(layout, problems)
    return Annotations(static=static, dynamic=align_dynamic(dynamic), t0_ms=t0, step_ms=step,
                       metadata=metadata, static_conflicts=static_conflicts,
                       dynamic_conflicts=dynamic_conflicts, identical_duplicates=identical,
                       problems=problems, mentions=mentions)


def align_dynamic(dynamic: dict[str, dict[int, np.ndarray]]) -> dict[str, dict[int, np.ndarray]]:
    """Both dimensions present (a missing file is an empty table), so lookups need no checks."""
    if not dynamic:
        return {}
    return {dim: dynamic.get(dim, {}) for dim in ("valence", "arousal")}


def song_frames(ann: Annotations, sid: int) -> tuple[np.ndarray, np.ndarray]:
    """(valence, arousal) frames of one song on the common grid, the same length, trailing
    frames without either rating removed."""
    if not ann.dynamic or not ann.has_dynamic(sid):
        return np.zeros(0), np.zeros(0)
    v, a = ann.dynamic["valence"].get(sid, np.zeros(0)), ann.dynamic["arousal"].get(sid, np.zeros(0))
    n = max(len(v), len(a))
    v, a = _padded(v, n), _padded(a, n)
    finite = np.isfinite(v) | np.isfinite(a)
    last = int(np.nonzero(finite)[0][-1]) + 1 if finite.any() else 0
    return v[:last], a[:last]


def clean_dynamic(frames: np.ndarray) -> tuple[np.ndarray, int]:
    """Frames outside [-1, 1] (infinite ones too) become NaN (they cannot be DEAM ratings);
    returns how many."""
    frames = np.asarray(frames, dtype=float).copy()
    bad = ~np.isnan(frames) & ~((frames >= DYNAMIC_RANGE[0]) & (frames <= DYNAMIC_RANGE[1]))
    frames[bad] = np.nan
    return frames, int(bad.sum())


def static_ok(valence: float, arousal: float) -> bool:
    lo, hi = STATIC_RANGE
    return all(math.isfinite(x) and lo <= x <= hi for x in (valence, arousal))
