"""Synthetic pooled, layered token stores with a planted signal: what the probe's acceptance
tests and `bench/probe_bench.py` read. Written through the token store writer
(`token_store.writer`), as a standalone store folder that `load_index(folder)` opens.

Format (the layered convention `features.py` reads): one array `hidden` [n, L, D] per shard,
`store.json` listing `layers` and `pooling`, index rows with the label columns.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emoprep.manifests.token_store.layout import path_column, sha_column, shard_file, store_meta
from emoprep.manifests.token_store.writer import write_npy, write_store_files
from emoprep.pipeline.lazy import np, pd

ARRAY = "hidden"
EMOTIONS = ("excited", "delighted", "happy", "content", "relaxed", "calm",
            "tired", "bored", "depressed", "frustrated", "angry", "tense")


def chunk_items(n_songs: int, chunks: int, seed: int = 0, test_share: float = 0.2,
                n_images: int = 0) -> pd.DataFrame:
    """DEAM-like items: `chunks` per song with song-level VA plus a little chunk jitter, and an
    emotion class from the VA quadrant; the last `test_share` of songs in `test`. Images (one
    per source) are split the same way."""
    rng = np.random.default_rng(seed)
    rows = []
    n_test = max(1, round(n_songs * test_share))
    for s in range(n_songs):
        v0, a0 = rng.uniform(-0.8, 0.8, 2)
        for k in range(chunks):
            v, a = np.clip(np.array([v0, a0]) + rng.normal(0, 0.05, 2), -1, 1)
            rows.append({"sample_id": f"deam:{s + 2}:{k}", "source_id": f"deam:{s + 2}", "modality": 1,
                         "valence": float(v), "arousal": float(a), "emotion": _emotion(v, a),
                         "split": "test" if s >= n_songs - n_test else "train"})
    n_img_test = round(n_images * test_share)
    for i in range(n_images):
        v, a = rng.uniform(-0.9, 0.9, 2)
        rows.append({"sample_id": f"foodpics:{i + 1:04d}", "source_id": f"foodpics:{i + 1:04d}", "modality": 0,
                     "valence": float(v), "arousal": float(a), "emotion": _emotion(v, a),
                     "split": "test" if i >= n_images - n_img_test else "train"})
    return pd.DataFrame(rows)


def _emotion(v: float, a: float) -> str:
    quadrant = (2 if v >= 0 else 0) + (1 if a >= 0 else 0)
    return ("depressed", "angry", "calm", "happy")[quadrant]


def planted_layers(items: pd.DataFrame, n_layers: int, dim: int, signal_layer: int | None, seed: int = 0,
                   noise: float = 0.1) -> np.ndarray:
    """[n, L, D] float32: layer `signal_layer` is a fixed random linear map of (valence,
    arousal) plus Gaussian noise of std `noise`; every other layer is unit Gaussian noise."""
    rng = np.random.default_rng(seed)
    n = len(items)
    out = rng.standard_normal((n, n_layers, dim), dtype=np.float32)
    if signal_layer is not None:
        va = items[["valence", "arousal"]].to_numpy(np.float32)
        mix = rng.standard_normal((2, dim)).astype(np.float32)
        out[:, signal_layer] = va @ mix + noise * rng.standard_normal((n, dim), dtype=np.float32)
    return out


def write_pooled_store(folder: Path, items: pd.DataFrame, hidden: np.ndarray, tokenizer: str = "synthetic-encoder",
                       layers: Sequence[str] | None = None, shard_size: int = 2000, dtype: str = "float32",
                       extra_meta: dict[str, Any] | None = None) -> Path:
    """A standalone store folder: shards of `hidden` [n, L, D] in `dtype`, index, store.json."""
    folder.mkdir(parents=True, exist_ok=True)
    n, n_layers, dim = hidden.shape
    rows = []
    for shard, start in enumerate(range(0, n, shard_size)):
        name = shard_file(ARRAY, shard)
        sha, _ = write_npy(folder / name, hidden[start:start + shard_size].astype(dtype))
        for row, i in enumerate(range(start, min(start + shard_size, n))):
            rows.append({**items.iloc[i].to_dict(), "tokenizer": tokenizer, "shard": shard, "row": row,
                         "shape": [n_layers, dim], "dtype": dtype, "weights": "synthetic",
                         "path": name, path_column(ARRAY): name, sha_column(ARRAY): sha})
    index = pd.DataFrame(rows)
    names = list(layers) if layers is not None else [str(k) for k in range(n_layers)]
    meta = store_meta(index, tokenizer, dtype, {ARRAY: (n_layers, dim)}, {"sha256": "synthetic"},
                      {"layers": names, "pooling": "mean", **(extra_meta or {})})
    write_store_files(folder, index, meta)
    return folder
