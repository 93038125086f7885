"""How the demo CSVs print numbers, as the DEAM and PMEmo releases do (`3`, `3.1`, `0.94`):
one formatter for every demo tree, so their bytes agree with each other and with the
parsers' expectations."""
from __future__ import annotations

import math


def fmt(x: float) -> str:
    """Numbers as the DEAM CSVs print them: `3`, `3.1`, `0.94` (no trailing zeros)."""
    return f"{x:.6f}".rstrip("0").rstrip(".") if math.isfinite(x) else ""
