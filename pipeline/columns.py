"""Manifest column kinds: one Parquet type per declared column, whatever the data.

Arrow infers types from the values, so a column that happens to be all None (no song has
annotation issues, no metadata file) would be written as type `null`, and one whose lists
are all empty as `list<null>`: the same column would change type with the data. A stage
declares its columns' kinds once (`Stage.columns`) and the runner casts every manifest of
that stage with `with_kinds`, so its schema never depends on the data.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from emoprep.pipeline.lazy import np, pd

# kind -> Arrow type the runner writes: str -> large_string, int -> int64, float -> double,
# bool -> bool, floats -> list<double>. Missing values are null in every kind.
ColumnKind = Literal["str", "int", "float", "bool", "floats"]
KINDS: tuple[ColumnKind, ...] = ("str", "int", "float", "bool", "floats")


def _float_list(value: Any) -> Any:
    """A list cell as a float64 array (Arrow infers list<double> even when it is empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return np.asarray([math.nan if v is None else v for v in value], dtype=np.float64)


def cast_column(series: pd.Series, kind: str) -> pd.Series:
    """`series` as the pandas dtype that gives `kind`'s Arrow type, nulls kept as nulls."""
    has_null = bool(series.isna().any()) if kind != "floats" else False
    if kind == "str":  # pandas < 3 turns None into the text 'None': put the nulls back
        text = series.astype("str")
        return text.where(series.notna(), None) if has_null else text
    if kind == "int":
        return series.astype("Int64" if has_null else "int64")
    if kind == "float":
        return series.astype("float64")
    if kind == "bool":
        return series.astype("boolean" if has_null else "bool")
    if kind == "floats":
        return pd.Series([_float_list(v) for v in series], index=series.index, dtype=object)
    raise ValueError(f"unknown column kind {kind!r}; expected one of {KINDS}")


def with_kinds(rows: pd.DataFrame, kinds: Mapping[str, ColumnKind]) -> pd.DataFrame:
    """`rows` with every declared column cast to its kind, in the declared order; declared
    columns that are absent (e.g. a stage that kept nothing) are added empty, so the schema
    never depends on the data. Undeclared columns follow, unchanged.

    One gap: a `floats` column of a manifest with no rows is written as type `null`; pandas
    can only carry the list type as an ArrowDtype, whose Parquet metadata pandas cannot
    read back."""
    rows = rows.copy()
    for name, kind in kinds.items():
        if name not in rows.columns:
            rows[name] = pd.Series([None] * len(rows), index=rows.index, dtype=object)
        rows[name] = cast_column(rows[name], kind)
    order = [*kinds, *[c for c in rows.columns if c not in kinds]]
    return rows[order]


def kinds_like(df: pd.DataFrame) -> dict[str, ColumnKind]:
    """The kinds of a manifest read back from Parquet (for stages that carry its columns).
    Columns whose kind cannot be told from the dtype (object) are left out."""
    out: dict[str, ColumnKind] = {}
    for name, dtype in df.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            out[str(name)] = "bool"
        elif pd.api.types.is_integer_dtype(dtype):
            out[str(name)] = "int"
        elif pd.api.types.is_float_dtype(dtype):
            out[str(name)] = "float"
        elif pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
            out[str(name)] = "str"
    return out
