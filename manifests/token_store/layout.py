"""The token store on disk: sharded NPY arrays plus a Parquet index (SPEC §5.3).

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

Shard objects. A shard's arrays depend only on its input images and the tokenizer setup,
not on the labels or the split that also enter the stage fingerprint. So the arrays live in
a content-addressed store shared by every fingerprint folder of one tokenizer::

    tokens/<tokenizer>/objects/<key>/cls.npy, patches.npy, object.json

where `key` is a SHA-256 over the setup and the (sample id, PNG SHA-256) list of the
shard. A store folder's `cls-00000.npy` is a hard link to its object's file (a copy where
the filesystem refuses links), so a new split re-links instead of re-running the model.
An object is written into a `.tmp-*` folder and renamed, so a complete object folder is
the only kind a reader can see; `object.json` records the inputs, which rows were kept,
the per-sample failures, and the size and SHA-256 of each file.
Hard links share their bytes: never edit a shard file in place (write a new file instead).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from emoprep.pipeline.atomic import TMP_PREFIX, atomic_path, atomic_write_json, canonical_json, tmp_name_for
from emoprep.pipeline.errors import DataError

STORE_FORMAT = "emoprep-token-store"
STORE_VERSION = 1
INDEX_FILE = "index.parquet"
STORE_FILE = "store.json"
MANIFEST_NAME = "tokens"  # the runner publishes the index as manifests/tokens.parquet
STORE_DTYPES = ("float16", "float32")  # ViT tokens (`tokens.dtype`)

# Per-sample array shapes of the tokenizers this package knows; `validate` checks stores
# against them (tests check them against the architectures in stages/vit.py, encodec.py).
KNOWN_LAYOUTS: dict[str, dict[str, tuple[int, ...]]] = {
    "vit-base-patch16-224": {"cls": (768,), "patches": (196, 768)},
    # thesis v1-2 images: patch 28 → 8 × 8 patches, hidden 2048 (random init, never ViT-base)
    "vit-patch28-h2048": {"cls": (2048,), "patches": (64, 2048)},
    # thesis v1-2 audio: EnCodec 24 kHz at 24 kbps on 46.0 s → 32 codebooks × 3450 frames
    "encodec-24khz": {"codes": (32, 3450)},
    "vit-tiny-test": {"cls": (32,), "patches": (196, 32)},
    "encodec-tiny-test": {"codes": (4, 750)},
}
# Stored dtypes of tokenizers whose arrays are not float tokens (default: STORE_DTYPES).
KNOWN_DTYPES: dict[str, tuple[str, ...]] = {"encodec-24khz": ("int16",), "encodec-tiny-test": ("int16",)}
# Codes must lie in [0, codebook size).
KNOWN_CODEBOOKS: dict[str, int] = {"encodec-24khz": 1024, "encodec-tiny-test": 16}
# Token order when a reader concatenates a sample's arrays.
ARRAY_ORDER = ("cls", "patches", "codes")
# Index columns every reader needs (plus `<array>_path` / `<array>_sha256` per array).
READER_COLUMNS = ("sample_id", "row", "modality", "valence", "arousal")


class StoreError(DataError, ValueError):
    """A token store that cannot be read as it is: an index lacking columns or holding
    values of the wrong kind, a shard file that is missing, truncated or not a numeric NPY
    array, a path that leads out of the store's root. The message names the file."""


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


# ---- writing ---------------------------------------------------------------------------

class _HashingWriter:
    """File-like wrapper: hashes (and counts) the bytes as NumPy writes them, so no second
    read is needed."""

    def __init__(self, fh: Any):
        self._fh = fh
        self.sha = hashlib.sha256()
        self.nbytes = 0

    def write(self, data: bytes | memoryview) -> int:
        self.sha.update(data)
        self.nbytes += memoryview(data).nbytes
        return self._fh.write(data)

    def flush(self) -> None:
        self._fh.flush()


def _write_npy(path: Path, array: np.ndarray) -> tuple[str, int]:
    """Write one NPY file in place (no pickle); returns (SHA-256, size in bytes)."""
    with open(path, "wb") as fh:
        writer = _HashingWriter(fh)
        np.lib.format.write_array(writer, np.ascontiguousarray(array), allow_pickle=False)
    return writer.sha.hexdigest(), writer.nbytes


def write_store_files(out_dir: Path, index: pd.DataFrame, meta: dict[str, Any]) -> None:
    """Write `index.parquet` and `store.json` into a store folder (both atomic)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(index.reset_index(drop=True), preserve_index=False)
    with atomic_path(Path(out_dir) / INDEX_FILE) as tmp:
        pq.write_table(table, tmp)
    atomic_write_json(Path(out_dir) / STORE_FILE, {"format": STORE_FORMAT, "version": STORE_VERSION, **meta})


def store_meta(index: pd.DataFrame, tokenizer: str, dtype: str, arrays: dict[str, tuple[int, ...]],
               weights: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `store.json` content for a finished index (shards and checksums from the rows);
    `extra` adds tokenizer facts (EnCodec: codebook size, sample rate, bandwidth, clip length)."""
    shards = []
    if len(index):
        for shard, grp in index.groupby("shard", sort=True):
            files = {name: {"file": Path(grp[path_column(name)].iloc[0]).name,
                            "sha256": grp[sha_column(name)].iloc[0]} for name in arrays}
            shards.append({"shard": int(shard), "n": int(len(grp)), "files": files})
    return {"tokenizer": tokenizer, "dtype": dtype,
            "arrays": {k: list(v) for k, v in arrays.items()},
            "shape": sequence_shape(arrays), "weights": weights, **(extra or {}),
            "n_samples": int(len(index)), "shards": shards}


# ---- content-addressed shard objects ---------------------------------------------------

OBJECTS_DIR = "objects"
OBJECT_FILE = "object.json"
OBJECT_FORMAT = "emoprep-token-object"
OBJECT_VERSION = 1


def object_key(config: dict[str, Any], inputs: list[tuple[str, str]]) -> str:
    """SHA-256 naming a shard's arrays: the tokenizer setup plus (sample id, PNG SHA-256)
    of each input, in shard order. Labels, split and shard number do not enter."""
    blob = {"format": OBJECT_FORMAT, "version": OBJECT_VERSION, "config": config,
            "inputs": [[str(sid), str(d)] for sid, d in inputs]}
    return hashlib.sha256(canonical_json(blob).encode("utf-8")).hexdigest()


def read_object(objects: Path, key: str) -> dict[str, Any] | None:
    """The record of a complete object, or None when it is absent or damaged (a file
    missing or of the wrong size): the caller then computes it again."""
    folder = Path(objects) / key
    try:
        meta = json.loads((folder / OBJECT_FILE).read_text(encoding="utf-8"))
        if meta.get("key") != key:
            return None
        for f in meta["files"].values():
            if (folder / f["file"]).stat().st_size != int(f["bytes"]):
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return meta


def write_object(objects: Path, key: str, arrays: dict[str, np.ndarray],
                 record: dict[str, Any]) -> dict[str, Any]:
    """Commit one shard object: files into a `.tmp-*` folder, `object.json` last, then one
    rename. If a complete object with this key is already there, it is kept. Returns the
    object's record (`record` + key + per-file name, size, SHA-256)."""
    objects = Path(objects)
    objects.mkdir(parents=True, exist_ok=True)
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"object {key[:12]}: arrays differ in length {lengths}")
    tmp = objects / f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{key[:16]}"
    tmp.mkdir()
    try:
        files = {}
        for name, arr in arrays.items():
            sha, nbytes = _write_npy(tmp / f"{name}.npy", arr)
            files[name] = {"file": f"{name}.npy", "bytes": nbytes, "sha256": sha}
        meta = {**record, "key": key, "files": files}
        (tmp / OBJECT_FILE).write_text(json.dumps(meta, sort_keys=True, indent=1) + "\n", encoding="utf-8")
        if (objects / key).exists():
            existing = read_object(objects, key)
            if existing is not None:
                return existing
            discard_object(objects, key)  # damaged: replace it
        try:
            os.rename(tmp, objects / key)
        except OSError:  # another writer committed the same key in the meantime
            existing = read_object(objects, key)
            if existing is None:
                raise
            return existing
        return meta
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def discard_object(objects: Path, key: str) -> None:
    """Remove an object folder: renamed to a temp name first, so no reader sees it half gone."""
    folder = Path(objects) / key
    if folder.exists():
        trash = Path(objects) / f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-discard-{key[:16]}"
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)


def sweep_object_temps(objects: Path) -> int:
    """Remove the `.tmp-*` folders a killed writer left in the object store; call only
    while holding the output folder's lock (the runner does), never next to a live writer."""
    n = 0
    if Path(objects).is_dir():
        for p in Path(objects).iterdir():
            if p.name.startswith(TMP_PREFIX):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                n += 1
    return n


def link_file(src: Path, dst: Path) -> None:
    """Make `dst` hold `src`'s bytes, atomically: a hard link (no copy) or, where the
    filesystem refuses links (another device, no link support), a copy."""
    if dst.exists() and os.path.samefile(src, dst):
        return
    tmp = tmp_name_for(dst)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    try:
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def link_shard(objects: Path, meta: dict[str, Any], out_dir: Path, shard: int) -> dict[str, tuple[Path, str]]:
    """Put an object's arrays into a store folder as `<array>-<shard>.npy`.
    Returns {array name: (path in the store folder, sha256)}."""
    out = {}
    for name, f in meta["files"].items():
        dst = Path(out_dir) / shard_file(name, shard)
        dst.parent.mkdir(parents=True, exist_ok=True)
        link_file(Path(objects) / meta["key"] / f["file"], dst)
        out[name] = (dst, f["sha256"])
    return out


# ---- reading ---------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def open_array(path: Path) -> np.ndarray:
    """Memory-map one shard array read-only (never unpickles). StoreError when the file is
    missing, truncated, not NPY, or not a numeric array of rows ([n, ...], n ≥ 0)."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise StoreError(f"{path}: not a readable NPY shard ({type(exc).__name__}: {exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf" or arr.ndim < 2:
        raise StoreError(f"{path}: expected a numeric array [rows, ...], found "
                         f"{getattr(arr, 'dtype', type(arr).__name__)} {getattr(arr, 'shape', '')}")
    return arr


def read_array_checked(path: Path) -> tuple[np.ndarray, str]:
    """Read a whole shard array and the SHA-256 of its bytes in one pass (for validation).

    Raises ValueError (with NumPy's reason) for a truncated or malformed file."""
    data = Path(path).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    arr = np.load(io.BytesIO(data), allow_pickle=False)
    return arr, sha


@dataclass
class StoreIndex:
    """An index table and where its relative paths point.

    `root` is the run's output root (paths are used as they are) or, for a store folder
    opened on its own (`standalone`), the folder that holds the shard files by name."""

    df: pd.DataFrame
    root: Path
    standalone: bool = False

    def resolve(self, rel_path: Any) -> Path:
        """The file an index path names. StoreError for anything but a plain relative path
        that stays inside `root` (absolute, `..`, empty, not a string, a symlink leading out):
        an index edited by hand or by an attacker must not make a reader open other files."""
        pure = PurePosixPath(rel_path) if isinstance(rel_path, str) and "\x00" not in rel_path else None
        if pure is None or not pure.parts or pure.is_absolute() or ".." in pure.parts:
            raise StoreError(f"index path {rel_path!r}: not a path inside the store root {self.root}")
        path = self.root / (pure.name if self.standalone else pure)
        if path.exists() and not path.resolve().is_relative_to(self.root.resolve()):
            raise StoreError(f"index path {rel_path!r} leads out of the store root {self.root} (a symlink)")
        return path

    def arrays(self, rows: pd.DataFrame | None = None) -> list[str]:
        """Array names (`cls`, `patches`, `codes`, ...) that `rows` (default: the whole index)
        point at: path + sha columns with a value, in token order."""
        df = self.df if rows is None else rows
        names = [c[: -len("_path")] for c in df.columns
                 if c.endswith("_path") and c != "path" and sha_column(c[: -len("_path")]) in df.columns
                 and df[c].notna().any()]
        return sorted(names, key=lambda a: (ARRAY_ORDER.index(a) if a in ARRAY_ORDER else len(ARRAY_ORDER), a))


def load_index(root: str | Path, tokenizer: str | None = None) -> StoreIndex:
    """Find and read a token index.

    `root` may be a run's output root (reads `manifests/tokens.parquet`; if that is absent,
    the single finished store under `tokens/<tokenizer>/`) or one store folder (has
    `store.json`). Rows are filtered to `tokenizer` when given."""
    root = Path(root)
    if (root / STORE_FILE).is_file():
        idx = StoreIndex(_read_index(root / INDEX_FILE), root, standalone=True)
    elif (root / "manifests" / f"{MANIFEST_NAME}.parquet").is_file():
        idx = StoreIndex(_read_index(root / "manifests" / f"{MANIFEST_NAME}.parquet"), root)
    else:
        idx = StoreIndex(_read_index(_single_store(root, tokenizer) / INDEX_FILE), root)
    if tokenizer is not None:
        if "tokenizer" not in idx.df.columns:
            raise StoreError(f"the token index in {root} has no 'tokenizer' column")
        known = sorted(set(map(str, idx.df["tokenizer"])))
        idx.df = idx.df[idx.df["tokenizer"] == tokenizer].reset_index(drop=True)
        if idx.df.empty:
            raise FileNotFoundError(f"no tokens for tokenizer {tokenizer!r} in {root} "
                                    f"(tokenizers there: {', '.join(known) or 'none'})")
    return idx


def _read_index(path: Path) -> pd.DataFrame:
    """A Parquet index; StoreError naming it when it is not readable Parquet."""
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise StoreError(f"{path}: not a readable Parquet index ({type(exc).__name__}: {exc})") from None


def check_index(df: pd.DataFrame, where: Any, columns: tuple[str, ...] = READER_COLUMNS) -> None:
    """StoreError naming `where` unless the index has `columns` with usable values: a
    non-empty sample_id, a whole `row` ≥ 0, `modality` 0 or 1, finite `valence`/`arousal`
    in [-1, 1] (the readers' documented contract), and an integer `shard` when required."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise StoreError(f"{where}: the token index lacks columns {missing}")
    checks = {"sample_id": lambda s: s.notna() & (s.astype(str) != ""),
              "row": lambda s: _whole(s) & (_num(s) >= 0),
              "shard": lambda s: _whole(s) & (_num(s) >= 0),
              "modality": lambda s: _num(s).isin([0, 1]),
              "valence": lambda s: _num(s).between(-1.0, 1.0),
              "arousal": lambda s: _num(s).between(-1.0, 1.0),
              # split names become folder names (the HF view): plain names only
              "split": lambda s: s.isna() | s.astype(str).str.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")}
    for col in columns:
        ok = checks[col](df[col]) if col in checks else pd.Series(True, index=df.index)
        if not bool(ok.all()):
            bad = df.loc[~ok.to_numpy(bool), col].head(3).tolist()
            raise StoreError(f"{where}: column {col!r} has {int((~ok).sum())} unusable values, e.g. {bad}")


def _num(s: pd.Series) -> pd.Series:
    """A numeric column as float64 (missing → NaN); a column of another type (text, bools,
    objects) is all NaN: numbers must be stored as numbers."""
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        return pd.Series(np.nan, index=s.index)
    return s.astype("float64")


def _whole(s: pd.Series) -> pd.Series:
    x = _num(s)
    return np.isfinite(x) & (x == np.floor(x)) & (x < 2 ** 53)


def _single_store(root: Path, tokenizer: str | None) -> Path:
    """The one finished store folder under `root/tokens/`: `tokens/<tokenizer>/<fp>/`, or
    `tokens/<a>+<b>/<fp>/<tokenizer>/` written by a stage with several tokenizers."""
    tok = tokenizer or "*"
    found = sorted(p.parent for p in root.glob(f"tokens/{tok}/*/{STORE_FILE}") if (p.parent / "_DONE.json").is_file())
    found += sorted(p.parent for p in root.glob(f"tokens/*/*/{tok}/{STORE_FILE}")
                    if (p.parent.parent / "_DONE.json").is_file())
    if len(found) != 1:
        what = "no finished token store" if not found else f"{len(found)} token stores"
        raise FileNotFoundError(f"{what} under {root}/tokens and no manifests/tokens.parquet; "
                                "run `emoprep run --stage tokens` or pass one store folder")
    return found[0]


def read_store_json(store_dir: Path) -> dict[str, Any]:
    return json.loads((Path(store_dir) / STORE_FILE).read_text())
