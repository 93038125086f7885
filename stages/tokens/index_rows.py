"""The rows of the token index: one per kept sample (`index_rows`, the stage manifest that the
runner publishes as `manifests/tokens.parquet`), and one tokenizer's part of it for that
tokenizer's own store folder (`store_rows`). Columns: `emoprep.manifests.token_store.layout`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from emoprep.manifests.token_store.layout import ARRAY_ORDER, path_column, sequence_shape, sha_column
from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.lazy import np, pd
from emoprep.stages.tokens.families import INPUT_COLUMNS, family_of
from emoprep.stages.tokens.inputs import LABEL_COLUMNS
from emoprep.stages.tokens.params import TokensParams


def index_rows(samples: list[dict[str, Any]], ok: list[int], shard: int, written: dict[str, tuple[Path, str]],
               ctx: ItemContext[TokensParams], p: TokensParams, tokenizer: str,
               identity: dict[str, Any]) -> list[dict[str, Any]]:
    """The index rows of one shard's kept samples (`ok`, in row order): labels, input file,
    the shard files (relative to the output root) and their checksums."""
    fam = family_of(tokenizer)
    layout = fam.layout(tokenizer, p)
    files = {path_column(name): ctx.rel(path) for name, (path, _sha) in written.items()}
    shas = {sha_column(name): sha for name, (_path, sha) in written.items()}
    extra: dict[str, Any] = {}
    if layout is None:  # known from the shard file: [layers, ...] per sample (hf: tokenizers)
        shape = list(np.load(written[fam.main_array][0], mmap_mode="r", allow_pickle=False).shape[1:])
        setup = family_of(tokenizer).store_extra(tokenizer, p)
        extra = {"layers": list(setup["layers"]), "pooling": setup["pooling"]}
    else:
        shape = sequence_shape(layout)
    rows = []
    for row, i in enumerate(ok):
        s = samples[i]
        rows.append({"sample_id": s["sample_id"], "tokenizer": tokenizer, "shard": int(shard),
                     "row": row, "shape": list(shape), "dtype": fam.store_dtype(tokenizer, p),
                     "weights": identity["sha256"], **{c: s[c] for c in LABEL_COLUMNS},
                     fam.input_column_of(tokenizer): s["input_path"],
                     "path": files[path_column(fam.main_array)], **files, **shas, **extra})
    return rows


def store_rows(rows: pd.DataFrame, tokenizer: str, p: TokensParams) -> pd.DataFrame:
    """One tokenizer's rows of a multi-store manifest, without the other families' columns."""
    fam = family_of(tokenizer)
    layout = fam.layout(tokenizer, p)
    mine = set(layout) if layout is not None else {fam.main_array}
    foreign = {c for a in ARRAY_ORDER if a not in mine for c in (path_column(a), sha_column(a))}
    foreign |= {c for c in INPUT_COLUMNS if c != fam.input_column_of(tokenizer)}
    if layout is not None:
        foreign |= {"layers", "pooling"}
    sub = rows[rows["tokenizer"] == tokenizer] if len(rows) else rows
    return sub.drop(columns=[c for c in sub.columns if c in foreign]).reset_index(drop=True)
