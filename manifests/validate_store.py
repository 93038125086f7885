"""`emoprep validate`, per tokenizer: ids, recorded shapes, and every shard file (present,
complete, its checksum, shape and dtype, rows for every id, finite values or codes within the
codebook). Check names and meanings: `emoprep.manifests.validate`.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from emoprep.manifests.token_store.layout import (
    KNOWN_CODEBOOKS,
    KNOWN_DTYPES,
    KNOWN_LAYOUTS,
    STORE_DTYPES,
    STORE_FILE,
    StoreError,
    path_column,
    sequence_shape,
    sha_column,
    stored_layers,
)
from emoprep.manifests.token_store.reader import StoreIndex, read_array_checked, read_store_json
from emoprep.manifests.validate_report import ValidationReport


def _store_meta(store: StoreIndex, rows: pd.DataFrame) -> dict[str, Any] | None:
    """The `store.json` next to the rows' first shard file (None when there is none)."""
    for name in store.arrays(rows):
        try:
            folder = store.resolve(str(rows[path_column(name)].dropna().iloc[0])).parent
        except StoreError:  # reported by shard-files
            continue
        if (folder / STORE_FILE).is_file():
            try:
                return read_store_json(folder)
            except (OSError, ValueError):
                return None
    return None


def _expected(tokenizer: str, store: StoreIndex, rows: pd.DataFrame
              ) -> tuple[dict[str, tuple[int, ...]] | None, tuple[str, ...], int | None]:
    """(per-sample array shapes, allowed stored dtypes, codebook size or None): known
    tokenizers from the tables in token_store, others from their store.json."""
    if tokenizer in KNOWN_LAYOUTS:
        return (KNOWN_LAYOUTS[tokenizer], KNOWN_DTYPES.get(tokenizer, STORE_DTYPES),
                KNOWN_CODEBOOKS.get(tokenizer))
    meta = _store_meta(store, rows) or {}
    layout = {k: tuple(v) for k, v in meta["arrays"].items()} if "arrays" in meta else None
    dtypes = (str(meta["dtype"]),) if "dtype" in meta else STORE_DTYPES
    return layout, dtypes, meta.get("codebook_size")


def check_tokenizer(report: ValidationReport, store: StoreIndex, tokenizer: str, rows: pd.DataFrame) -> None:
    dup = rows.loc[rows["sample_id"].duplicated(keep=False), "sample_id"].astype(str).tolist()
    report.add("unique-ids", dup, "every sample id once", "{n} ids appear more than once", tokenizer)

    layout, dtypes, codebook = _expected(tokenizer, store, rows)
    arrays = list(layout) if layout else store.arrays(rows)
    layers = stored_layers(rows)
    want_shape = (list(layout[arrays[0]]) if layers is not None and layout and len(layout) == 1
                  else sequence_shape(layout) if layout else None)
    if layers is not None:
        _check_layers(report, store, tokenizer, rows, layers)
    bad_index = []
    for sid, recorded, dtype in zip(rows["sample_id"], rows["shape"], rows["dtype"], strict=True):
        shape = [int(x) for x in recorded]
        if (want_shape is not None and shape != want_shape) or dtype not in dtypes:
            bad_index.append(f"{sid} (shape {shape}, dtype {dtype})")
    for name in arrays:
        for col in (path_column(name), sha_column(name)):
            lacking = rows["sample_id"] if col not in rows else rows.loc[rows[col].isna(), "sample_id"]
            bad_index += [f"{sid} (no {col})" for sid in lacking.astype(str)]
    report.add("index-shapes", bad_index,
               f"all rows {want_shape or 'consistent'} {'/'.join(sorted(set(rows['dtype'])))}",
               "{n} rows with a shape, dtype or array column other than "
               f"{want_shape} {'/'.join(dtypes)} with {', '.join(arrays)}", tokenizer)

    problems: dict[str, list[str]] = defaultdict(list)
    for _shard, grp in rows.groupby("shard", sort=True):
        for name in arrays:
            cols = [path_column(name), sha_column(name)]
            if all(c in grp and grp[c].notna().all() for c in cols):  # else reported by index-shapes
                _check_shard_array(problems, store, name, grp, layout, codebook)
    report.add("shard-files", problems["files"], "every shard file complete",
               "{n} shard files missing or unreadable", tokenizer)
    report.add("shard-checksums", problems["sha"], "every shard matches its SHA-256",
               "{n} shard files differ from their recorded SHA-256", tokenizer)
    report.add("token-shapes", problems["shape"], "shard shapes and dtypes match the layout",
               "{n} shard arrays with a wrong shape or dtype", tokenizer)
    report.add("ids-have-tokens", problems["ids"], "every index row has its tokens",
               "{n} index rows without tokens", tokenizer)
    if any(np.issubdtype(np.dtype(d), np.floating) for d in dtypes) or problems["finite"]:
        report.add("finite-values", problems["finite"], "no NaN or inf",
                   "{n} samples with NaN or inf tokens", tokenizer)
    if codebook is not None or problems["codes"]:
        report.add("code-range", problems["codes"], f"every code in [0, {codebook})",
                   "{n} samples with codes outside " + f"[0, {codebook})", tokenizer)


def _check_layers(report: ValidationReport, store: StoreIndex, tokenizer: str, rows: pd.DataFrame,
                  layers: list[int]) -> None:
    """An `hf:` store's layer axis: every row lists the same hidden-state indices, as many as
    its shape's first axis, and the store.json says the same."""
    bad = []
    for sid, listed, shape in zip(rows["sample_id"], rows["layers"], rows["shape"], strict=True):
        got = [int(v) for v in listed] if listed is not None else []
        if got != layers or not len(shape) or int(shape[0]) != len(got):
            bad.append(f"{sid} (layers {got}, shape {[int(x) for x in shape]}; index's first row: {layers})")
    meta = _store_meta(store, rows) or {}
    if "layers" in meta and [int(v) for v in meta["layers"]] != layers:
        bad.append(f"store.json layers {meta['layers']} but the index lists {layers}")
    report.add("layer-axis", bad, f"layer axis holds hidden states {layers}",
               "{n} rows whose layer axis differs from the index's layers", tokenizer)


def _check_shard_array(problems: dict[str, list[str]], store: StoreIndex, name: str, grp: pd.DataFrame,
                       layout: dict[str, tuple[int, ...]] | None, codebook: int | None = None) -> None:
    """One array file of one shard: readable, checksum, shape/dtype, rows present, finite
    (float tokens) or within the codebook (integer codes)."""
    rel = str(grp[path_column(name)].iloc[0])
    ids = grp["sample_id"].astype(str).tolist()
    if grp[path_column(name)].nunique() > 1:
        problems["files"].append(f"{rel}: rows of one shard point at different {name} files")
    try:
        arr, sha = read_array_checked(store.resolve(rel))
    except FileNotFoundError:
        problems["files"].append(f"{rel}: missing")
        problems["ids"] += [f"{sid} ({rel} missing)" for sid in ids]
        return
    except (OSError, ValueError, EOFError) as exc:
        problems["files"].append(f"{rel}: unreadable ({exc})")
        problems["ids"] += [f"{sid} ({rel} unreadable)" for sid in ids]
        return
    recorded = set(grp[sha_column(name)])
    if recorded != {sha}:
        problems["sha"].append(f"{rel}: sha256 {sha[:12]}… recorded "
                               f"{', '.join(s[:12] + '…' for s in sorted(recorded))}")
    dtypes = set(grp["dtype"])
    want = layout.get(name) if layout else None
    if (want is not None and tuple(arr.shape[1:]) != tuple(want)) or dtypes != {arr.dtype.name}:
        problems["shape"].append(f"{rel}: {arr.dtype.name} {list(arr.shape)}, expected "
                                 f"{'/'.join(sorted(dtypes))} [n, {', '.join(map(str, want or ['…']))}]")
    rows = grp["row"].to_numpy(np.int64)
    in_range = (rows >= 0) & (rows < len(arr))
    problems["ids"] += [f"{sid} (row {r} of {rel}, which has {len(arr)} rows)"
                        for sid, r, ok in zip(ids, rows, in_range, strict=True) if not ok]
    dup_rows = grp.loc[grp["row"].duplicated(keep=False), "sample_id"].astype(str)
    problems["ids"] += [f"{sid} (shares row with another id in {rel})" for sid in dup_rows]
    if not in_range.any():
        return
    sel = arr[rows[in_range]].reshape(int(in_range.sum()), -1)
    kept = [sid for sid, ok in zip(ids, in_range, strict=True) if ok]
    if np.issubdtype(arr.dtype, np.floating):
        finite = _finite_rows(sel)
        problems["finite"] += [f"{sid} ({name} in {rel})" for sid, ok in zip(kept, finite, strict=True) if not ok]
    elif np.issubdtype(arr.dtype, np.integer):
        low, high = sel.min(axis=1), sel.max(axis=1)
        top = codebook if codebook is not None else np.iinfo(arr.dtype).max + 1
        problems["codes"] += [f"{sid} ({name} in {rel}: {lo}..{hi})"
                              for sid, lo, hi in zip(kept, low, high, strict=True) if lo < 0 or hi >= top]


def _finite_rows(sel: np.ndarray) -> np.ndarray:
    """Rows without NaN or ±inf. NumPy has no vectorised isfinite for float16 (the stores'
    patch dtype); its exponent bits answer the same question ~3× faster (all ones = inf/NaN)."""
    if sel.dtype == np.float16:
        return ((sel.view(np.uint16) & 0x7C00) != 0x7C00).all(axis=1)  # type: ignore[no-any-return]
    return np.isfinite(sel).all(axis=1)  # type: ignore[no-any-return]
