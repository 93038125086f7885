"""The content-addressed shard objects of the token store: computed once, linked everywhere.

A shard's arrays depend only on its input images and the tokenizer setup,
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
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from emoprep.manifests.token_store.layout import shard_file
from emoprep.manifests.token_store.writer import write_npy
from emoprep.pipeline.atomic import TMP_PREFIX, canonical_json, tmp_name_for
from emoprep.pipeline.lazy import np

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
        meta: dict[str, Any] = json.loads((folder / OBJECT_FILE).read_text(encoding="utf-8"))
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
            sha, nbytes = write_npy(tmp / f"{name}.npy", arr)
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
