"""The column mapping: the recipe's column names (the thesis' by default) resolved against a
release's header, and one sheet row read through it into a plain rating record. Releases
name their columns differently, so matching ignores case and punctuation
(`Valence_Omnivore_Male` = `Valence_omnivore_Male`) and accepts a self-describing header by
its part before `:` (`taste` matches `taste:1=sweet 2=tasty`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from emoprep.pipeline.errors import ConfigError
from emoprep.stages.common.text_table import is_blank, parse_number, squash
from emoprep.stages.foodpics.params import FoodPicsParams
from emoprep.stages.foodpics.sheet import Sheet, category_text


class RatingRecord(TypedDict):
    """One sheet row as plain values (a work item payload): ratings per rater group in the
    recipe's order (None where empty or unparseable), categories, unparseable cells."""

    sheet_row: int
    valence: list[float | None]
    arousal: list[float | None]
    category: str | None
    extras: dict[str, str | None]
    bad_cells: list[list[str]]


def header_keys(header: str) -> tuple[str, str]:
    """Full key and the key of the part before ':' ('taste:1=sweet 2=tasty' → 'taste')."""
    return squash(header), squash(header.split(":", 1)[0])


def match_column(header: list[str], name: str) -> int | None:
    """Index of the header cell for a configured column name, or None.

    Exact key match first, then the part before ':'; ConfigError when ambiguous."""
    key = squash(name)
    for which in (0, 1):
        hits = [i for i, h in enumerate(header) if h and header_keys(h)[which] == key]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ConfigError(f"column {name!r} matches several headers: "
                              f"{[header[i] for i in hits]}; name one exactly in the recipe")
    return None


@dataclass
class Columns:
    id: int
    valence: list[int]
    arousal: list[int]
    category: int | None
    extras: dict[str, int | None]


def map_columns(sheet: Sheet, params: FoodPicsParams) -> Columns:
    """Resolve the recipe's column names against the sheet header (ConfigError if missing)."""
    if len(params.valence_columns) != len(params.arousal_columns) or not params.valence_columns:
        raise ConfigError("foodpics.valence_columns and foodpics.arousal_columns must list the "
                          "same number (≥ 1) of rater groups, in the same order")
    if not 1 <= params.min_groups <= len(params.valence_columns):
        raise ConfigError(f"foodpics.min_groups = {params.min_groups}: must be between 1 and "
                          f"{len(params.valence_columns)} (the number of rater groups)")
    lo, hi = params.rating_range
    if not lo < hi:
        raise ConfigError(f"foodpics.rating_range = {list(params.rating_range)}: needs low < high "
                          "(bounds every rating must lie in; the default 0-100 is an assumption, "
                          "see stages/foodpics/params.py)")
    found = {n: match_column(sheet.header, n) for n in (*params.valence_columns, *params.arousal_columns)}
    missing = [n for n, i in found.items() if i is None]
    if missing:
        raise ConfigError(f"{sheet.path}: rating columns {missing} not in the header "
                          f"{[h for h in sheet.header if h]}; set foodpics.valence_columns / "
                          f"foodpics.arousal_columns to this release's names (SPEC §3.2)")
    index = {n: i for n, i in found.items() if i is not None}  # every name, after the check above
    id_index = match_column(sheet.header, params.id_column)
    if id_index is None:  # cannot happen: the header row was found by this cell
        raise ConfigError(f"{sheet.path}: no {params.id_column!r} header cell")
    return Columns(
        id=id_index,
        valence=[index[n] for n in params.valence_columns],
        arousal=[index[n] for n in params.arousal_columns],
        category=match_column(sheet.header, params.category_column) if params.category_column else None,
        extras={n: match_column(sheet.header, n) for n in params.extra_category_columns},
    )


def cell_at(row: list[Any], index: int | None) -> Any:
    """The row's cell at `index`; None for an unmapped column or a short (ragged) row."""
    return row[index] if index is not None and index < len(row) else None


def rating_record(sheet_row: int, row: list[Any], cols: Columns, params: FoodPicsParams) -> RatingRecord:
    """One sheet row → plain values for a work item payload."""
    def values(indices: list[int], names: tuple[str, ...]) -> tuple[list[float | None], list[list[str]]]:
        out: list[float | None] = []
        bad: list[list[str]] = []
        for i, name in zip(indices, names, strict=True):  # map_columns: one index per name
            raw = cell_at(row, i)
            value = parse_number(raw)
            out.append(value)
            if value is None and not is_blank(raw):
                bad.append([name, str(raw)])
        return out, bad

    valence, bad_v = values(cols.valence, params.valence_columns)
    arousal, bad_a = values(cols.arousal, params.arousal_columns)
    return {
        "sheet_row": sheet_row,
        "valence": valence,
        "arousal": arousal,
        "category": category_text(cell_at(row, cols.category)),
        "extras": {n: category_text(cell_at(row, i)) for n, i in cols.extras.items()},
        "bad_cells": bad_v + bad_a,
    }
