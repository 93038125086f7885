"""`emoprep export --format webdataset`: tar shards for streaming trainers (WebDataset).

Per token store (config) and split: `<config>/<split>-000000.tar`, … of `shard_size` samples
each, and the shard list `<config>/<split>.txt` (one file name per line, relative to the
list). Each sample is three members sharing a key (`<position in split>-<sample id>`, with
every character but letters, digits, '_' and '-' replaced by '_': WebDataset splits keys at
the first dot):

- `<key>.tokens.npy` the sample's tokens in the stored dtype: ViT [1 + P, D] (CLS first, then
  the patches), EnCodec [K, T] int16 codes — the arrays `TokenDataset` concatenates;
- `<key>.json` ids, split, modality (0 image, 1 audio), emotion, valence/arousal (normalised
  and raw), start/end seconds, tokenizer, weights, source file;
- `<key>.png` the source image (`--with-images`, samples that have one: the 224 px PNG the
  ViT read).

Members are written in key order with fixed owner, mode and time, so the same store gives
the same bytes.

    import webdataset as wds
    urls = [f"{DEST}/vit-base-patch16-224/{n.strip()}" for n in open(f"{DEST}/vit-base-patch16-224/train.txt")]
    for sample in wds.WebDataset(urls, shardshuffle=False).decode():
        sample["tokens.npy"], sample["json"]["valence"]
"""
from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emoprep.manifests.export.source import StoreSource
from emoprep.manifests.token_store.layout import HIDDEN, StoreError, token_sequence
from emoprep.pipeline.atomic import canonical_json

NAME = "webdataset"
VERSION = "1"
MTIME = 0  # member times: fixed, so bytes depend on content only
JSON_COLUMNS = ("sample_id", "source_id", "split", "modality", "emotion", "valence", "arousal",
                "valence_raw", "arousal_raw", "start_s", "end_s", "tokenizer", "weights", "image_path", "audio_path",
                "pooling")
_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def part_names(source: StoreSource, split: str, n_parts: int) -> list[str]:
    return [f"{source.config}/{split}-{i:06d}.tar" for i in range(n_parts)]


def sample_key(position: int, sample_id: str) -> str:
    return f"{position:07d}-{_KEY_CHARS.sub('_', sample_id)[:80]}"


def tokens_of(arrays: dict[str, np.ndarray], i: int) -> np.ndarray:
    """Sample i's tokens in the stored dtype: 1-D arrays (CLS) become one token, in the
    store's array order (the sequence `TokenDataset.tokens` gives, before its float32 cast);
    an `hf:` encoder's `hidden` array as it is stored ([layers, ...])."""
    if HIDDEN in arrays:
        layered: np.ndarray = arrays[HIDDEN][i]
        return layered
    return token_sequence([a[i] for a in arrays.values()])


def sample_json(row: pd.Series) -> bytes:
    out: dict[str, Any] = {}
    for col in JSON_COLUMNS:
        if col not in row.index:
            continue
        v = row[col]
        if v is None or (isinstance(v, float) and v != v):
            continue
        out[col] = int(v) if col == "modality" else (float(v) if isinstance(v, (float, np.floating)) else str(v))
    return canonical_json(out).encode()


def write_part(path: Path, source: StoreSource, rows: pd.DataFrame, with_images: bool) -> None:
    """One tar shard of `rows` (positions in the split come from the rows' `position`)."""
    arrays = source.read(rows)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for i, (_, row) in enumerate(rows.iterrows()):
            key = sample_key(int(row["position"]), str(row["sample_id"]))
            _add(tar, f"{key}.json", sample_json(row))
            if with_images and isinstance(row.get("image_path"), str):
                _add(tar, f"{key}.png", _image_bytes(source, row["image_path"]))
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(tokens_of(arrays, i)), allow_pickle=False)
            _add(tar, f"{key}.tokens.npy", buf.getvalue())


def _image_bytes(source: StoreSource, rel: str) -> bytes:
    if source.store.standalone:
        raise StoreError(f"--with-images needs the run's output root, not a store folder ({source.store.root})")
    path = source.store.resolve(rel)
    if source.store.remote is not None:
        path = source.store.remote.fetch(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StoreError(f"{path}: source image of the token index cannot be read ({exc.strerror})") from None


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), MTIME, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def extra_files(sources: list[StoreSource], parts: dict[tuple[str, str], list[str]],
                sizes: dict[str, int]) -> dict[str, bytes]:
    """The shard lists, `<config>/<split>.txt` (shard file names, one per line), and a
    README.md saying how to read them."""
    files = {f"{config}/{split}.txt": "".join(f"{Path(p).name}\n" for p in names).encode()
             for (config, split), names in parts.items()}
    lines = ["# emoprep token export (WebDataset)", "",
             ("Tar shards per token store and split; each sample is `<key>.tokens.npy` (the tokens in "
             "the stored dtype), `<key>.json` (ids, VA, emotion, modality, split) and, when exported "
             "with images, `<key>.png`."), "",
             "| config | arrays | split | samples | shards | bytes |", "|---|---|---|---|---|---|"]
    for src in sources:
        arrays = ", ".join(f"{a.name} {list(a.shape)} {a.dtype}" for a in src.arrays)
        for split in src.splits:
            names = parts[(src.config, split)]
            n = int((src.rows["split"] == split).sum())
            lines.append(f"| {src.config} | {arrays} | {split} | {n} | {len(names)} | "
                         f"{sum(sizes[p] for p in names)} |")
    lines += ["", "```python", "import webdataset as wds",
              'config, split = "CONFIG", "train"',
              'urls = [f"{config}/{name.strip()}" for name in open(f"{config}/{split}.txt")]',
              "for sample in wds.WebDataset(urls, shardshuffle=False).decode():",
              '    tokens, labels = sample["tokens.npy"], sample["json"]',
              "```", ""]
    files["README.md"] = "\n".join(lines).encode()
    return files
