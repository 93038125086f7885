"""Content fingerprints of raw input files, with a stat-keyed cache.

Ingest stages fingerprint their data by content (so the same download gives the same
fingerprint on any machine), but re-hashing gigabytes on every run would break the
"no-op re-run in seconds" bar. The cache maps (path, size, mtime_ns, inode) to the digest,
like DVC's state database; a changed file changes its stat and is hashed again.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from emoprep.pipeline.atomic import atomic_write_text

CHUNK = 1 << 20
# A cache entry: [size, mtime_ns, inode, sha256 hex].
Entry = list[int | str]


def hash_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


class FileHasher:
    """`hash(path)` with a persistent cache in `cache_file` (JSON, written by `save()`)."""

    def __init__(self, cache_file: str | os.PathLike[str] | None = None):
        self.cache_file = Path(cache_file) if cache_file else None
        self._lock = threading.Lock()
        self._cache: dict[str, Entry] = {}
        self._dirty = False
        if self.cache_file and self.cache_file.exists():
            try:
                self._cache = json.loads(self.cache_file.read_text())
            except (OSError, ValueError):
                self._cache = {}  # a damaged cache only costs re-hashing

    @staticmethod
    def _stat_key(st: os.stat_result) -> Entry:
        return [st.st_size, st.st_mtime_ns, st.st_ino]

    def hash(self, path: str | os.PathLike[str]) -> str:
        """The content digest; for what is not a regular file (a FIFO, a device, a socket,
        whose open or read may never return) a marker naming its kind, without opening it."""
        p = os.path.abspath(path)
        st = os.stat(p)
        if not stat.S_ISREG(st.st_mode):
            return f"not-a-regular-file:{stat.filemode(st.st_mode)[0]}"
        key = self._stat_key(st)
        with self._lock:
            hit = self._cache.get(p)
        if hit and hit[:3] == key and isinstance(hit[3], str):
            return hit[3]
        digest = hash_file(p)
        with self._lock:
            self._cache[p] = [*key, digest]
            self._dirty = True
        return digest

    def probe(self, path: str | os.PathLike[str], tag: str, compute: Callable[[], str]) -> str:
        """`compute()`, a fact about the file at `path` named by `tag` (e.g. "this spreadsheet
        has an 'Image' header cell"), memoised in the same cache under the same stat key as
        its hash: recomputed when the file changes. Lets an up-to-date run identify its
        datasets without opening (or importing the readers of) their files."""
        p = os.path.abspath(path)
        st = os.stat(p)
        key, slot = self._stat_key(st), f"{tag}\0{p}"
        with self._lock:
            hit = self._cache.get(slot)
        if hit and hit[:3] == key and isinstance(hit[3], str):
            return hit[3]
        value = compute()
        with self._lock:
            self._cache[slot] = [*key, value]
            self._dirty = True
        return value

    def save(self) -> None:
        if self.cache_file and self._dirty:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                text = json.dumps(self._cache, sort_keys=True)
                self._dirty = False
            atomic_write_text(self.cache_file, text)
