"""Reading a FoodPics ratings sheet: the `.xlsx` / `.csv` readers that find the `Image_No`
header row below any comment rows (the text reading is `common.text_table`'s), and category
cells. Kept apart from the column mapping and the keep rules because the
release's files vary (Excel or a CSV export in cp1252 with `;` and decimal commas) while
what a table *means* does not.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoprep.pipeline.errors import DataError
from emoprep.pipeline.values import error_text
from emoprep.stages.common.naming import nfc
from emoprep.stages.common.text_table import (
    HEADER_SEARCH_ROWS,
    decode,
    find_header_line,
    find_header_row,
    is_blank,
    parse_number,
    read_rows,
    squash,
)

CSV_SNIFF_BYTES = 1 << 16


# ---------------------------------------------------------------- cells ----
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


# ---------------------------------------------------------------- sheet reading ----
@dataclass
class Sheet:
    """A ratings table: header cells and data rows (1-based row numbers in the file)."""

    path: Path
    header: list[str]
    rows: list[tuple[int, list[Any]]]
    note: str = ""


def _xlsx_grids(path: Path, nrows: int | None = None) -> dict[str, list[list[Any]]]:
    """Every worksheet as a list of rows of cell values (pandas + openpyxl)."""
    import pandas as pd

    frames = pd.read_excel(path, sheet_name=None, header=None, dtype=object,
                           engine="openpyxl", nrows=nrows)
    return {name: [[None if is_blank(c) else c for c in row] for row in df.itertuples(index=False)]
            for name, df in frames.items()}


def _csv_sheet(path: Path, id_column: str, limit: int | None = None) -> Sheet | None:
    data = path.read_bytes() if limit is None else path.open("rb").read(limit)
    text, encoding = decode(data, ("utf-8-sig", "cp1252"), "latin-1")
    found = find_header_line(text, id_column)
    if found is None:
        return None
    start, sep = found
    reader = read_rows(text, sep, start=start, strip=False, skip_blank=False)
    header = [nfc(h).strip() for h in next(reader)[1]]
    # numbered as a spreadsheet shows them: one row per record, the header at start + 1
    rows: list[tuple[int, list[Any]]] = [(start + 2 + k, row) for k, (_, row) in enumerate(reader)]
    return Sheet(path, header, rows, note=f"encoding {encoding}, separator {sep!r}")


def _xlsx_sheet(path: Path, id_column: str, worksheet: str = "",
                nrows: int | None = None) -> Sheet | None:
    for name, grid in _xlsx_grids(path, nrows).items():
        if worksheet and squash(name) != squash(worksheet):
            continue
        start = find_header_row(grid, id_column)
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
