"""Reading a FoodPics ratings sheet: the cell parsers (numbers with decimal commas, image
numbers, categories) and the `.xlsx` / `.csv` readers that find the `Image_No` header row
below any comment rows. Kept apart from the column mapping and the keep rules because the
release's files vary (Excel or a CSV export in cp1252 with `;` and decimal commas) while
what a table *means* does not.
"""
from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoprep.pipeline.errors import DataError
from emoprep.pipeline.values import error_text
from emoprep.stages.common.naming import nfc

HEADER_SEARCH_ROWS = 100
MAX_IMAGE_NO = 2 ** 53  # larger numbers cannot be told apart once read as floats
CSV_SNIFF_BYTES = 1 << 16


# ---------------------------------------------------------------- small parsers ----
def squash(text: Any) -> str:
    """Comparison key: NFC, case-folded, letters and digits only ('Image No' = 'image_no')."""
    return re.sub(r"[\W_]+", "", nfc(str(text)).casefold())


def parse_number(cell: Any) -> float | None:
    """A rating cell → float, or None when empty / not a number / not finite.

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


def parse_image_no(cell: Any) -> int | None:
    """A sheet id cell → int in [0, MAX_IMAGE_NO) ('0001', 12, 12.0, '12,0'); None otherwise."""
    if isinstance(cell, str) and re.fullmatch(r"[0-9]+", nfc(cell).strip()):
        number = int(nfc(cell).strip())
        return number if number < MAX_IMAGE_NO else None
    value = parse_number(cell)
    if value is None or not 0 <= value < MAX_IMAGE_NO or value != int(value):
        return None
    return int(value)


def category_text(cell: Any) -> str | None:
    """A category cell → stripped NFC string ('1' for 1.0), None when empty."""
    if cell is None or isinstance(cell, bool):
        return None
    if not isinstance(cell, str):
        value = parse_number(cell)
        if value is None:
            return None
        return str(int(value)) if value == int(value) else repr(value)
    text = nfc(cell).strip()
    return text or None


def is_blank(cell: Any) -> bool:
    if cell is None:
        return True
    if isinstance(cell, float) and cell != cell:
        return True
    return isinstance(cell, str) and not cell.strip()


# ---------------------------------------------------------------- sheet reading ----
@dataclass
class Sheet:
    """A ratings table: header cells and data rows (1-based row numbers in the file)."""

    path: Path
    header: list[str]
    rows: list[tuple[int, list[Any]]]
    note: str = ""


def find_header(grid: Iterable[list[Any]], id_column: str) -> int | None:
    """Index of the first row (within HEADER_SEARCH_ROWS) with a cell equal to id_column."""
    key = squash(id_column)
    for i, row in enumerate(grid):
        if i >= HEADER_SEARCH_ROWS:
            break
        if any(not is_blank(c) and squash(c) == key for c in row):
            return i
    return None


def _xlsx_grids(path: Path, nrows: int | None = None) -> dict[str, list[list[Any]]]:
    """Every worksheet as a list of rows of cell values (pandas + openpyxl)."""
    import pandas as pd

    frames = pd.read_excel(path, sheet_name=None, header=None, dtype=object,
                           engine="openpyxl", nrows=nrows)
    return {name: [[None if is_blank(c) else c for c in row] for row in df.itertuples(index=False)]
            for name, df in frames.items()}


def decode_text(data: bytes) -> tuple[str, str]:
    """Text of a CSV export: UTF-8 (BOM tolerated), else Windows-1252, else Latin-1."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def _csv_header(lines: list[str], id_column: str) -> tuple[int, str] | None:
    """(line index, separator) of the header line: the first whose fields hold id_column."""
    key = squash(id_column)
    for i, line in enumerate(lines[:HEADER_SEARCH_ROWS]):
        for sep in (";", "\t", ","):
            fields = next(csv.reader([line], delimiter=sep), [])
            if any(squash(f) == key for f in fields if f.strip()):
                return i, sep
    return None


def _csv_sheet(path: Path, id_column: str, limit: int | None = None) -> Sheet | None:
    data = path.read_bytes() if limit is None else path.open("rb").read(limit)
    text, encoding = decode_text(data)
    lines = text.splitlines()
    found = _csv_header(lines, id_column)
    if found is None:
        return None
    start, sep = found
    reader = csv.reader(io.StringIO("\n".join(lines[start:])), delimiter=sep)
    header = [nfc(h).strip() for h in next(reader)]
    rows: list[tuple[int, list[Any]]] = [(start + 2 + k, row) for k, row in enumerate(reader)]
    return Sheet(path, header, rows, note=f"encoding {encoding}, separator {sep!r}")


def _xlsx_sheet(path: Path, id_column: str, worksheet: str = "",
                nrows: int | None = None) -> Sheet | None:
    for name, grid in _xlsx_grids(path, nrows).items():
        if worksheet and squash(name) != squash(worksheet):
            continue
        start = find_header(grid, id_column)
        if start is None:
            continue
        header = ["" if is_blank(c) else nfc(str(c)).strip() for c in grid[start]]
        rows = [(start + 2 + k, list(r)) for k, r in enumerate(grid[start + 1:])]
        return Sheet(path, header, rows, note=f"worksheet {name!r}")
    return None


def read_sheet(path: Path, id_column: str, worksheet: str = "", header_only: bool = False) -> Sheet | None:
    """Parse a ratings sheet; None when no `id_column` header cell is found.

    `header_only` reads just enough to find the header (layout detection). A file that cannot
    be parsed is not the sheet while detecting (None); once chosen, it is a DataError naming it.
    """
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            return _csv_sheet(path, id_column, CSV_SNIFF_BYTES if header_only else None)
        if suffix in (".xlsx", ".xlsm"):
            return _xlsx_sheet(path, id_column, worksheet, HEADER_SEARCH_ROWS if header_only else None)
    except Exception as exc:  # noqa: BLE001 - openpyxl and csv raise many types on broken files
        if header_only:
            return None
        raise DataError(f"{path.name}: the ratings sheet cannot be read ({type(exc).__name__}: "
                        f"{error_text(exc)})") from None
    return None
