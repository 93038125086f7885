"""Build a stage's manifest from its ledger one batch at a time.

The ledger holds every committed item record as JSON lines. Turning all of them into Python
dicts at once costs ~1 KB per row (hundreds of MB at 10× DEAM); here each batch becomes a
small Arrow table straight away, so the main process holds columns, not dicts, and its
memory stays flat as the dataset grows.

The result is independent of how items were batched (a resumed run batches differently
from a clean one): later records of a key win, columns come in the order they first
appear in the naturally sorted rows, and column types are unified across batches.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from emoprep.pipeline.columns import with_kinds
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.lazy import pa, pd
from emoprep.pipeline.ledger import ItemRecord, Ledger
from emoprep.pipeline.reasons import ReasonCode
from emoprep.pipeline.stage import AnyStage, Reject
from emoprep.pipeline.values import natural_key


@dataclass
class Assembled:
    table: pa.Table                       # kept rows, naturally sorted by sample_id
    rejects: list[Reject] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    records: int = 0                      # item records that went in


# A row's place: natural order of its sample id, ties broken by the text.
RowOrder = tuple[tuple[tuple[int, int, str], ...], str]
# Where a column first appears: (not sample_id, that row's order, position in the row).
FirstSeen = tuple[int, RowOrder, int]


def row_order_key(sample_id: Any) -> RowOrder:
    """Natural order, ties ('a01' vs 'a1') broken by the text so the order is total."""
    text = "" if sample_id is None else str(sample_id)
    return natural_key(text), text


def latest_batch_of(ledger: Ledger, wanted: set[str] | None) -> dict[str, int]:
    """key -> index of the ledger batch holding its newest record (a redone item's old
    record is superseded)."""
    latest: dict[str, int] = {}
    for index, records in enumerate(ledger.iter_batches()):
        for rec in records:
            if wanted is None or rec.key in wanted:
                latest[rec.key] = index
    return latest


def assemble(ledger: Ledger, wanted: set[str] | None = None,
             extra: Iterable[ItemRecord] = ()) -> Assembled:
    """Rows, rejects and counters of the newest record of every `wanted` key (all keys when
    None), plus `extra` records (a whole-stage run's single record)."""
    latest = latest_batch_of(ledger, wanted)
    out = Assembled(pa.table({}))
    parts: list[pa.Table] = []
    first_seen: dict[str, FirstSeen] = {}

    def take(records: list[ItemRecord]) -> None:
        rows = []
        for rec in records:
            out.records += 1
            rows.extend(rec.rows)
            out.rejects.extend(Reject(sid, ReasonCode(reason), message) for sid, reason, message in rec.rejects)
            out.counters.update(rec.counters)
        if rows:
            parts.append(_rows_table(rows, first_seen))

    for index, records in enumerate(ledger.iter_batches()):
        take([r for r in records if latest.get(r.key) == index])
    take(list(extra))
    out.table = _sorted(_concat(parts, first_seen))
    return out


def _rows_table(rows: list[dict[str, Any]], first_seen: dict[str, FirstSeen]) -> pa.Table:
    """One batch of row dicts as an Arrow table; notes where each column first appears."""
    names: dict[str, None] = {}
    for row in rows:
        order = row_order_key(row.get("sample_id"))
        for pos, name in enumerate(row):
            names.setdefault(name)
            rank = (0 if name == "sample_id" else 1, order, pos)
            if name not in first_seen or rank < first_seen[name]:
                first_seen[name] = rank
    return pa.table({n: pa.array([_scalar(r.get(n)) for r in rows]) for n in names})


def _scalar(v: Any) -> Any:
    # A scalar NaN means "missing": store it as null so the column type stays stable.
    # (NaN inside lists, e.g. dynamic frames, is data and is kept.)
    return None if isinstance(v, float) and math.isnan(v) else v


def _concat(parts: list[pa.Table], first_seen: dict[str, FirstSeen]) -> pa.Table:
    if not parts:
        return pa.table({"sample_id": pa.array([], pa.string())})
    names = sorted(first_seen, key=first_seen.__getitem__)
    table = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
    return table.select(names)


def _sorted(table: pa.Table) -> pa.Table:
    if "sample_id" not in table.column_names or table.num_rows < 2:
        return table
    ids = table.column("sample_id").to_pylist()
    order = sorted(range(len(ids)), key=lambda i: row_order_key(ids[i]))
    return table.take(pa.array(order, pa.int64()))


def finish_manifest(stage: AnyStage, ctx: StageContext[Any], rows: pd.DataFrame,
                    rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
    """The last steps after all items, as the runner takes them: the stage's `finalize`
    (dataset-level work), then its declared column kinds (one Parquet type per column)."""
    rows, rejects = stage.finalize(ctx, rows, rejects)
    columns = stage.columns(ctx)
    return (with_kinds(rows, columns) if columns else rows), rejects
