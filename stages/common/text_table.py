"""One reader for the ingest stages' text tables: DEAM's and PMEmo's annotation and metadata
CSVs, the FoodPics ratings export. The release files vary in the same ways whatever they
hold: encoding (BOM, Windows code pages), line endings (LF, CRLF, CR, mixed), delimiter,
header spelling (`song_id, valence_mean`, `valence_ max_mean`, `Arousal(mean)`, `Image No`),
comment rows above the header, id cells (`2.0`, ` 12 `, `0012`) and ragged rows. This module
reads those; each parser keeps its own columns, rules and problem messages.
"""
from __future__ import annotations

import codecs
import csv
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

from emoprep.stages.common.naming import nfc

DELIMITERS = (",", ";", "\t")   # sniffed from the header line, ties go to the first
HEADER_SEARCH_ROWS = 100        # a header below this many comment rows is not looked for
MAX_ID = 2 ** 53                # larger ids cannot be told apart once read as floats

T = TypeVar("T")
Row = tuple[int, list[str]]     # (1-based line number in the file, cells)


# ---- text -----------------------------------------------------------------------------
def decode(data: bytes, encodings: Sequence[str] = ("utf-8-sig",), fallback: str = "cp1252") -> tuple[str, str]:
    """(text, encoding): the first of `encodings` that decodes `data` strictly, else `fallback`
    with undecodable bytes replaced, so a table never fails on its encoding. `utf-8-sig`
    takes UTF-8 with or without a BOM; a UTF-8 BOM before text in another encoding (an
    export that mixes them) is dropped too, not read as `ï»¿` in front of the first header."""
    body = data.removeprefix(codecs.BOM_UTF8)
    for encoding in encodings:
        try:
            return (data if encoding == "utf-8-sig" else body).decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return body.decode(fallback, errors="replace"), fallback


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def lines(text: str) -> Iterator[str]:
    """The lines of `text` with their endings (LF, CRLF or CR, as `open(newline="")` gives
    them to the csv module), without copying the text (io.StringIO holds 4 bytes a char)."""
    return (m.group(0) for m in _LINE.finditer(text))


def sniff_delimiter(text: str, candidates: Sequence[str] = DELIMITERS) -> str:
    """The candidate found most often in the first non-blank line (the header)."""
    first = next((ln for ln in lines(text) if ln.strip()), "")
    return max(candidates, key=first.count) if first else candidates[0]


def read_rows(text: str, delimiter: str | None = None, *, start: int = 0, strip: bool = True,
              skip_blank: bool = True,
              on_error: Callable[[int, csv.Error], Exception] | None = None) -> Iterator[Row]:
    """(line number, cells) for each row, one row at a time (a 10x DEAM dynamic CSV as lists
    of cells would take over a GB). The delimiter is sniffed unless given; quotes, CRLF and
    CR are the csv module's. `start` skips that many physical lines (comment rows above a
    header); line numbers still count from the top of the file and name a record's last line.
    Cells are stripped unless `strip` is False; rows with only blank cells are skipped unless
    `skip_blank` is False. A file the csv module cannot read (a field over its 128 KiB limit:
    a stray quote swallowing the rest of the file) raises `on_error(line, error)`, or the
    csv.Error itself."""
    reader = csv.reader(islice(lines(text), start, None), delimiter=delimiter or sniff_delimiter(text))
    try:
        for row in reader:
            if skip_blank and not any(c.strip() for c in row):
                continue
            yield start + reader.line_num, [c.strip() for c in row] if strip else row
    except csv.Error as exc:
        if on_error is None:
            raise
        raise on_error(start + reader.line_num, exc) from None


# ---- headers --------------------------------------------------------------------------
def squash(text: Any) -> str:
    """Header key: NFC, case-folded, letters and digits only (`Image No` = `image_no`,
    `Arousal(mean)` = `arousalmean`, `song_id` = `songid`)."""
    return re.sub(r"[\W_]+", "", nfc(str(text)).casefold())


def column_name(text: str) -> str:
    """A header cell as a column name: lower case, no BOM, no whitespace anywhere
    (`' valence_ max_mean'` → `valence_max_mean`)."""
    return re.sub(r"\s+", "", text.replace("\ufeff", "")).lower()


def is_blank(cell: Any) -> bool:
    """None, NaN, or a string of whitespace."""
    if cell is None:
        return True
    if isinstance(cell, float) and cell != cell:
        return True
    return isinstance(cell, str) and not cell.strip()


def find_header_row(grid: Iterable[Sequence[Any]], column: str, limit: int = HEADER_SEARCH_ROWS) -> int | None:
    """Index of the first row (within `limit`) holding a cell that squashes like `column`:
    the header below a sheet's comment rows."""
    key = squash(column)
    for i, row in enumerate(islice(grid, limit)):
        if any(not is_blank(c) and squash(c) == key for c in row):
            return i
    return None


def find_header_line(text: str, column: str, delimiters: Sequence[str] = (";", "\t", ","),
                     limit: int = HEADER_SEARCH_ROWS) -> tuple[int, str] | None:
    """(line index, delimiter) of the first line (within `limit`) that, split by one of
    `delimiters` (tried in order), holds a field that squashes like `column`."""
    key = squash(column)
    for i, line in enumerate(islice(lines(text), limit)):
        for sep in delimiters:
            fields = next(csv.reader([line], delimiter=sep), [])
            if any(squash(f) == key for f in fields if f.strip()):
                return i, sep
    return None


# ---- cells ----------------------------------------------------------------------------
def cell_at(row: Sequence[T], index: int | None, default: T | None = None) -> T | None:
    """The row's cell at `index`; `default` for an unmapped column or a short (ragged) row."""
    return row[index] if index is not None and index < len(row) else default


def ragged(cells: Sequence[Any], n: int) -> str:
    """What is wrong with a row that does not have the header's `n` cells."""
    return f"{len(cells)} cells for {n} columns"


def text_cell(cell: str | None) -> str | None:
    """A free-text cell with its whitespace runs (embedded tabs) as one space; None when empty."""
    return (" ".join(cell.split()) or None) if cell else None


def parse_number(cell: Any) -> float | None:
    """A number cell → float, or None when empty / not a number / not finite.

    Accepts decimal commas ('6,5'), both separators ('1.234,5' / '1,234.5': the last one
    is the decimal mark) and stray spaces; a lone comma is taken as the decimal mark."""
    if cell is None or isinstance(cell, bool):
        return None
    if isinstance(cell, (int, float)) or hasattr(cell, "dtype"):
        try:
            value = float(cell)
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None
    text = re.sub(r"[\s\u00a0\u2009\u202f]", "", nfc(str(cell)))
    if "," in text and "." in text:
        text = text.replace(".", "").replace(",", ".") if text.rfind(",") > text.rfind(".") \
            else text.replace(",", "")
    elif text.count(",") == 1:
        text = text.replace(",", ".")
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", text, re.ASCII):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def parse_id(cell: Any) -> int | None:
    """An id cell → int in [0, MAX_ID): `12`, ` 12 `, `0012` (digits read exactly), `12.0`,
    `12,0`, 12, 12.0; None for anything else (empty, negative, fractional, text, too big)."""
    if isinstance(cell, str) and re.fullmatch(r"[0-9]+", nfc(cell).strip()):
        number = int(nfc(cell).strip())
        return number if number < MAX_ID else None
    value = parse_number(cell)
    if value is None or not 0 <= value < MAX_ID or value != int(value):
        return None
    return int(value)
