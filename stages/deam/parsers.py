"""Parsers for DEAM's annotation and metadata CSVs, each tolerant of the real files' quirks:
a space after every comma, the 13-column 2015 static file whose header has the typo
`valence_ max_mean`, CRLF and space-padded copies, wide dynamic CSVs with NaN tails, and
metadata files with a different id header per year and ragged rows. A parser returns a
DataFrame plus the lines it could not use in `df.attrs["problems"]`; a header that is not a
DEAM header raises `AnnotationFormatError`.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from emoprep.pipeline.lazy import np, pd
from emoprep.stages.common.text_table import cell_at, column_name, decode, parse_id, ragged, read_rows, text_cell


class AnnotationFormatError(ValueError):
    """An annotation file whose header is not a DEAM header."""


def _rows(src: str | os.PathLike[str] | bytes, name: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped cells) of each non-blank row; a file the csv module cannot
    read raises AnnotationFormatError naming it."""
    data = src if isinstance(src, bytes) else Path(src).read_bytes()
    text, _ = decode(data)
    return read_rows(text, on_error=lambda line, exc: AnnotationFormatError(
        f"{name}: not readable as CSV near line {line} ({exc})"))


_ID_NAMES = ("song_id", "songid", "id")


def _to_float(cell: str) -> float:
    """A value cell → float; NaN when empty, not a number or not finite (`inf`, `1e999`)."""
    try:
        value = float(cell) if cell else math.nan
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def parse_static_csv(src: str | os.PathLike[str] | bytes, name: str = "static CSV") -> pd.DataFrame:
    """A DEAM static annotation CSV → one row per data line: `song_id`, the value columns
    under normalised names (`valence_mean`, `valence_std`, `arousal_mean`, `arousal_std`, and
    the 2015 file's min/max columns), `source_line`. Cells that are not numbers become NaN;
    lines without an integer id are skipped. Both are listed in `df.attrs["problems"]`.
    Raises AnnotationFormatError when the header lacks song_id / valence_mean / arousal_mean."""
    rows = list(_rows(src, name))
    if not rows:
        raise AnnotationFormatError(f"{name}: empty file")
    header = [column_name(c) for c in rows[0][1]]
    header = ["song_id" if h in _ID_NAMES else h for h in header]
    missing = [c for c in ("song_id", "valence_mean", "arousal_mean") if c not in header]
    if missing:
        raise AnnotationFormatError(f"{name}: no {', '.join(missing)} column in header {rows[0][1]}")
    id_col = header.index("song_id")
    value_cols = [(i, h) for i, h in enumerate(header) if i != id_col and h]
    records, problems = [], []
    for line, cells in rows[1:]:
        sid = parse_id(cell_at(cells, id_col))
        if sid is None:
            problems.append(f"{name}:{line}: no integer song id, line skipped")
            continue
        if len(cells) != len(header):
            problems.append(f"{name}:{line}: {ragged(cells, len(header))}")
        rec: dict[str, Any] = {"song_id": sid}
        for i, col in value_cols:
            cell = cells[i] if i < len(cells) else ""
            rec[col] = _to_float(cell)
            if cell and math.isnan(rec[col]) and cell.lower() != "nan":
                problems.append(f"{name}:{line}: {col}={cell!r} is not a number")
        rec["source_line"] = line
        records.append(rec)
    df = pd.DataFrame.from_records(records, columns=["song_id", *[h for _, h in value_cols], "source_line"])
    df["song_id"] = df["song_id"].astype("int64")
    df.attrs["problems"] = problems
    return df


_FRAME_COL = re.compile(r"sample_(\d+)ms")


def read_dynamic_rows(src: str | os.PathLike[str] | bytes, name: str,
                      problems: list[str]) -> tuple[list[int], Iterator[tuple[int, np.ndarray]]]:
    """A DEAM dynamic CSV (wide: `song_id,sample_15000ms,sample_15500ms,...`) as its frame
    times (ms) and an iterator of (song_id, frames) read one line at a time; missing trailing
    cells are NaN. Raises AnnotationFormatError on an unknown header; bad lines are appended
    to `problems` as they are read."""
    rows = _rows(src, name)
    first = next(rows, None)
    if first is None:
        raise AnnotationFormatError(f"{name}: empty file")
    header = [column_name(c) for c in first[1]]
    while header and not header[-1]:
        header.pop()  # a trailing delimiter on the header line
    if not header or header[0] not in _ID_NAMES:
        raise AnnotationFormatError(f"{name}: first column must be song_id, header starts {first[1][:3]}")
    times = []
    for col in header[1:]:
        m = _FRAME_COL.fullmatch(col)
        if not m:
            raise AnnotationFormatError(f"{name}: column {col!r} is not sample_<ms>ms")
        times.append(int(m.group(1)))
    return times, _dynamic_values(rows, len(times), name, problems)


def _dynamic_values(rows: Iterable[tuple[int, list[str]]], n: int, name: str,
                    problems: list[str]) -> Iterator[tuple[int, np.ndarray]]:
    for line, cells in rows:
        sid = parse_id(cells[0])
        if sid is None:
            problems.append(f"{name}:{line}: no integer song id, line skipped")
            continue
        cells = cells[1:]
        if len(cells) > n:
            if any(cells[n:]):
                problems.append(f"{name}:{line}: {len(cells) - n} cells beyond the last frame column ignored")
            cells = cells[:n]
        row = np.full(n, np.nan)
        try:
            row[: len(cells)] = np.array([c or "nan" for c in cells], dtype=np.float64)
        except ValueError:
            row[: len(cells)] = [_to_float(c) for c in cells]
            problems.append(f"{name}:{line}: cells that are not numbers read as NaN")
        if np.isinf(row).any():
            row[np.isinf(row)] = np.nan
            problems.append(f"{name}:{line}: infinite values read as NaN")
        yield sid, row


def parse_dynamic_csv(src: str | os.PathLike[str] | bytes, name: str = "dynamic CSV") -> pd.DataFrame:
    """The same file as a DataFrame indexed by song_id whose columns are the frame times in
    ms (dense: for small files and tests; the stage keeps per-song arrays)."""
    problems: list[str] = []
    times, rows = read_dynamic_rows(src, name, problems)
    ids, values = [], []
    for sid, row in rows:
        ids.append(sid)
        values.append(row)
    df = pd.DataFrame(np.vstack(values) if values else np.zeros((0, len(times))),
                      index=pd.Index(ids, dtype="int64", name="song_id"), columns=times)
    df.attrs["problems"] = problems
    return df


def frame_grid(times_ms: Iterable[int]) -> tuple[int, int]:
    """(first frame ms, step ms) of a regular frame grid; raises AnnotationFormatError otherwise."""
    t = np.asarray(list(times_ms), dtype=np.int64)
    if len(t) == 0:
        raise AnnotationFormatError("no frame columns")
    if len(t) == 1:
        return int(t[0]), 500
    steps = np.diff(t)
    if steps[0] <= 0 or not np.all(steps == steps[0]):
        raise AnnotationFormatError("frame columns are not evenly spaced")
    return int(t[0]), int(steps[0])


_META_TITLE = ("songtitle", "title", "track", "trackname")


def parse_metadata_csv(src: str | os.PathLike[str] | bytes, name: str = "metadata CSV") -> pd.DataFrame:
    """Best effort: `song_id`, `metadata_year`, `artist`, `title`, `genre` from a DEAM metadata
    CSV (headers `song_id` / `Id` / `id`, ragged rows, embedded tabs). Never raises: what does
    not parse is listed in `df.attrs["problems"]`."""
    cols = ["song_id", "metadata_year", "artist", "title", "genre"]
    problems: list[str] = []
    m = re.search(r"(20\d\d)", name)
    year = m.group(1) if m else None
    records = []
    try:
        rows = list(_rows(src, name))
        header = [column_name(c) for c in rows[0][1]] if rows else []
        id_col = next((i for i, h in enumerate(header) if h in _ID_NAMES), None)
        if id_col is None:
            problems.append(f"{name}: no song_id/Id/id column, file skipped")
            rows = []

        def col(*names: str) -> int | None:
            return next((header.index(n) for n in names if n in header), None)

        picks = {"artist": col("artist"), "title": col(*_META_TITLE), "genre": col("genre")}
        for line, cells in rows[1:]:
            sid = parse_id(cell_at(cells, id_col))
            if sid is None:
                problems.append(f"{name}:{line}: no integer id, line skipped")
                continue
            rec = {"song_id": sid, "metadata_year": year}
            for key, i in picks.items():
                rec[key] = text_cell(cell_at(cells, i))
            records.append(rec)
    except Exception as exc:  # noqa: BLE001 - metadata must never stop the run
        problems.append(f"{name}: unreadable ({type(exc).__name__}: {exc})")
        records = []
    df = pd.DataFrame.from_records(records, columns=cols)
    df.attrs["problems"] = problems
    return df
