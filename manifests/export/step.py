"""`emoprep export`: run one export as a stage-like step — keyed, resumable, skipped when up
to date.

The export's key hashes the format (and its version), the options that change bytes (stores,
splits, shard size, images) and each store's content key (tokens fingerprint + index). Every
part file (a Parquet file or a tar shard) is a pure function of those and is written
atomically; `DEST/.emoprep-export/<key>.jsonl` records each finished part (fsynced), so a killed
export resumes where it stopped and ends with the bytes of an uninterrupted one. Last,
`DEST/_EXPORT.json` (key, options, every file with its size and SHA-256) is written and the
files a previous export listed but this one does not are removed. A run whose key matches
`_EXPORT.json`, with every listed file present at its size, writes nothing.

DEST must be empty, missing, or an earlier export: the step never deletes or overwrites
files it did not write.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import pandas as pd

from emoprep.manifests.export import hf_card, hf_dataset, webdataset
from emoprep.manifests.export.source import StoreSource, open_sources
from emoprep.manifests.token_store.reader import is_remote, local_path
from emoprep.pipeline.atomic import atomic_path, atomic_write_bytes, atomic_write_json, canonical_json, sweep_temp_files
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.filehash import hash_file
from emoprep.pipeline.lock import LOCK_NAME, OutputLock

# (sources, part files per (config, split), file sizes) -> {relative path: bytes}
ExtraFiles = Callable[[list[StoreSource], dict[tuple[str, str], list[str]], dict[str, int]], dict[str, bytes]]
EXPORT_FILE = "_EXPORT.json"
WORK_DIR = ".emoprep-export"
STEP_VERSION = "1"
# format name -> (the module writing its part files, the function writing its other files)
FORMATS: dict[str, tuple[ModuleType, ExtraFiles]] = {"hf": (hf_dataset, hf_card.card_files),
                                                     "webdataset": (webdataset, webdataset.extra_files)}
DEFAULT_SHARD_SIZE = 1000


@dataclass(frozen=True)
class Part:
    config: str
    split: str
    rel: str
    rows: pd.DataFrame


@dataclass
class ExportResult:
    dest: Path
    key: str
    up_to_date: bool = False
    written: list[str] = field(default_factory=list)   # part files written by this run
    reused: list[str] = field(default_factory=list)    # part files a killed run had finished
    removed: list[str] = field(default_factory=list)   # files of an earlier export, no longer part of it
    samples: dict[str, dict[str, int]] = field(default_factory=dict)  # config -> split -> samples


def export(out_root: str | os.PathLike[str], dest: str | os.PathLike[str], fmt: str,
           tokenizers: list[str] | None = None, splits: list[str] | None = None,
           shard_size: int = DEFAULT_SHARD_SIZE, with_images: bool = False,
           storage_options: dict[str, Any] | None = None, wait: bool = True,
           on_wait: Callable[[str], None] | None = None,
           on_part: Callable[[str, int, int], None] | None = None) -> ExportResult:
    """Export the token stores of `out_root` to `dest` in format `fmt` ("hf" or "webdataset").
    `on_part(rel, done, total)` is called after each part file. ConfigError for bad options
    or a DEST holding other files."""
    if fmt not in FORMATS:
        raise ConfigError(f"export format {fmt!r}: choose one of {sorted(FORMATS)}")
    if shard_size < 1:
        raise ConfigError(f"--shard-size {shard_size}: must be at least 1 sample")
    if fmt == "hf":
        hf_dataset.require_datasets()
    writer, extra_files = FORMATS[fmt]
    dest = Path(dest).resolve()
    local_out = None if is_remote(str(out_root)) else local_path(out_root).resolve()
    if local_out is not None and (dest == local_out or local_out.is_relative_to(dest)):
        raise ConfigError(f"export destination {dest} must not be the output folder or contain it")
    with contextlib.ExitStack() as held:
        if local_out is not None and (local_out / "manifests").is_dir():  # a run must not rewrite the stores meanwhile
            try:
                held.enter_context(OutputLock(local_out, wait=wait, on_wait=on_wait))
            except OSError as exc:  # a read-only output (shared, archived) cannot be written by a run either
                if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
        sources = open_sources(out_root, tokenizers, splits, storage_options)
        if fmt == "hf":
            for src in sources:
                hf_dataset.check_names(src)
        options = {"format": fmt, "format_version": writer.VERSION, "step_version": STEP_VERSION,
                   "tokenizers": [s.tokenizer for s in sources], "splits": sorted(splits or []),
                   "shard_size": shard_size, "with_images": with_images}
        key = export_key(options, sources)
        _check_dest(dest)
        held.enter_context(OutputLock(dest, wait=wait, on_wait=on_wait))
        return _run(dest, key, options, sources, (writer, extra_files), with_images, on_part)


def export_key(options: dict[str, Any], sources: list[StoreSource]) -> str:
    h = hashlib.sha256(("emoprep-export\n" + canonical_json(options) + "\n").encode())
    for src in sources:
        h.update(f"{src.tokenizer}:{src.key}\n".encode())
    return h.hexdigest()[:16]


def plan_parts(sources: list[StoreSource], writer: ModuleType, shard_size: int) -> list[Part]:
    parts = []
    for src in sources:
        for split in src.splits:
            rows = src.rows[src.rows["split"] == split].reset_index(drop=True)
            rows = rows.assign(position=range(len(rows)))
            n = -(-len(rows) // shard_size)
            for i, rel in enumerate(writer.part_names(src, split, n)):
                parts.append(Part(src.config, split, rel, rows.iloc[i * shard_size:(i + 1) * shard_size]))
    return parts


def _run(dest: Path, key: str, options: dict[str, Any], sources: list[StoreSource],
         fmt: tuple[ModuleType, ExtraFiles], with_images: bool,
         on_part: Callable[[str, int, int], None] | None) -> ExportResult:
    writer, extra_files = fmt
    result = ExportResult(dest, key, samples={s.tokenizer: {sp: int((s.rows["split"] == sp).sum()) for sp in s.splits}
                                              for s in sources})
    old = _read_marker(dest)
    if old.get("key") == key and _files_intact(dest, old.get("files", {})):
        result.up_to_date = True
        return result
    sweep_temp_files(dest)
    work = dest / WORK_DIR
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob("*.jsonl"):
        if stale.stem != key:
            stale.unlink()
    ledger_path = work / f"{key}.jsonl"
    done = _read_ledger(ledger_path)
    if old.get("key") == key:  # an intact part of this very export is as good as a ledger line
        done.update({rel: info for rel, info in old.get("files", {}).items() if rel not in done})
    parts = plan_parts(sources, writer, int(options["shard_size"]))
    files: dict[str, dict[str, Any]] = {}
    with open(ledger_path, "a") as ledger:
        for n, part in enumerate(parts, 1):
            target = dest / part.rel
            info = done.get(part.rel)
            if info and target.is_file() and target.stat().st_size == info.get("size"):
                files[part.rel] = info
                result.reused.append(part.rel)
            else:
                source = next(s for s in sources if s.config == part.config)
                with atomic_path(target) as tmp:
                    writer.write_part(tmp, source, part.rows, with_images)
                files[part.rel] = _file_info(target)
                ledger.write(json.dumps({"rel": part.rel, **files[part.rel]}) + "\n")
                ledger.flush()
                os.fsync(ledger.fileno())
                result.written.append(part.rel)
            if on_part:
                on_part(part.rel, n, len(parts))
    by_split: dict[tuple[str, str], list[str]] = {}
    for part in parts:
        by_split.setdefault((part.config, part.split), []).append(part.rel)
    sizes = {rel: int(info["size"]) for rel, info in files.items()}
    for rel, data in extra_files(sources, by_split, sizes).items():
        atomic_write_bytes(dest / rel, data)
        files[rel] = _file_info(dest / rel)
    for rel in sorted(set(old.get("files", {})) - set(files)):
        if _plain_rel(rel) and (dest / rel).is_file():
            (dest / rel).unlink()
            result.removed.append(rel)
    atomic_write_json(dest / EXPORT_FILE, {"key": key, **options, "configs": result.samples,
                                          "files": dict(sorted(files.items()))})
    ledger_path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        work.rmdir()
    return result


def _check_dest(dest: Path) -> None:
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"export destination {dest} is a file")
    if not dest.is_dir() or (dest / EXPORT_FILE).is_file() or (dest / WORK_DIR).is_dir():
        return
    others = [p.name for p in dest.iterdir() if not p.name.startswith(LOCK_NAME)]
    if others:
        raise ConfigError(f"export destination {dest} holds files emoprep export did not write "
                          f"(e.g. {sorted(others)[0]}); choose an empty or new folder")


def _read_marker(dest: Path) -> dict[str, Any]:
    try:
        info = json.loads((dest / EXPORT_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) and isinstance(info.get("files", {}), dict) else {}


def _read_ledger(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[str(rec.pop("rel"))] = rec
            except (ValueError, KeyError, AttributeError):
                continue  # a line cut by a kill: that part is written again
    return done


def _files_intact(dest: Path, files: dict[str, Any]) -> bool:
    return bool(files) and all(_plain_rel(rel) and isinstance(info, dict) and (dest / rel).is_file()
                               and (dest / rel).stat().st_size == info.get("size") for rel, info in files.items())


def _plain_rel(rel: Any) -> bool:
    """A relative path inside DEST (a tampered _EXPORT.json must not reach other files)."""
    pure = PurePosixPath(rel) if isinstance(rel, str) else None
    return pure is not None and bool(pure.parts) and not pure.is_absolute() and ".." not in pure.parts


def _file_info(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": hash_file(path)}
