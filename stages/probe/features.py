"""Pooled feature matrices of a token store: one vector per item, layer and pooling.

The probe sees a store through `FeatureSource` only: an item table and `matrix(layer,
pooling)` → [n_items, dim] float32. `StoreFeatures` is that interface over the token stores
emoprep writes, read through `emoprep.manifests.token_store.reader` (local or fsspec URL):

- ViT stores (`cls` [D] + `patches` [P, D]): pooling `mean` (mean of the patch tokens) or
  `cls` (the CLS token); one layer, `last`.
- EnCodec stores (`codes` [K, T] int16): pooling `hist`, each codebook's code histogram
  divided by T, concatenated ([K × codebook size]). It needs no model, keeps which codes
  occur per quantiser level, and is what a bag-of-codes baseline reads; the quantiser's
  codebook vectors would need the EnCodec weights at probe time.
- Layered stores of `hf:` encoders (`store.json` lists `layers`): the store's one array holds
  every layer per item, [L, D] (pooled by the tokens stage: pooling `stored`) or [L, T, D] /
  audio [L, windows, T, D] (pooling `mean` over windows and tokens).
- Any other float array [T, D]: `mean`; [D]: `stored`.

Items are ordered by sample id (natural order, as `TokenDataset` gives them).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, Protocol

from emoprep.manifests.token_store.layout import KNOWN_CODEBOOKS, STORE_FILE, StoreError, path_column
from emoprep.manifests.token_store.reader import StoreIndex, check_index, load_index, read_rows
from emoprep.pipeline.errors import ConfigError, DataError
from emoprep.pipeline.lazy import np, pd
from emoprep.pipeline.values import natural_key

ITEM_COLUMNS = ("sample_id", "source_id", "split", "valence", "arousal", "emotion", "modality")
MODALITY_NAMES = {0: "image", 1: "audio"}
SINGLE_LAYER = "last"


class FeatureSource(Protocol):
    """What the probe needs from a store. `items`: one row per item with ITEM_COLUMNS
    (`modality` as "audio"/"image"; `emotion` may be missing, VA may be NaN)."""

    tokenizer: str
    items: pd.DataFrame

    def layers(self) -> list[str]: ...

    def poolings(self) -> list[str]: ...

    def matrix(self, layer: str, pooling: str) -> np.ndarray: ...


class MemoryFeatures:
    """A FeatureSource over matrices already in memory: {(layer, pooling): [n, dim]}."""

    def __init__(self, tokenizer: str, items: pd.DataFrame, matrices: dict[tuple[str, str], np.ndarray]):
        self.tokenizer, self.items, self._m = tokenizer, items.reset_index(drop=True), matrices

    def layers(self) -> list[str]:
        return list(dict.fromkeys(layer for layer, _ in self._m))

    def poolings(self) -> list[str]:
        return list(dict.fromkeys(p for _, p in self._m))

    def matrix(self, layer: str, pooling: str) -> np.ndarray:
        return self._m[(layer, pooling)]


def item_table(df: pd.DataFrame, where: Any) -> pd.DataFrame:
    """The probe's item table from index rows (natural sample-id order). StoreError when the
    index lacks what grouping and scoring need."""
    check_index(df, where, ("sample_id", "row", "modality"))
    missing = [c for c in ("source_id", "split") if c not in df.columns]
    if missing:
        raise StoreError(f"{where}: the token index lacks {missing}; the probe groups by song and "
                         "tests on the recipe's split")
    order = sorted(range(len(df)), key=lambda i: natural_key(str(df["sample_id"].iat[i])))
    rows = df.iloc[order].reset_index(drop=True)
    def numbers(col: str) -> Any:
        return pd.to_numeric(rows[col], errors="coerce").astype("float64") if col in rows else np.nan

    emotion = rows["emotion"].astype(object) if "emotion" in rows else pd.Series(None, index=rows.index, dtype=object)
    return pd.DataFrame({"sample_id": rows["sample_id"].astype(str), "source_id": rows["source_id"].astype(str),
                         "split": rows["split"].astype(str), "valence": numbers("valence"),
                         "arousal": numbers("arousal"), "emotion": emotion.where(emotion.notna(), None),
                         "modality": [MODALITY_NAMES[int(m)] for m in rows["modality"]]})


class StoreFeatures:
    """One token store of an output (a tokenizer's rows) as a FeatureSource. Shards are read
    once per pooling (every layer at once) and kept pooled in memory."""

    def __init__(self, store: StoreIndex, tokenizer: str, where: Any):
        self.tokenizer, self.store, self.where = tokenizer, store, where
        df = store.df
        order = sorted(range(len(df)), key=lambda i: natural_key(str(df["sample_id"].iat[i])))
        self.rows = df.iloc[order].reset_index(drop=True)
        self.items = item_table(self.rows, where)
        self.arrays = store.arrays(self.rows)
        if not self.arrays:
            raise StoreError(f"{where}: the {tokenizer} index names no shard arrays")
        self.meta = _store_meta(store, self.rows, self.arrays)
        self._pooled: dict[str, np.ndarray] = {}  # pooling -> [n, L, dim]

    def layers(self) -> list[str]:
        names = self.meta.get("layers")
        return [str(x) for x in names] if isinstance(names, list) and names else [SINGLE_LAYER]

    def layered(self) -> bool:
        return self.layers() != [SINGLE_LAYER] or "layers" in self.meta

    def poolings(self) -> list[str]:
        if self.layered():
            shape = self.meta.get("arrays", {}).get(self.arrays[0])
            return ["stored"] if shape is not None and len(shape) == 2 else ["mean"]
        if "codes" in self.arrays:
            return ["hist"]
        if "cls" in self.arrays and "patches" in self.arrays:
            return ["mean", "cls"]
        return ["mean"]

    def matrix(self, layer: str, pooling: str) -> np.ndarray:
        layers = self.layers()
        if layer not in layers:
            raise ConfigError(f"{self.tokenizer}: no layer {layer!r} (it has {', '.join(layers)})")
        if pooling not in self.poolings():
            raise ConfigError(f"{self.tokenizer}: pooling {pooling!r} does not apply "
                              f"(choose {', '.join(self.poolings())})")
        if pooling not in self._pooled:
            self._pooled[pooling] = self._read_pooled(pooling)
        return self._pooled[pooling][:, layers.index(layer)]

    def _read_pooled(self, pooling: str) -> np.ndarray:
        """[n, L, dim] float32, one shard at a time (memory: one shard's tokens)."""
        key = path_column(self.arrays[0])
        out: np.ndarray | None = None
        for _rel, grp in self.rows.groupby(key, sort=True):
            arrays = read_rows(self.store, grp, self.arrays)
            pooled = self._pool(arrays, pooling)
            if out is None:
                out = np.empty((len(self.rows), *pooled.shape[1:]), np.float32)
            out[grp.index.to_numpy(np.int64)] = pooled
        if out is None:
            raise StoreError(f"{self.where}: the {self.tokenizer} index has no rows")
        if not np.isfinite(out).all():
            bad = self.items["sample_id"][~np.isfinite(out).reshape(len(out), -1).all(axis=1)]
            raise DataError(f"{self.where}: {self.tokenizer} has non-finite tokens, e.g. {bad.iloc[0]} "
                            "(run `emoprep validate`)")
        return out

    def _pool(self, arrays: dict[str, np.ndarray], pooling: str) -> np.ndarray:
        """One shard's arrays → [g, L, dim] float32."""
        if self.layered():
            arr = arrays[self.arrays[0]].astype(np.float32)  # [g, L, (windows,) (tokens,) D]
            return arr if arr.ndim == 3 else arr.mean(axis=tuple(range(2, arr.ndim - 1)))
        if pooling == "hist":
            return code_histograms(arrays["codes"], self._codebook())[:, None]
        if pooling == "cls":
            return arrays["cls"].astype(np.float32)[:, None]
        tokens = arrays.get("patches", arrays[self.arrays[-1]])
        if tokens.ndim == 2:
            return tokens.astype(np.float32)[:, None]
        pooled: np.ndarray = tokens.mean(axis=1, dtype=np.float32)[:, None]
        return pooled

    def _codebook(self) -> int:
        size = KNOWN_CODEBOOKS.get(self.tokenizer) or self.meta.get("codebook_size")
        if not isinstance(size, int) or size < 1:
            raise StoreError(f"{self.where}: {self.tokenizer} stores codes but no codebook size "
                             f"(store.json `codebook_size`)")
        return size


def code_histograms(codes: np.ndarray, codebook: int) -> np.ndarray:
    """[g, K, T] integer codes → [g, K × codebook] float32: per codebook, the share of the T
    frames that use each code. StoreError for codes outside [0, codebook)."""
    g, k, t = codes.shape
    c = codes.astype(np.int64)
    if c.size and (c.min() < 0 or c.max() >= codebook):
        raise StoreError(f"codes outside [0, {codebook}): {int(c.min())}..{int(c.max())} (run `emoprep validate`)")
    flat = c + (np.arange(k, dtype=np.int64) * codebook)[None, :, None] + (np.arange(g) * k * codebook)[:, None, None]
    counts = np.bincount(flat.reshape(-1), minlength=g * k * codebook).reshape(g, k * codebook)
    shares: np.ndarray = (counts / max(t, 1)).astype(np.float32)
    return shares


def _store_meta(store: StoreIndex, rows: pd.DataFrame, arrays: Sequence[str]) -> dict[str, Any]:
    """The `store.json` beside the store's first shard ({} when there is none)."""
    folder = store.root if store.standalone else store.resolve(str(rows[path_column(arrays[0])].iloc[0])).parent
    path = folder / STORE_FILE
    if store.remote is not None and not path.is_file():
        try:
            store.remote.fetch(path)
        except StoreError:
            return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def open_stores(out: str | os.PathLike[str], tokenizers: Sequence[str] | None,
                storage_options: dict[str, Any] | None = None) -> list[StoreFeatures]:
    """The stores of an output (or those named). ConfigError for a tokenizer it lacks."""
    every = load_index(out, None, storage_options)
    if "tokenizer" not in every.df.columns:
        raise StoreError(f"the token index in {out} has no 'tokenizer' column")
    known = sorted(set(map(str, every.df["tokenizer"])))
    wanted = list(dict.fromkeys(tokenizers)) if tokenizers else known
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise ConfigError(f"{out} has no token store {unknown}; it has {known}")
    import dataclasses

    return [StoreFeatures(dataclasses.replace(every, df=every.df[every.df["tokenizer"] == t].reset_index(drop=True)),
                          t, out) for t in wanted]
