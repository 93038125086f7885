"""The token store on disk (SPEC §5.3): what its writer and its readers agree on.

Sharded NPY arrays plus a Parquet index. This module holds the format (file names, per-sample
shapes and dtypes, the index columns readers need, `store.json`) and `StoreError`; the
writer side is `writer.py` (index + store.json) and `objects.py` (the content-addressed shard
files), the reading side `reader.py`.

Layout of one store (`tokens/<tokenizer>/<fingerprint>/`; when one `tokens` stage writes
several stores, `tokens/<a>+<b>/<fingerprint>/<tokenizer>/`)::

    cls-00000.npy       [n, D]        ViT: one CLS token per sample of shard 0
    patches-00000.npy   [n, P, D]     ViT: the patch tokens of the same samples, same row order
    codes-00000.npy     [n, K, T]     EnCodec: int16 codes, K codebooks × T frames per sample
    ...
    index.parquet       one row per sample: sample_id, tokenizer, shard, row, shape, dtype,
                        weights, the label columns, `<array>_path` / `<array>_sha256` per array
    store.json          self-description: tokenizer, dtype, per-sample array shapes, weight
                        identity, shard list with checksums (EnCodec: codebook size, rate, kbps)

Which arrays a tokenizer has, with their per-sample shapes, is `KNOWN_LAYOUTS` (and each
store's `store.json`); their stored dtype is `STORE_DTYPES` for ViT tokens and
`KNOWN_DTYPES[tokenizer]` for codes.

Paths in the index are relative to the run's output root (as in every manifest); the runner
also publishes the index as `manifests/tokens.parquet`. A store folder copied elsewhere stays
readable: `load_index(store_dir)` resolves the shard files by name inside that folder.

Plain NumPy access (no torch)::

    import numpy as np, pandas as pd
    idx = pd.read_parquet("emoprep-out/manifests/tokens.parquet")
    r = idx.iloc[0]
    patches = np.load("emoprep-out/" + r.patches_path, mmap_mode="r", allow_pickle=False)
    cls = np.load("emoprep-out/" + r.cls_path, mmap_mode="r", allow_pickle=False)
    tokens = np.concatenate([cls[r.row][None], patches[r.row]])      # [197, 768] float16
    # EnCodec rows (tokenizer "encodec-24khz") have `codes_path` instead:
    codes = np.load("emoprep-out/" + r.codes_path, mmap_mode="r", allow_pickle=False)[r.row]  # [32, 3450] int16

NPY was chosen over a container format because every trainer can memory-map it with NumPy
alone, its header states shape and dtype (self-describing), and its bytes are deterministic.

The shard files themselves live in a content-addressed object store shared by every
fingerprint folder of one tokenizer (`tokens/<tokenizer>/objects/`, see `objects.py`);
a store folder's `cls-00000.npy` is a hard link to its object's file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, SupportsIndex, SupportsInt

from emoprep.pipeline.errors import DataError
from emoprep.pipeline.lazy import np, pd

STORE_FORMAT = "emoprep-token-store"
STORE_VERSION = 1
INDEX_FILE = "index.parquet"
STORE_FILE = "store.json"
MANIFEST_NAME = "tokens"  # the runner publishes the index as manifests/tokens.parquet
STORE_DTYPES = ("float16", "float32")  # ViT tokens (`tokens.dtype`)

# Per-sample array shapes of the tokenizers this package knows; `validate` checks stores
# against them (tests check them against the architectures in stages/tokens/vit.py, encodec.py).
KNOWN_LAYOUTS: dict[str, dict[str, tuple[int, ...]]] = {
    "vit-base-patch16-224": {"cls": (768,), "patches": (196, 768)},
    # thesis v1-2 images: patch 28 → 8 × 8 patches, hidden 2048 (random init, never ViT-base)
    "vit-patch28-h2048": {"cls": (2048,), "patches": (64, 2048)},
    # thesis v1-2 audio: EnCodec 24 kHz at 24 kbps on 46.0 s → 32 codebooks × 3450 frames
    "encodec-24khz": {"codes": (32, 3450)},
    "vit-tiny-test": {"cls": (32,), "patches": (196, 32)},
    "encodec-tiny-test": {"codes": (4, 750)},
}
# Tokenizers whose tokens are a seeded random init by design: no checkpoint of the architecture
# is published, so `validate --require-pretrained` reports them without failing (why: the value).
RANDOM_INIT_BY_DESIGN: dict[str, str] = {
    "vit-patch28-h2048": "the thesis's custom patch-28 / hidden-2048 ViT; ViT-base's weights do not fit it",
}
# Stored dtypes of tokenizers whose arrays are not float tokens (default: STORE_DTYPES).
KNOWN_DTYPES: dict[str, tuple[str, ...]] = {"encodec-24khz": ("int16",), "encodec-tiny-test": ("int16",)}
# Codes must lie in [0, codebook size).
KNOWN_CODEBOOKS: dict[str, int] = {"encodec-24khz": 1024, "encodec-tiny-test": 16}
# Token order when a reader concatenates a sample's arrays.
HIDDEN = "hidden"  # the one array of an hf: encoder store: [layers, ...] per sample
ARRAY_ORDER = ("cls", "patches", "codes", HIDDEN)
# Index columns every reader needs (plus `<array>_path` / `<array>_sha256` per array).
READER_COLUMNS = ("sample_id", "row", "modality", "valence", "arousal")


class StoreError(DataError, ValueError):
    """A token store that cannot be read as it is: an index lacking columns or holding
    values of the wrong kind, a shard file that is missing, truncated or not a numeric NPY
    array, a path that leads out of the store's root. The message names the file."""


def tokenizer_folder(tokenizer: str) -> str:
    """The folder name of a tokenizer's stores under `tokens/`: its name, or for
    `hf:<model id or folder>` that name without path separators plus a short hash of it
    (two folders with one base name stay apart)."""
    if not tokenizer.startswith("hf:"):
        return tokenizer
    import hashlib
    import re

    body = re.sub(r"[^A-Za-z0-9._-]+", "-", tokenizer[3:]).strip("-.")[-60:]
    return f"hf-{body}-{hashlib.sha256(tokenizer.encode()).hexdigest()[:8]}"


def stored_layers(index: pd.DataFrame) -> list[int] | None:
    """The hidden-state indices an `hf:` encoder store holds along its layer axis (its index's
    `layers` column, 0 = embeddings), or None for a store without one (ViT, EnCodec)."""
    if "layers" not in index.columns or index.empty or index["layers"].isna().all():
        return None
    return [int(v) for v in index["layers"].dropna().iloc[0]]


def shard_file(array: str, shard: int) -> str:
    """File name of one array of one shard, e.g. `patches-00003.npy`."""
    return f"{array}-{shard:05d}.npy"


def path_column(array: str) -> str:
    return f"{array}_path"


def sha_column(array: str) -> str:
    return f"{array}_sha256"


def sequence_shape(arrays: dict[str, tuple[int, ...]]) -> list[int]:
    """The token sequence one sample gives, e.g. CLS [768] + patches [196, 768] → [197, 768]."""
    n_tokens, dim = 0, None
    for shape in arrays.values():
        n_tokens += 1 if len(shape) == 1 else shape[0]
        dim = shape[-1]
    return [n_tokens, int(dim or 0)]


def token_sequence(parts: list[np.ndarray]) -> np.ndarray:
    """One sample's arrays, in the store's array order, as its [T, D] token sequence (the
    arrays' dtype): a 1-D array (ViT's CLS) is one token. ValueError when token widths differ."""
    seq = [p.reshape(-1, p.shape[-1]) for p in parts]
    if len({s.shape[1] for s in seq}) > 1:
        raise ValueError(f"arrays differ in token width {[s.shape[1] for s in seq]}")
    return np.concatenate(seq) if len(seq) > 1 else seq[0]


def as_int(value: object) -> int:
    """`int(value)` for a value typed more broadly than it is (a pandas group key); TypeError
    for what `int` does not take."""
    if isinstance(value, (str, bytes, SupportsInt, SupportsIndex)):
        return int(value)
    raise TypeError(f"int() argument must be a string, a bytes-like object or a real number, "
                    f"not '{type(value).__name__}'")


def store_meta(index: pd.DataFrame, tokenizer: str, dtype: str, arrays: dict[str, tuple[int, ...]],
               weights: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `store.json` content for a finished index (shards and checksums from the rows);
    `extra` adds tokenizer facts (EnCodec: codebook size, sample rate, bandwidth, clip length)."""
    shards = []
    if len(index):
        for shard, grp in index.groupby("shard", sort=True):
            files = {name: {"file": Path(grp[path_column(name)].iloc[0]).name,
                            "sha256": grp[sha_column(name)].iloc[0]} for name in arrays}
            shards.append({"shard": as_int(shard), "n": len(grp), "files": files})
    return {"tokenizer": tokenizer, "dtype": dtype,
            "arrays": {k: list(v) for k, v in arrays.items()},
            "shape": sequence_shape(arrays), "weights": weights, **(extra or {}),
            "n_samples": len(index), "shards": shards}
