"""What the `spans`, `clips` and `chunks` tests expect, written independently of the stages:
exact output lengths, the issue's chunk-count formula and the declared Parquet types."""
from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
import pyarrow as pa

CLIP_N = 2_028_600
CHUNK_N = 220_500

ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.large_string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}


def expected_chunks(duration_s: float) -> int:
    """The issue's formula: floor((d − 15) / 5) chunks, plus one for a tail of ≥ 4.5 s."""
    if duration_s < 15:
        return 0
    full = math.floor((duration_s - 15) / 5 + 1e-9)
    return full + (1 if duration_s - 15 - 5 * full >= 4.5 - 1e-9 else 0)


def arrow_types(rows: pd.DataFrame) -> dict[str, pa.DataType]:
    """Column name -> Arrow type, as the manifest would be written."""
    return {f.name: f.type for f in pa.Table.from_pandas(rows, preserve_index=False).schema}


def declared_types(kinds: Mapping[str, str]) -> dict[str, pa.DataType]:
    return {c: ARROW_TYPES[k] for c, k in kinds.items()}
