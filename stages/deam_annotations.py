"""A DEAM copy's annotations combined into one entry per song: static rows from both static
files, dynamic valence/arousal on one frame grid, metadata (best effort).

Repeated rows with the same values are merged and counted; repeated rows that disagree are
*conflicts*, kept per annotation kind. A static conflict makes only that song's static
annotation unusable and a dynamic conflict only its dynamic one, so a song can still serve
the stage that needs the other kind (`clips` reads static, `chunks` dynamic).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from emoprep.errors import DataError
from emoprep.stages.audio_io import AudioError, read_ref_bytes, split_ref
from emoprep.stages.deam_csv import (AnnotationFormatError, frame_grid, parse_dynamic_csv,
                                     parse_metadata_csv, parse_static_csv)
from emoprep.stages.deam_layout import DeamLayout

STATIC_RANGE = (1.0, 9.0)
DYNAMIC_RANGE = (-1.0, 1.0)


@dataclass
class Annotations:
    """Every annotation of a DEAM copy, one entry per song id."""

    static: pd.DataFrame                 # index song_id; valence_mean, ..., static_source
    dynamic: dict[str, pd.DataFrame]     # "valence"/"arousal": index song_id, columns ms
    t0_ms: int = 15000
    step_ms: int = 500
    metadata: pd.DataFrame = field(default_factory=pd.DataFrame)
    static_conflicts: dict[int, str] = field(default_factory=dict)   # song id -> what disagrees
    dynamic_conflicts: dict[int, str] = field(default_factory=dict)  # song id -> what disagrees
    identical_duplicates: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    mentions: dict[int, list[str]] = field(default_factory=dict)  # song id -> files naming it

    def ids(self) -> set[int]:
        out = set(self.static.index)
        for df in self.dynamic.values():
            out |= set(df.index)
        return {int(i) for i in out}


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
    for sid, grp in dup.groupby("song_id", sort=True):
        vals = grp[value_cols].to_numpy(dtype=float)
        same = np.all(np.isclose(vals, vals[0], equal_nan=True, rtol=0, atol=1e-9))
        where = ", ".join(grp["static_source"])
        if same:
            identical[int(sid)] = len(grp) - 1
        else:
            conflicts[int(sid)] = f"static rows disagree ({where})"
    out = df.drop_duplicates("song_id", keep="first").set_index("song_id").sort_index()
    return out, conflicts, identical


def combine_dynamic(frame: pd.DataFrame, label: str) -> tuple[pd.DataFrame, dict[int, str], dict[int, int]]:
    """One dynamic row per song id (as `combine_static` for repeated rows)."""
    conflicts: dict[int, str] = {}
    identical: dict[int, int] = {}
    dup_mask = frame.index.duplicated(keep=False)
    if dup_mask.any():
        for sid in sorted(set(frame.index[dup_mask])):
            vals = frame.loc[[sid]].to_numpy(dtype=float)
            if np.all(np.isclose(vals, vals[0], equal_nan=True, rtol=0, atol=1e-9)):
                identical[int(sid)] = len(vals) - 1
            else:
                conflicts[int(sid)] = f"{label} has {len(vals)} rows that disagree"
    out = frame[~frame.index.duplicated(keep="first")].sort_index()
    return out, conflicts, identical


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
                  identical: dict[int, int]) -> tuple[dict[str, pd.DataFrame], tuple[int, int]]:
    """Both dynamic files, one row per song each, and their common (first ms, step ms) grid.
    Conflicts of either file are collected per song in `conflicts`."""
    dynamic: dict[str, pd.DataFrame] = {}
    grids = {}
    for dim, ref in sorted(layout.dynamic.items()):
        name = _ref_name(ref)
        try:
            df = parse_dynamic_csv(read_ref_bytes(layout.root, ref), name)
            grids[dim] = frame_grid(df.columns)
        except (AnnotationFormatError, AudioError) as exc:
            raise DataError(f"{ref}: {exc}") from None
        problems += df.attrs.get("problems", [])
        df, c, i = combine_dynamic(df, name)
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
              dynamic: dict[str, pd.DataFrame]) -> dict[int, list[str]]:
    """Song id -> names of the annotation files that have a row for it."""
    mentions: dict[int, list[str]] = {}
    for src in static.get("static_source", pd.Series(dtype=str)).items():
        mentions.setdefault(int(src[0]), []).append(src[1].split(":")[0])
    for dim, df in dynamic.items():
        for sid in df.index:
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


def align_dynamic(dynamic: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Both dimensions on the same song index and frame columns (missing cells NaN), so a
    song's frames are one row lookup and per-song statistics are vectorised."""
    if not dynamic:
        return {}
    ids = sorted(set().union(*[set(df.index) for df in dynamic.values()]))
    cols = sorted(set().union(*[set(df.columns) for df in dynamic.values()]))
    index = pd.Index(ids, dtype="int64", name="song_id")
    return {dim: dynamic[dim].reindex(index=index, columns=cols) if dim in dynamic
            else pd.DataFrame(np.nan, index=index, columns=cols)
            for dim in ("valence", "arousal")}


def song_frames(ann: Annotations, sid: int) -> tuple[np.ndarray, np.ndarray]:
    """(valence, arousal) frames of one song on the common grid, trailing NaNs removed."""
    if not ann.dynamic or sid not in ann.dynamic["valence"].index:
        return np.zeros(0), np.zeros(0)
    pos = ann.dynamic["valence"].index.get_loc(sid)
    v = ann.dynamic["valence"].to_numpy(dtype=float)[pos]
    a = ann.dynamic["arousal"].to_numpy(dtype=float)[pos]
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
