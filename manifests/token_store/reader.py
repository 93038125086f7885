"""Reading a token store: its index (found from an output root or a store folder) and its
shard arrays, memory-mapped, never unpickled, with every index path kept inside the store's
root. Used by the trainer readers (`emoprep.manifests.reader`, `hf_view`) and `validate`.

A root may also be an fsspec URL (`s3://bucket/run`, `gs://…`; `file://` is a local path).
Remote stores are read through a local cache (`EMOPREP_CACHE`, default
`~/.cache/emoprep/remote/<hash of the URL>/`): the index is fetched when the store is opened,
each shard file the first time an item needs it (whole, to a temp file renamed into place, so
DataLoader workers on one machine share one copy), and then memory-mapped like a local one.
Whole-shard caching was chosen over ranged reads because a shard is read row by row in random
order many times per training run: one download per shard instead of a request per item and
array (`bench/remote_read.py`: 9 objects and 0.60 s against 808 requests and 7.13 s for one
epoch of 400 items on a local S3 server; bench/RESULTS.md).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from emoprep.manifests.token_store.layout import (
    ARRAY_ORDER,
    INDEX_FILE,
    MANIFEST_NAME,
    READER_COLUMNS,
    STORE_FILE,
    StoreError,
    sha_column,
    tokenizer_folder,
)


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


CACHE_ENV = "EMOPREP_CACHE"


def is_remote(root: Any) -> bool:
    """An fsspec URL other than file:// (those are read as local paths)."""
    return isinstance(root, str) and "://" in root and not root.startswith("file://")


def local_path(root: str | os.PathLike[str]) -> Path:
    return Path(root[len("file://"):]) if isinstance(root, str) and root.startswith("file://") else Path(root)


@dataclass(frozen=True)
class Remote:
    """Where a cached store's files come from: `url` (the root) and fsspec options."""

    url: str
    cache: Path
    storage_options: tuple[tuple[str, Any], ...] = ()

    def filesystem(self) -> Any:
        import fsspec

        fs, _ = fsspec.core.url_to_fs(self.url, **dict(self.storage_options))
        return fs

    def fetch(self, local: Path, refresh: bool = False) -> Path:
        """The cached copy of the remote file that `local` stands for, downloaded if missing."""
        if local.is_file() and not refresh:
            return local
        rel = local.relative_to(self.cache).as_posix()
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{os.getpid()}.part")
        try:
            self.filesystem().get_file(f"{self.url}/{rel}", str(tmp))
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"{self.url}/{rel}: no such object") from None
        os.replace(tmp, local)
        return local

    def exists(self, rel: str) -> bool:
        return bool(self.filesystem().exists(f"{self.url}/{rel}"))


def open_remote(url: str, storage_options: dict[str, Any] | None = None) -> Remote:
    """The cache of one remote root (created on first use)."""
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "emoprep" / "remote")
    url = url.rstrip("/")
    cache = base / hashlib.sha256(url.encode()).hexdigest()[:16]
    cache.mkdir(parents=True, exist_ok=True)
    return Remote(url, cache, tuple(sorted((storage_options or {}).items())))


@dataclass
class StoreIndex:
    """An index table and where its relative paths point.

    `root` is the run's output root (paths are used as they are) or, for a store folder
    opened on its own (`standalone`), the folder that holds the shard files by name."""

    df: pd.DataFrame
    root: Path
    standalone: bool = False
    remote: Remote | None = None  # a remote store: `root` is its local cache

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


def load_index(root: str | os.PathLike[str], tokenizer: str | None = None,
               storage_options: dict[str, Any] | None = None) -> StoreIndex:
    """Find and read a token index.

    `root` may be a run's output root (reads `manifests/tokens.parquet`; if that is absent,
    the single finished store under `tokens/<tokenizer>/`) or one store folder (has
    `store.json`), local or an fsspec URL (`storage_options` go to fsspec). Rows are filtered
    to `tokenizer` when given."""
    if is_remote(root):
        idx = _remote_index(str(root), storage_options)
        return _only(idx, tokenizer, root)
    root = local_path(root)
    if (root / STORE_FILE).is_file():
        idx = StoreIndex(_read_index(root / INDEX_FILE), root, standalone=True)
    elif (root / "manifests" / f"{MANIFEST_NAME}.parquet").is_file():
        idx = StoreIndex(_read_index(root / "manifests" / f"{MANIFEST_NAME}.parquet"), root)
    else:
        idx = StoreIndex(_read_index(_single_store(root, tokenizer) / INDEX_FILE), root)
    return _only(idx, tokenizer, root)


def _remote_index(url: str, storage_options: dict[str, Any] | None) -> StoreIndex:
    """A remote output root (its `manifests/tokens.parquet`) or store folder (`store.json`);
    the index is fetched again each time, the shards only once."""
    remote = open_remote(url, storage_options)
    if remote.exists(STORE_FILE):
        remote.fetch(remote.cache / STORE_FILE, refresh=True)
        index = remote.fetch(remote.cache / INDEX_FILE, refresh=True)
        return StoreIndex(_read_index(index), remote.cache, standalone=True, remote=remote)
    rel = f"manifests/{MANIFEST_NAME}.parquet"
    if not remote.exists(rel):
        raise FileNotFoundError(f"{url}: neither {STORE_FILE} (a store folder) nor {rel} (an output root)")
    return StoreIndex(_read_index(remote.fetch(remote.cache / rel, refresh=True)), remote.cache, remote=remote)


def _only(idx: StoreIndex, tokenizer: str | None, root: Any) -> StoreIndex:
    """The rows of `tokenizer` (all when None)."""
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


def read_rows(store: StoreIndex, rows: pd.DataFrame, arrays: list[str]) -> dict[str, np.ndarray]:
    """The stored arrays of `rows` (index rows of `store`), in their order and stored dtype:
    {name: [len(rows), *per-sample shape]}. One fancy-indexed read per shard file, so a
    batch of rows costs one pass over each shard it touches (`rows` must not be empty). StoreError when a row is
    missing its file or lies past the end of its shard."""
    rows = rows.reset_index(drop=True)
    out: dict[str, np.ndarray] = {}
    for name in arrays:
        col = f"{name}_path"
        if rows[col].isna().any():
            raise StoreError(f"{int(rows[col].isna().sum())} rows have no {col}, "
                             f"e.g. {rows.loc[rows[col].isna(), 'sample_id'].iloc[0]}")
        parts: list[np.ndarray] = []
        order: list[np.ndarray] = []
        for rel, grp in rows.groupby(col, sort=True):
            path = store.resolve(rel)
            arr = open_array(store.remote.fetch(path) if store.remote is not None else path)
            want = grp["row"].to_numpy(np.int64)
            if len(want) and (want.max() >= len(arr) or want.min() < 0):
                raise StoreError(f"{path}: the index's rows of this shard do not fit it "
                                 f"({len(arr)} rows, index asks for row {int(want.max())})")
            parts.append(np.asarray(arr[want]))
            order.append(grp.index.to_numpy(np.int64))
        stacked = np.concatenate(parts)
        out[name] = np.empty_like(stacked)
        out[name][np.concatenate(order)] = stacked
    return out


def check_index(df: pd.DataFrame, where: Any, columns: tuple[str, ...] = READER_COLUMNS) -> None:
    """StoreError naming `where` unless the index has `columns` with usable values: a
    non-empty sample_id, a whole `row` ≥ 0, `modality` 0 or 1, finite `valence`/`arousal`
    in [-1, 1] (the readers' documented contract), and an integer `shard` when required."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise StoreError(f"{where}: the token index lacks columns {missing}")
    checks: dict[str, Callable[[pd.Series], pd.Series]] = {"sample_id": lambda s: s.notna() & (s.astype(str) != ""),
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
    whole: pd.Series = np.isfinite(x) & (x == np.floor(x)) & (x < 2 ** 53)
    return whole


def _single_store(root: Path, tokenizer: str | None) -> Path:
    """The one finished store folder under `root/tokens/`: `tokens/<tokenizer>/<fp>/`, or
    `tokens/<a>+<b>/<fp>/<tokenizer>/` written by a stage with several tokenizers."""
    tok = tokenizer_folder(tokenizer) if tokenizer else "*"
    found = sorted(p.parent for p in root.glob(f"tokens/{tok}/*/{STORE_FILE}") if (p.parent / "_DONE.json").is_file())
    found += sorted(p.parent for p in root.glob(f"tokens/*/*/{tok}/{STORE_FILE}")
                    if (p.parent.parent / "_DONE.json").is_file())
    if len(found) != 1:
        what = "no finished token store" if not found else f"{len(found)} token stores"
        raise FileNotFoundError(f"{what} under {root}/tokens and no manifests/tokens.parquet; "
                                "run `emoprep run --stage tokens` or pass one store folder")
    return found[0]


def read_store_json(store_dir: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((Path(store_dir) / STORE_FILE).read_text())
    return meta
