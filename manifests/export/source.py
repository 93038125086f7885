"""What an export reads: the token stores of one output, each with its rows in a fixed order
and the per-sample shape and dtype of its arrays.

Rows are ordered by split (train, val/validation, test, then any other name) and, within a
split, by sample id in natural order (`deam:2:0` < `deam:10:0`) — the order `TokenDataset`
gives — so the same store always exports to the same files.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from emoprep.manifests.hf_view import view_key
from emoprep.manifests.token_store.layout import READER_COLUMNS, StoreError, path_column, tokenizer_folder
from emoprep.manifests.token_store.reader import StoreIndex, check_index, load_index, open_array, read_rows
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.values import natural_key

SPLIT_ORDER = ("train", "val", "validation", "dev", "test")
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


@dataclass(frozen=True)
class ArraySpec:
    """One array of a store: per-sample shape and stored dtype (`patches`: (196, 768), float16)."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass
class StoreSource:
    """One token store of the output (a tokenizer): its rows in export order, its arrays."""

    tokenizer: str
    store: StoreIndex
    rows: pd.DataFrame
    arrays: list[ArraySpec]
    key: str  # names the store's content (tokens fingerprint + index): see hf_view.view_key

    @property
    def config(self) -> str:
        """The export's config (folder) name: the tokenizer, or an `hf:` name made a file name."""
        return tokenizer_folder(self.tokenizer)

    @property
    def splits(self) -> list[str]:
        return list(dict.fromkeys(self.rows["split"]))

    @property
    def modalities(self) -> list[int]:
        return sorted({int(m) for m in self.rows["modality"]})

    def read(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        """{array name: [len(rows), *shape]} in the stored dtype."""
        return read_rows(self.store, rows, [a.name for a in self.arrays])


def split_rank(name: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(name), "") if name in SPLIT_ORDER else (len(SPLIT_ORDER), name)


def open_sources(out_root: str | os.PathLike[str], tokenizers: list[str] | None = None,
                 splits: list[str] | None = None,
                 storage_options: dict[str, Any] | None = None) -> list[StoreSource]:
    """Every token store of `out_root` (or those of `tokenizers`), restricted to `splits`.
    ConfigError for a tokenizer or split the output does not have, or names that cannot be
    file or config names."""
    every = load_index(out_root, None, storage_options)
    check_index(every.df, out_root, (*READER_COLUMNS, "split", "tokenizer"))
    known = sorted(set(map(str, every.df["tokenizer"])))
    wanted = list(dict.fromkeys(tokenizers)) if tokenizers else known
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise ConfigError(f"{out_root} has no token store {unknown}; it has {known}")
    sources = []
    for tokenizer in wanted:
        # the index is read (fetched, for a remote root) once; each store is its tokenizer's rows
        df = every.df[every.df["tokenizer"] == tokenizer].reset_index(drop=True)
        store = dataclasses.replace(every, df=df)
        if splits:
            missing = [s for s in splits if s not in set(df["split"])]
            if missing:
                raise ConfigError(f"{tokenizer}: no split {missing} in {out_root} "
                                  f"(it has {sorted(set(map(str, df['split'])))})")
            df = df[df["split"].isin(splits)]
        for name in (tokenizer_folder(tokenizer), *map(str, df["split"])):
            if not name or not set(name) <= NAME_CHARS or name.startswith("."):
                raise ConfigError(f"{name!r} cannot name an exported config or split "
                                  "(letters, digits, '_', '-', '.' only)")
        keys = [(split_rank(str(s)), natural_key(str(i))) for s, i in zip(df["split"], df["sample_id"], strict=True)]
        order = sorted(range(len(df)), key=keys.__getitem__)
        rows = df.iloc[order].reset_index(drop=True)
        sources.append(StoreSource(tokenizer, store, rows, array_specs(store, rows),
                                   view_key(rows, tokenizer)))
    return sources


def array_specs(store: StoreIndex, rows: pd.DataFrame) -> list[ArraySpec]:
    """Shape and dtype of each array, from its first shard's header (every shard of a store
    has the same; `validate` checks that)."""
    specs = []
    for name in store.arrays(rows):
        first = rows[path_column(name)].dropna()
        if first.empty:
            raise StoreError(f"no {path_column(name)} in the index of {store.root}")
        path = store.resolve(first.iloc[0])
        arr = open_array(store.remote.fetch(path) if store.remote is not None else path)
        specs.append(ArraySpec(name, tuple(int(d) for d in arr.shape[1:]), str(arr.dtype)))
    return specs
