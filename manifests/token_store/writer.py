"""Writing a token store folder: shard arrays as NPY files hashed while they are written,
then the folder's `index.parquet` and `store.json` (format: `layout.py`).

The shard files of a store are written once into the content-addressed object store
(`objects.py`) and linked into each store folder; this module writes the bytes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO, Any

from emoprep.manifests.token_store.layout import INDEX_FILE, STORE_FILE, STORE_FORMAT, STORE_VERSION
from emoprep.pipeline.atomic import atomic_path, atomic_write_json
from emoprep.pipeline.lazy import np, pd


class _HashingWriter:
    """File-like wrapper: hashes (and counts) the bytes as NumPy writes them, so no second
    read is needed."""

    def __init__(self, fh: IO[bytes]):
        self._fh = fh
        self.sha = hashlib.sha256()
        self.nbytes = 0

    def write(self, data: bytes | memoryview) -> int:
        self.sha.update(data)
        self.nbytes += memoryview(data).nbytes
        return self._fh.write(data)

    def flush(self) -> None:
        self._fh.flush()


def write_npy(path: Path, array: np.ndarray) -> tuple[str, int]:
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
