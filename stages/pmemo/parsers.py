"""Parsers for PMEmo 2019's annotation and metadata CSVs (SPEC §3.3).

The files, as public copies of the release have them:

- `annotations/static_annotations.csv`: `musicId,Arousal(mean),Valence(mean)`, one row per
  song, values in [0, 1] (767 of the 794 songs); `static_annotations_std.csv` has
  `Arousal(std)` / `Valence(std)`.
- `annotations/dynamic_annotations.csv`: long format, `musicId,frameTime,Arousal(mean),
  Valence(mean)`, one row per song and frame, frames at 2 Hz from 15.0 s (the first 15 s
  were discarded by the annotation protocol).
- `metadata.csv`: `musicId,fileName,title,artist,album,duration,chorus_start_time,
  chorus_end_time`; some titles, artists and albums hold commas that are not quoted, so a
  row can have more cells than the header. Metadata is best effort: such a row keeps its id
  and the numeric columns at its end, its text columns are left empty, and nothing fails.

Headers are matched case- and punctuation-insensitively (`Arousal(mean)` = `arousal_mean`).
A parser returns plain dicts keyed by music id plus a list of problems (lines it could not
use), never raises on bad lines; only a file whose header is not a PMEmo header raises
`PmemoFormatError`.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from typing import Any

from emoprep.pipeline.lazy import np
from emoprep.stages.common.text_table import cell_at, decode, parse_id, ragged, read_rows, squash

T0_S = 15.0   # the first dynamic frame (PMEmo discards the first 15 s)
HZ = 2.0      # dynamic frames per second
FRAME_TOLERANCE_S = 0.01  # a frameTime this close to the 2 Hz grid is on it
# PMEmo's choruses last under a minute; a frameTime beyond an hour is a broken cell, and
# honouring it would allocate a frame array as long as the number says.
MAX_FRAME_TIME_S = 3600.0

METADATA_NUMERIC = {"duration": "song_duration_s", "chorusstarttime": "chorus_start_s",
                    "chorusendtime": "chorus_end_s"}
METADATA_TEXT = {"filename": "file_name", "title": "title", "artist": "artist", "album": "album"}


class PmemoFormatError(ValueError):
    """An annotation file whose header is not a PMEmo header."""


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else GB18030 (PMEmo's titles are often Chinese), else
    cp1252 with replacement: a metadata file never fails on its encoding."""
    return decode(data, ("utf-8-sig", "gb18030"))[0]


def _annotation_rows(text: str, name: str) -> list[tuple[int, list[str]]]:
    """The non-blank rows of an annotation file: unreadable CSV is a PmemoFormatError naming it."""
    rows = list(read_rows(text, ",", on_error=lambda _, exc: PmemoFormatError(
        f"{name}: not readable as CSV ({exc})")))
    if not rows:
        raise PmemoFormatError(f"{name}: empty file")
    return rows


def parse_float(cell: str | None) -> float:
    """A number cell → float; empty or not a number → NaN."""
    try:
        return float(cell) if cell else math.nan
    except ValueError:
        return math.nan


def parse_seconds(cell: str | None) -> float:
    """Seconds from `83.5`, `1:23.5` or `0:01:23`; NaN when it is neither."""
    if not cell:
        return math.nan
    if ":" not in cell:
        return parse_float(cell)
    parts = cell.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return math.nan
    total = 0.0
    for v in values:
        total = total * 60 + v
    return total


def _columns(header: list[str], wanted: dict[str, str], name: str) -> dict[str, int]:
    keys = [squash(h) for h in header]
    missing = [k for k in wanted if k not in keys]
    if missing:
        raise PmemoFormatError(f"{name}: header {header} lacks {', '.join(wanted[k] for k in missing)}")
    return {wanted[k]: keys.index(k) for k in wanted}


@dataclass
class StaticTable:
    """Static values per music id (`valence`, `arousal`, NaN when unparseable), ids whose
    repeated rows disagree (`conflicts`: id → what differs), and skipped lines."""

    values: dict[int, dict[str, float]] = field(default_factory=dict)
    conflicts: dict[int, str] = field(default_factory=dict)
    merged_duplicates: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def parse_static(text: str, name: str, kind: str = "mean") -> StaticTable:
    """`static_annotations.csv` (kind "mean") or `static_annotations_std.csv` (kind "std")."""
    rows = _annotation_rows(text, name)
    wanted = {"musicid": "musicId", f"arousal{kind}": f"Arousal({kind})", f"valence{kind}": f"Valence({kind})"}
    cols = _columns(rows[0][1], wanted, name)
    out = StaticTable()
    for line, cells in rows[1:]:
        sid = parse_id(cell_at(cells, cols["musicId"], ""))
        if sid is None:
            out.problems.append(f"{name} line {line}: musicId {cell_at(cells, cols['musicId'], '')!r} is not an id")
            continue
        rec = {"valence": parse_float(cell_at(cells, cols[f"Valence({kind})"], "")),
               "arousal": parse_float(cell_at(cells, cols[f"Arousal({kind})"], ""))}
        _merge(out, sid, rec, f"{name} line {line}")
    return out


def _merge(table: StaticTable, sid: int, rec: dict[str, float], where: str) -> None:
    """Keep the first row of an id; an identical repeat is merged, a different one is a conflict."""
    old = table.values.get(sid)
    if old is None:
        table.values[sid] = rec
    elif _same(old, rec):
        table.merged_duplicates[sid] = table.merged_duplicates.get(sid, 0) + 1
    else:
        table.conflicts.setdefault(sid, f"rows for musicId {sid} disagree ({where})")


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


@dataclass
class DynamicTable:
    """Per music id, valence and arousal frames on the 2 Hz grid from `T0_S` (NaN where a
    frame is missing); ids whose repeated frames disagree; skipped lines."""

    valence: dict[int, np.ndarray] = field(default_factory=dict)
    arousal: dict[int, np.ndarray] = field(default_factory=dict)
    conflicts: dict[int, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def frame_index(time_s: float, t0_s: float = T0_S, hz: float = HZ) -> int | None:
    """Index of a frame time on the grid t0 + k / hz, or None when off the grid, before t0
    or after MAX_FRAME_TIME_S."""
    if not math.isfinite(time_s) or time_s > MAX_FRAME_TIME_S:
        return None
    k = round((time_s - t0_s) * hz)
    if k < 0 or abs(time_s - (t0_s + k / hz)) > FRAME_TOLERANCE_S:
        return None
    return int(k)


def parse_dynamic(text: str, name: str) -> DynamicTable:
    """`dynamic_annotations.csv` (long) → frames per id on the 2 Hz grid from 15.0 s.

    A line whose frameTime is not on that grid, or whose id is not an id, is skipped and
    listed; two lines for one frame with different values make the song's dynamic
    annotation a conflict (the stage then does not use it)."""
    rows = _annotation_rows(text, name)
    wanted = {"musicid": "musicId", "frametime": "frameTime", "arousalmean": "Arousal(mean)",
              "valencemean": "Valence(mean)"}
    cols = _columns(rows[0][1], wanted, name)
    frames: dict[int, dict[int, tuple[float, float]]] = {}
    out = DynamicTable()
    for line, cells in rows[1:]:
        sid = parse_id(cell_at(cells, cols["musicId"], ""))
        t = parse_float(cell_at(cells, cols["frameTime"], ""))
        k = frame_index(t)
        if sid is None or k is None:
            what = "musicId" if sid is None else "frameTime"
            why = "an id" if sid is None else f"on the {HZ:g} Hz grid from {T0_S:g} s to {MAX_FRAME_TIME_S:g} s"
            out.problems.append(f"{name} line {line}: {what} {cell_at(cells, cols[what], '')!r} is not {why}")
            continue
        va = (parse_float(cell_at(cells, cols["Valence(mean)"], "")),
              parse_float(cell_at(cells, cols["Arousal(mean)"], "")))
        song = frames.setdefault(sid, {})
        if k in song and not _same_pair(song[k], va):
            out.conflicts.setdefault(sid, f"two rows for musicId {sid} at frameTime {t:g} s disagree "
                                          f"({name} line {line})")
        song.setdefault(k, va)
    for sid, song in frames.items():
        n = max(song) + 1
        v, a = np.full(n, np.nan), np.full(n, np.nan)
        for k, (fv, fa) in song.items():
            v[k], a[k] = fv, fa
        out.valence[sid], out.arousal[sid] = v, a
    return out


def _same_pair(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


@dataclass
class MetadataTable:
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def parse_metadata(text: str, name: str = "metadata.csv") -> MetadataTable:
    """`metadata.csv` → per music id: file_name, title, artist, album (text) and
    song_duration_s, chorus_start_s, chorus_end_s (seconds). Never raises.

    A row with more cells than the header (an unquoted comma in a text field) is anchored at
    both ends: the columns before the first text column are read from the start, those
    after the last text column from the end, and the text columns in between, which cannot
    be told apart, are left empty (`metadata_issue` says why, `metadata_text` keeps their
    cells as written). A short row leaves its missing columns empty."""
    out = MetadataTable()
    try:
        rows = list(read_rows(text, ",", strip=False))
    except csv.Error as exc:
        out.problems.append(f"{name}: not readable as CSV ({exc})")
        return out
    if not rows:
        return out
    keys = [squash(h) for h in rows[0][1]]
    if "musicid" not in keys:
        out.problems.append(f"{name}: no musicId column in the header {rows[0][1]}")
        return out
    text_pos = [i for i, k in enumerate(keys) if k in METADATA_TEXT]
    first_text = min(text_pos) if text_pos else len(keys)
    last_text = max(text_pos) if text_pos else -1
    for line, raw in rows[1:]:
        cells = [c.strip() for c in raw]
        aligned, issue = _align(cells, len(keys), first_text, last_text)
        rec: dict[str, Any] = dict.fromkeys((*METADATA_TEXT.values(), *METADATA_NUMERIC.values()))
        for i, key in enumerate(keys):
            cell = aligned[i]
            if key in METADATA_TEXT:
                rec[METADATA_TEXT[key]] = cell or None
            elif key in METADATA_NUMERIC:
                value = parse_seconds(cell)
                rec[METADATA_NUMERIC[key]] = value if math.isfinite(value) else None
        sid = parse_id(aligned[keys.index("musicid")] or "")
        if sid is None:
            out.problems.append(f"{name} line {line}: no usable musicId")
            continue
        rec["metadata_issue"] = f"{name} line {line}: {issue}" if issue else None
        # the text cells that could not be told apart, as written (joined by commas)
        rec["metadata_text"] = (",".join(raw[first_text:len(raw) - (len(keys) - 1 - last_text)]).strip()
                                if issue and len(cells) > len(keys) else None)
        if sid in out.rows:
            out.problems.append(f"{name} line {line}: musicId {sid} repeated; first row kept")
            continue
        out.rows[sid] = rec
    return out


def _align(cells: list[str], n: int, first_text: int, last_text: int) -> tuple[list[str | None], str | None]:
    """The row's cells on the header's n columns (see `parse_metadata`)."""
    if len(cells) == n:
        return list(cells), None
    if len(cells) < n:
        return [*cells, *([None] * (n - len(cells)))], ragged(cells, n)
    tail = n - 1 - last_text
    aligned: list[str | None] = [*cells[:first_text], *([None] * (last_text - first_text + 1)),
                                 *(cells[len(cells) - tail:] if tail else [])]
    return aligned, (f"{ragged(cells, n)} (an unquoted comma); text columns "
                     "left empty")
