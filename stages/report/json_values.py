"""JSON-safe values for `report.json`: every number rounded the same way, so the same stage
folders always give the same bytes.

`plain_json` is not `emoprep.pipeline.values.plain`: it rounds every number through `num`
(6 decimals, NaN and infinities as null, numpy booleans as bool) and leaves other values
(paths included) as they are; `plain` keeps numbers exact and turns paths into POSIX text.
report.json's bytes depend on the rounding, so the report keeps its own.
"""
from __future__ import annotations

import math
from typing import Any, overload

from emoprep.pipeline.lazy import np


@overload
def num(x: bool | np.bool_, digits: int = 6) -> bool: ...
@overload
def num(x: int | np.integer[Any], digits: int = 6) -> int: ...
@overload
def num(x: float | np.floating[Any], digits: int = 6) -> float | None: ...
@overload
def num(x: None, digits: int = 6) -> None: ...
@overload
def num(x: object, digits: int = 6) -> object: ...
def num(x: object, digits: int = 6) -> object:
    """A JSON-safe number: ints stay ints, floats are rounded, NaN/inf become None."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return round(x, digits) if math.isfinite(x) else None
    return x


@overload
def plain_json(obj: dict[Any, Any]) -> dict[str, object]: ...
@overload
def plain_json(obj: list[Any] | tuple[Any, ...] | np.ndarray) -> list[object]: ...
@overload
def plain_json(obj: object) -> object: ...
def plain_json(obj: object) -> object:
    """Recursively convert to JSON-safe values (numbers via `num`, tuples to lists)."""
    if isinstance(obj, dict):
        return {str(k): plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [plain_json(v) for v in obj.tolist()]
    return num(obj)
