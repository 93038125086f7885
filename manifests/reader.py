"""Readers for trainers: a PyTorch dataset and a modality-balanced batch sampler.

PyTorch (map-style, lazy, memory-mapped; each DataLoader worker opens its own maps)::

    from torch.utils.data import DataLoader
    from emoprep.manifests import TokenDataset, BalancedBatchSampler
    ds = TokenDataset("emoprep-out", split="train", enhanced=True)     # tokens [197, 771]
    dl = DataLoader(ds, batch_sampler=BalancedBatchSampler(ds, batch_size=32, seed=0), num_workers=2)
    for batch in dl:
        batch["tokens"], batch["valence"], batch["arousal"], batch["modality"], batch["sample_id"]

Hugging Face `datasets`: `emoprep.manifests.hf_view.hf_parquet_view` (a Parquet view).

Plain NumPy: see `emoprep.manifests.token_store.layout` (every shard is an `.npy` file).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from emoprep.manifests.token_store.layout import (
    READER_COLUMNS,
    StoreError,
    path_column,
    stored_layers,
    token_sequence,
)
from emoprep.manifests.token_store.reader import check_index, load_index, open_array
from emoprep.pipeline.values import natural_key

MODALITY_CODES = {"image": 0, "audio": 1, 0: 0, 1: 1}
ENHANCED_EXTRA = ("valence", "arousal", "modality")  # appended to every token, thesis §2.1.4


def modality_code(modality: Any) -> int:
    try:
        return MODALITY_CODES[modality]
    except (KeyError, TypeError):
        raise ValueError(f"modality {modality!r}: expected 'image'/0 or 'audio'/1") from None


class TokenDataset(Dataset[dict[str, Any]]):
    """One token store (or part of it) as a map-style PyTorch dataset.

    `out_root`: the run's output root (or one store folder). `tokenizer`: which token set
    (a run may hold several, e.g. thesis-v12's "encodec-24khz" and "vit-patch28-h2048").
    `split`: a split name or a list of them; `modality`: "image"/0 or "audio"/1. Item i is a
    dict: `tokens` [T, D], `valence`, `arousal` (float32 in [-1, 1]), `modality` (int64),
    `sample_id` (str), `index` (int). `enhanced=True` appends [valence, arousal, modality]
    to every token as the thesis did (D + 3). Per tokenizer:

    - ViT-base/16: T = 197 (CLS first; 196 with `include_cls=False`), D = 768 (771 enhanced);
    - vit-patch28-h2048: T = 65 (64 without CLS, the thesis's 64 tokens), D = 2048 (2051);
    - encodec-24khz: T = 32 (one token per codebook), D = 3450 frames of int16 codes given
      as float32 (3453 enhanced), the thesis's audio tokens;
    - `hf:<model id or folder>`: the stored array as it is, [layers, tokens, dim] (audio:
      [layers, windows, tokens, dim]) or pooled [layers, dim]; `layer=k` (a hidden-state
      index, 0 = embeddings, as the store's `layers` list numbers them) reads that layer
      alone from the memory map: [tokens, dim] (audio [windows, tokens, dim]) or [dim].

    Nothing is read until an item is asked for; shard files are memory-mapped once per
    process, so DataLoader workers share the page cache and not file handles. `out_root` may
    be an fsspec URL (`s3://bucket/run`; `storage_options` go to fsspec, e.g. an
    `endpoint_url`): shards are then fetched whole into a local cache the first time an item
    needs them and memory-mapped from there (`token_store/reader.py`).

    A damaged store raises `token_store.StoreError` (a DataError and ValueError) naming the
    file: at construction for the index (missing columns, unusable values, paths leaving
    the root), when an item is read for its shard (truncated, not numeric NPY, short).
    """

    def __init__(self, out_root: str | os.PathLike[str], tokenizer: str = "vit-base-patch16-224",
                 split: str | Sequence[str] | None = None, modality: Any = None,
                 enhanced: bool = False, include_cls: bool = True, dtype: torch.dtype = torch.float32,
                 storage_options: dict[str, Any] | None = None, layer: int | None = None):
        store = load_index(out_root, tokenizer, storage_options)
        self._remote = store.remote
        df = store.df
        check_index(df, out_root, READER_COLUMNS + (("split",) if split is not None else ()))
        if split is not None:
            df = df[df["split"].isin([split] if isinstance(split, str) else list(split))]
        if modality is not None:
            df = df[df["modality"] == modality_code(modality)]
        if df.empty:
            raise ValueError(f"no tokens in {out_root} for tokenizer={tokenizer!r}, split={split!r}, "
                             f"modality={modality!r}")
        # the manifests' order (natural sort: deam:2:0 < deam:10:0), so item i = manifest row i
        order = sorted(range(len(df)), key=lambda i: natural_key(str(df["sample_id"].iat[i])))
        self.index = df.iloc[order].reset_index(drop=True)
        self.arrays = [a for a in store.arrays(self.index) if include_cls or a != "cls"]
        self.enhanced, self.dtype = enhanced, dtype
        self._files: dict[str, list[Path]] = {}
        self._codes: dict[str, np.ndarray] = {}
        for name in self.arrays:
            paths = self.index[path_column(name)]
            if paths.isna().any():  # factorize would give code -1: another row's file
                raise StoreError(f"{out_root}: {int(paths.isna().sum())} rows have no "
                                    f"{path_column(name)}, e.g. {self.index.loc[paths.isna(), 'sample_id'].iloc[0]}")
            codes, uniques = pd.factorize(paths, sort=True)
            self._files[name] = [store.resolve(u) for u in uniques]
            self._codes[name] = codes
        self._rows = self.index["row"].to_numpy(np.int64)
        self._extra = self.index[list(ENHANCED_EXTRA)].to_numpy(np.float32)
        self.modalities = self.index["modality"].to_numpy(np.int64)
        self.sample_ids = self.index["sample_id"].astype(str).tolist()
        self._maps: dict[Path, np.ndarray] = {}
        self._pid = os.getpid()
        self.layers, self._layer_at = stored_layers(self.index), None
        if layer is not None:
            if self.layers is None:
                raise ValueError(f"layer={layer}: the {tokenizer!r} store has no layer axis "
                                 "(only hf: encoder stores do)")
            if layer not in self.layers:
                raise ValueError(f"layer={layer}: the {tokenizer!r} store holds hidden states {self.layers}")
            self._layer_at = self.layers.index(layer)

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict[str, Any]:  # workers open their own maps
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def _map(self, path: Path) -> np.ndarray:
        if self._pid != os.getpid():  # forked worker: do not reuse the parent's maps
            self._maps, self._pid = {}, os.getpid()
        if path not in self._maps:
            self._maps[path] = open_array(self._remote.fetch(path) if self._remote is not None else path)
        return self._maps[path]

    def tokens(self, i: int) -> np.ndarray:
        """Tokens of item i as float32 NumPy [T, D(+3)] (no torch needed by the caller)."""
        parts = []
        for name in self.arrays:
            path = self._files[name][self._codes[name][i]]
            shard = self._map(path)
            if self._rows[i] >= len(shard):
                raise StoreError(f"{path}: {self.sample_ids[i]} is row {self._rows[i]} of a shard "
                                    f"with {len(shard)} rows (truncated or replaced shard?)")
            if self.layers is not None:  # [layers, ...]: one layer read from the map, or all of them
                row = shard[self._rows[i]] if self._layer_at is None else shard[self._rows[i], self._layer_at]
                return self._enhance(np.asarray(row, dtype=np.float32), i)
            parts.append(np.asarray(shard[self._rows[i]], dtype=np.float32))
        try:
            tok = token_sequence(parts)
        except ValueError as exc:
            raise StoreError(f"{self.sample_ids[i]}: {self.arrays} {exc}") from None
        return self._enhance(tok, i)

    def _enhance(self, tok: np.ndarray, i: int) -> np.ndarray:
        """`enhanced=True`: [valence, arousal, modality] appended along the last axis."""
        if self.enhanced:
            extra = np.broadcast_to(self._extra[i], (*tok.shape[:-1], len(ENHANCED_EXTRA)))
            tok = np.concatenate([tok, extra], axis=-1)
        return tok

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return {"tokens": torch.from_numpy(self.tokens(i)).to(self.dtype),
                "valence": torch.tensor(self._extra[i, 0]), "arousal": torch.tensor(self._extra[i, 1]),
                "modality": torch.tensor(int(self.modalities[i])), "sample_id": self.sample_ids[i], "index": i}
