"""Plain values: what manifests, ledgers and messages may hold, and the id order they use.

A manifest row or a ledger record must not carry numpy scalars, arrays or paths (Arrow and
JSON would store them differently from run to run, or not at all); `plain` turns them into
Python values and `cell` reads one back. `natural_key` is the one order of sample ids
everywhere (manifests, rejects, token shards): `deam:2:0` before `deam:10:0`.

Error texts: `str(OSError)` embeds the absolute file name ("[Errno 13] Permission denied:
'/home/…/0001.jpg'"), which would make outputs depend on where the data lives (SPEC §7.2),
and some library messages embed object addresses, which differ from run to run;
`error_text` drops both.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from emoprep.pipeline.lazy import np, pd


def plain(value: Any) -> Any:
    """numpy scalars and arrays, tuples and paths as JSON/Arrow-friendly Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return value.as_posix()
    return value


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """`deam:2:0` < `deam:10:0`: numbers compare as numbers, the rest as text."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _DIGITS.split(text) if p)


def cell(value: Any) -> Any:
    """One manifest cell as read back through pandas, as a plain Python value: numpy scalars
    unwrapped, every kind of missing (None, NaN, pd.NA, NaT) as None. For payloads and rows
    built from an upstream manifest."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def finite_float(value: Any) -> float | None:
    """A finite float, or None for missing / NaN / infinite / non-numeric values."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")


def error_text(exc: BaseException) -> str:
    """What went wrong, without the file name the OS put into the exception (the caller
    names the file by its path relative to the dataset root) and without object reprs such
    as Pillow's `<_io.BytesIO object at 0x7f…>`, whose address changes from run to run."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, OSError) and exc.filename is not None:
        return type(exc).__name__
    return _OBJECT_REPR.sub("", str(exc))
