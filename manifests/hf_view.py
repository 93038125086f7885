"""The Hugging Face view of a token store: a Parquet copy that `datasets` loads as it is.

    import datasets
    from emoprep.manifests import hf_parquet_view
    dsd = datasets.load_dataset("parquet", data_files=hf_parquet_view("emoprep-out"))
    dsd["train"].with_format("numpy")[0]["patches"]                      # [196, 768]

Written once per store content (`view_key`), one Parquet file per (split, shard), next to
the store; pyarrow is imported inside the functions.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from emoprep.manifests.token_store.layout import (
    ARRAY_ORDER,
    READER_COLUMNS,
    as_int,
    path_column,
    sha_column,
)
from emoprep.manifests.token_store.reader import StoreIndex, check_index, load_index, read_rows
from emoprep.pipeline.atomic import atomic_path, atomic_write_json

VIEW_FILE = "_VIEW.json"
VIEW_VERSION = 2
VIEW_COLUMNS = ("sample_id", "source_id", "modality", "start_s", "end_s", "valence", "arousal",
                "valence_raw", "arousal_raw", "emotion", "split", "tokenizer", "weights", "image_path",
                "audio_path")


def hf_parquet_view(out_root: str | os.PathLike[str], tokenizer: str = "vit-base-patch16-224",
                    dest: str | os.PathLike[str] | None = None) -> dict[str, list[str]]:
    """Write (once) a Parquet copy of a token store and return `data_files` for
    `datasets.load_dataset("parquet", data_files=...)`: {split: [file, ...]}.

    Columns: the label columns, `cls` [D] and `patches` [P][D] (ViT) or `codes` [K][T]
    (EnCodec, int16) as fixed-size lists in the stored dtype (float16 by default). One file
    per (split, shard) keeps memory bounded.
    The view is keyed by everything it writes (`view_key`: the tokens stage fingerprint and
    the index content — labels, split, shard checksums): an unchanged store is not
    rewritten; a new split or new labels give a new view. Default folder:
    `<out_root>/hf/<tokenizer>/<key>/`.
    """
    store = load_index(out_root, tokenizer)
    check_index(store.df, out_root, (*READER_COLUMNS, "split", "shard"))
    df = store.df.sort_values(["shard", "row"], kind="stable").reset_index(drop=True)
    key = view_key(df, tokenizer)
    dest = Path(dest) if dest is not None else (
        store.root / "hf" if store.standalone else store.root / "hf" / tokenizer / key)
    marker = dest / VIEW_FILE
    old_parts: set[str] = set()
    if marker.is_file():
        import json

        info = json.loads(marker.read_text())
        if info.get("key") == key:
            return {s: [str(dest / f) for f in files] for s, files in info["data_files"].items()}
        old_parts = {f for files in info.get("data_files", {}).values() for f in files}
        marker.unlink()  # the parts are about to change: the old key must stop vouching for them
    data_files: dict[str, list[str]] = {}
    for (split, shard), grp in df.groupby(["split", "shard"], sort=True):
        rel = f"{split}/part-{as_int(shard):05d}.parquet"
        _write_view_part(dest / rel, grp, store)
        data_files.setdefault(str(split), []).append(rel)
    atomic_write_json(marker, {"key": key, "tokenizer": tokenizer, "data_files": data_files})
    for rel in old_parts - {f for files in data_files.values() for f in files}:
        if _view_part_name(rel):  # a tampered _VIEW.json must not delete files elsewhere
            (dest / rel).unlink(missing_ok=True)  # e.g. a split name that no longer exists
    return {s: [str(dest / f) for f in files] for s, files in data_files.items()}


def _view_part_name(rel: Any) -> bool:
    """Is `rel` a part file name this module writes (`<split>/part-<n>.parquet`)?"""
    parts = PurePosixPath(rel).parts if isinstance(rel, str) else ()
    return (len(parts) == 2 and parts[0] not in ("", ".", "..") and parts[1].startswith("part-")
            and parts[1].endswith(".parquet"))


def view_key(index: pd.DataFrame, tokenizer: str) -> str:
    """16 hex digits naming a view: SHA-256 over the tokens stage fingerprint(s) and the exact
    content (Arrow IPC bytes) of every index column the view is built from."""
    import pyarrow as pa

    arrays = [c for a in ARRAY_ORDER for c in (path_column(a), sha_column(a))]
    cols = [c for c in (*VIEW_COLUMNS, "shard", "row", "fingerprint", *arrays) if c in index.columns]
    table = pa.Table.from_pandas(index[cols].reset_index(drop=True), preserve_index=False)
    table = table.replace_schema_metadata(None)  # pandas' metadata names its own version
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    h = hashlib.sha256(f"emoprep-hf-view/{VIEW_VERSION}/{tokenizer}\n".encode())
    fps = sorted(set(map(str, index["fingerprint"]))) if "fingerprint" in index.columns else []
    h.update(("fingerprints:" + ",".join(fps) + "\n").encode())
    h.update(sink.getvalue().to_pybytes())
    return h.hexdigest()[:16]


def fixed_size_list(values: np.ndarray) -> Any:
    """[n, *dims] array → nested pyarrow FixedSizeListArray of length n, in the array's dtype
    (this view's columns; `emoprep export --format hf` casts it to the datasets feature)."""
    import pyarrow as pa

    arr = pa.array(np.ascontiguousarray(values).reshape(-1))
    for dim in reversed(values.shape[1:]):
        arr = pa.FixedSizeListArray.from_arrays(arr, int(dim))
    return arr


def _write_view_part(path: Path, grp: pd.DataFrame, store: StoreIndex) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {c: pa.array(grp[c].tolist()) for c in VIEW_COLUMNS  # (another tokenizer's input column: absent)
            if c in grp.columns and not (c.endswith("_path") and grp[c].isna().all())}
    # cls + patches (ViT) or codes (EnCodec), in the stored dtype
    cols.update({name: fixed_size_list(values) for name, values in read_rows(store, grp, store.arrays(grp)).items()})
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(cols), tmp, row_group_size=64)
