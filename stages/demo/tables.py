"""Annotation tables as the datasets ship them, as bytes: CSV with LF, CRLF or mixed line
endings, an optional UTF-8 BOM, any separator, cells right-aligned to a width (DEAM's space
padding), comment rows above the header, numbers printed the releases' way; and `.xlsx`
with reproducible bytes. One writer for the demo trees, the hostile corpus and test trees.
"""
from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

EOLS = {"lf": ("\n",), "crlf": ("\r\n",), "mixed": ("\r\n", "\n", "\r")}  # mixed cycles them
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FIXED_DOC_TIME = "2000-01-01T00:00:00Z"


def fmt(x: float) -> str:
    """Numbers as the DEAM and PMEmo CSVs print them: `3`, `3.1`, `0.94`; NaN as an empty cell."""
    return f"{x:.6f}".rstrip("0").rstrip(".") if math.isfinite(x) else ""


def csv_bytes(rows: Iterable[Sequence[Any] | str], *, sep: str = ",", eol: str = "lf", bom: bool = False,
              pad: int = 0) -> bytes:
    """Rows (lists of cells, or lines already joined) as CSV. `eol` is a key of EOLS or the
    line ending itself; `pad` right-aligns every cell of the list rows to that width."""
    ends = EOLS.get(eol, (eol,))
    lines = [r if isinstance(r, str) else sep.join(str(c).rjust(pad) for c in r) for r in rows]
    text = "".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


def _repack_xlsx(data: bytes) -> bytes:
    """Zip entries with a fixed timestamp and fixed document dates: reproducible bytes
    (openpyxl stamps the save time)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:)",
                              rb"\g<1>" + FIXED_DOC_TIME.encode() + rb"\g<3>", body)
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, body)
    return out.getvalue()


def xlsx_bytes(rows: Iterable[Sequence[Any]], title: str = "ratings") -> bytes:
    """One worksheet holding `rows` (comment rows, header and data alike), reproducible bytes."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    if ws is None:  # a new workbook always has one worksheet
        raise RuntimeError("openpyxl made a workbook without a worksheet")
    ws.title = title
    for row in rows:
        ws.append(list(row))
    buf = io.BytesIO()
    wb.save(buf)
    return _repack_xlsx(buf.getvalue())
