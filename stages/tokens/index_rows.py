"""The rows of the token index: one per kept sample (`index_rows`, the stage manifest that the
runner publishes as `manifests/tokens.parquet`), and one tokenizer's part of it for that
tokenizer's own store folder (`store_rows`). Columns: `emoprep.manifests.token_store.layout`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from emoprep.manifests.token_store.layout import ARRAY_ORDER, path_column, sequence_shape, sha_column
from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.lazy import pd
from emoprep.stages.tokens.families import FAMILIES, family_of
from emoprep.stages.tokens.inputs import LABEL_COLUMNS
from emoprep.stages.tokens.params import TokensParams


def index_rows(samples: list[dict[str, Any]], ok: list[int], shard: int, written: dict[str, tuple[Path, str]],
               ctx: ItemContext[TokensParams], p: TokensParams, tokenizer: str,
               identity: dict[str, Any]) -> list[dict[str, Any]]:
    """The index rows of one shard's kept samples (`ok`, in row order): labels, input file,
    the shard files (relative to the output root) and their checksums."""
    fam = family_of(tokenizer)
    shape = sequence_shape(fam.layout(tokenizer))
    files = {path_column(name): ctx.rel(path) for name, (path, _sha) in written.items()}
    shas = {sha_column(name): sha for name, (_path, sha) in written.items()}
    rows = []
    for row, i in enumerate(ok):
        s = samples[i]
        rows.append({"sample_id": s["sample_id"], "tokenizer": tokenizer, "shard": int(shard),
                     "row": row, "shape": list(shape), "dtype": fam.store_dtype(tokenizer, p),
                     "weights": identity["sha256"], **{c: s[c] for c in LABEL_COLUMNS},
                     fam.input_column: s["input_path"], "path": files[path_column(fam.main_array)],
                     **files, **shas})
    return rows


def store_rows(rows: pd.DataFrame, tokenizer: str) -> pd.DataFrame:
    """One tokenizer's rows of a multi-store manifest, without the other families' columns."""
    fam = family_of(tokenizer)
    mine = set(fam.layout(tokenizer))
    foreign = {c for a in ARRAY_ORDER if a not in mine for c in (path_column(a), sha_column(a))}
    foreign |= {f.input_column for f in FAMILIES if f.input_column != fam.input_column}
    sub = rows[rows["tokenizer"] == tokenizer] if len(rows) else rows
    return sub.drop(columns=[c for c in sub.columns if c in foreign]).reset_index(drop=True)
