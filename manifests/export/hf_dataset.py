"""`emoprep export --format hf`: a Hugging Face dataset folder with an explicit schema.

One config per token store (named after its tokenizer), one Parquet file per split and
`shard_size` samples: `<config>/<split>-00000-of-00002.parquet`. The files carry the
`datasets.Features` in their schema (and the card repeats them), so
`datasets.load_dataset(DEST, name=config, split="train")` needs no conversion:

- `patches` `Array2D((196, 768), float16)` and `cls` `List(float16, 768)` (ViT), or
  `codes` `Array2D((32, 3450), int16)` (EnCodec): the arrays exactly as stored;
- `emotion` `ClassLabel` (the thesis's 12 classes, then any other name in the store; -1 when a
  sample has none), `modality` `ClassLabel(["image", "audio"])` (the store's codes 0 and 1);
- `valence`, `arousal` (in [-1, 1]), `valence_raw`, `arousal_raw`, `start_s`, `end_s`
  `Value("float64")` as in the manifests; ids, split, tokenizer, weights, source paths as strings.

`datasets`' NumPy and torch formats return float16 arrays as float32 (exactly: every float16
is a float32); `with_format("arrow")` keeps float16.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emoprep.manifests.export.source import StoreSource
from emoprep.manifests.hf_view import fixed_size_list
from emoprep.pipeline.errors import ConfigError

NAME = "hf"
VERSION = "1"
ROW_GROUP = 64  # rows per Parquet row group: ~19 MB of ViT-base float16 tokens
MODALITY_NAMES = ["image", "audio"]  # the stores' modality codes 0 and 1
STRING_COLUMNS = ("sample_id", "source_id", "split", "tokenizer", "weights", "image_path", "audio_path")
FLOAT_COLUMNS = ("valence", "arousal", "valence_raw", "arousal_raw", "start_s", "end_s")
SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")  # what `datasets` accepts as a split name


def require_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError("--format hf needs the `datasets` library: pip install 'emoprep[hf]'") from None
    return datasets


def check_names(source: StoreSource) -> None:
    bad = [s for s in source.splits if not SPLIT_NAME.match(s)]
    if bad:
        raise ConfigError(f"{source.tokenizer}: split names {bad} are not valid Hugging Face split names "
                          "(letters, digits, '_' and '.'); rename them with split.names")


def emotion_names(source: StoreSource) -> list[str]:
    from emoprep.manifests.columns import emotion_classes

    return emotion_classes(str(e) for e in source.rows.get("emotion", pd.Series(dtype=object)).dropna())


def label_columns(source: StoreSource) -> list[str]:
    """The label columns this store has (a column no row fills, e.g. image_path of an
    audio-only store, is left out)."""
    df = source.rows
    wanted = ("sample_id", "source_id", "modality", "split", "emotion", *FLOAT_COLUMNS,
              "tokenizer", "weights", "image_path", "audio_path")
    return [c for c in wanted if c in df.columns and (c in ("sample_id", "modality", "split") or df[c].notna().any())]


def features(source: StoreSource) -> Any:
    """The `datasets.Features` of one store's export."""
    datasets = require_datasets()
    feats: dict[str, Any] = {}
    for col in label_columns(source):
        if col == "emotion":
            feats[col] = datasets.ClassLabel(names=emotion_names(source))
        elif col == "modality":
            feats[col] = datasets.ClassLabel(names=MODALITY_NAMES)
        elif col in FLOAT_COLUMNS:
            feats[col] = datasets.Value("float64")
        else:
            feats[col] = datasets.Value("string")
    for spec in source.arrays:
        if len(spec.shape) == 1:
            feats[spec.name] = datasets.Sequence(datasets.Value(spec.dtype), length=spec.shape[0])
        elif 2 <= len(spec.shape) <= 5:  # hf: encoders' [layers, (windows,) tokens, dim]
            array = (datasets.Array2D, datasets.Array3D, datasets.Array4D, datasets.Array5D)[len(spec.shape) - 2]
            feats[spec.name] = array(shape=spec.shape, dtype=spec.dtype)
        else:
            raise ConfigError(f"{source.tokenizer}: array {spec.name} {spec.shape} has no Features type here")
    return datasets.Features(feats)


def part_names(source: StoreSource, split: str, n_parts: int) -> list[str]:
    return [f"{source.config}/{split}-{i:05d}-of-{n_parts:05d}.parquet" for i in range(n_parts)]


def write_part(path: Path, source: StoreSource, rows: pd.DataFrame, with_images: bool) -> None:
    """One Parquet file of `rows`, written `ROW_GROUP` rows at a time (memory stays at one
    row group). `with_images` does not apply to this format."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    feats = features(source)
    schema = feats.arrow_schema
    emotions = {name: i for i, name in enumerate(emotion_names(source))}
    labels = [f.name for f in schema if f.name not in {a.name for a in source.arrays}]
    # Dictionary encoding and min/max statistics only for the label columns: on token arrays
    # they cost 3x the write time and buy nothing (bench/export_bench.py).
    # (pyarrow takes a list of columns here; its stubs say bool)
    with pq.ParquetWriter(path, schema, use_dictionary=labels, write_statistics=labels) as writer:  # type: ignore[arg-type]
        for start in range(0, len(rows), ROW_GROUP):
            batch = rows.iloc[start:start + ROW_GROUP]
            arrays = source.read(batch)
            columns = []
            for field in schema:
                if field.name in arrays:
                    columns.append(_array_column(arrays[field.name], field.type))
                else:
                    columns.append(pa.array(_label_values(batch, field.name, emotions), type=field.type))
            writer.write_table(pa.Table.from_arrays(columns, schema=schema), row_group_size=ROW_GROUP)


def _label_values(batch: pd.DataFrame, col: str, emotions: dict[str, int]) -> list[Any]:
    values = batch[col].tolist()
    if col == "emotion":
        return [-1 if v is None or v != v else emotions[str(v)] for v in values]
    if col == "modality":
        return [int(v) for v in values]
    if col in FLOAT_COLUMNS:
        return [None if v is None or v != v else float(v) for v in values]
    return [None if v is None or v != v else str(v) for v in values]


def _array_column(values: np.ndarray, arrow_type: Any) -> Any:
    """[n, *shape] → the column of `arrow_type`: a fixed-size list (1-D) or `datasets`'
    Array2D extension array over nested lists."""
    import pyarrow as pa

    arr = fixed_size_list(values)
    if isinstance(arrow_type, pa.ExtensionType):
        return pa.ExtensionArray.from_storage(arrow_type, arr.cast(arrow_type.storage_type))
    return arr.cast(arrow_type)
