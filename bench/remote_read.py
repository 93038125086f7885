"""Remote token stores: whole-shard caching (what `TokenDataset` does for fsspec URLs) against
ranged reads (one request per item for its row's bytes), on a local moto S3 server.

Prints, for one epoch over every item in random order: wall time, requests and bytes fetched.
A local server has ~1 ms per request; real object storage has 10–100 ms of first-byte latency,
so the request count is the figure that carries over.

    .venv/bin/python bench/remote_read.py [--samples 400] [--shard-size 100]
"""
from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' store builder

from emoprep.manifests import TokenDataset, load_index
from tests.helpers.token_fixtures import build_store

TOK = "vit-tiny-test"


def start_moto() -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return server, {"endpoint_url": f"http://127.0.0.1:{port}", "key": "test", "secret": "test",
                    "client_kwargs": {"region_name": "eu-west-1"}}


def ranged_epoch(url: str, options: dict[str, object], order: list[int]) -> tuple[float, int, int]:
    """Every item's rows by byte range (NPY header parsed once per shard): (s, requests, bytes)."""
    import fsspec

    idx = load_index(url, TOK, options)  # the index itself: fetched like the cached path does
    df = idx.df
    fs, _ = fsspec.core.url_to_fs(url, **options)
    headers: dict[str, tuple[int, int]] = {}
    requests = nbytes = 0
    t0 = time.perf_counter()
    for i in order:
        r = df.iloc[i]
        for col in ("cls_path", "patches_path"):
            key = f"{url}/{r[col]}"
            if key not in headers:  # header: magic + version + length + dict; one request
                with fs.open(key, "rb", block_size=0) as fh:
                    head = fh.read(4096)
                requests += 1
                nbytes += len(head)
                bio = io.BytesIO(head)
                version = np.lib.format.read_magic(bio)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(bio)
                headers[key] = (bio.tell(), int(np.prod(shape[1:])) * np.dtype(dtype).itemsize)
            offset, row_bytes = headers[key]
            start = offset + int(r["row"]) * row_bytes
            data = fs.cat_file(key, start=start, end=start + row_bytes)
            requests += 1
            nbytes += len(data)
    return time.perf_counter() - t0, requests, nbytes


def cached_epoch(url: str, options: dict[str, object], order: list[int], cache: Path) -> tuple[float, int, int]:
    os.environ["EMOPREP_CACHE"] = str(cache)
    t0 = time.perf_counter()
    ds = TokenDataset(url, tokenizer=TOK, storage_options=options)
    for i in order:
        ds.tokens(i)
    seconds = time.perf_counter() - t0
    files = [p for p in cache.rglob("*") if p.is_file()]
    return seconds, len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--shard-size", type=int, default=100)
    args = ap.parse_args()
    import s3fs

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        n_songs = args.samples // 4
        build_store(root, n_songs=n_songs, chunks=2, n_images=args.samples - 2 * n_songs, shard_size=args.shard_size)
        server, options = start_moto()
        try:
            fs = s3fs.S3FileSystem(**options)
            fs.mkdir("bench")
            fs.put(f"{root}/", "bench/store", recursive=True)
            url = "s3://bench/store"
            n = len(load_index(root, TOK).df)
            order = np.random.default_rng(0).permutation(n).tolist()
            row = TokenDataset(root, tokenizer=TOK).tokens(0).nbytes // 2  # float16 bytes of one item
            print(f"remote read bench: {n} items of {TOK} ({row} B float16 each), shards of {args.shard_size}, "
                  "local moto S3 server, one epoch in random order")
            c = cached_epoch(url, options, order, Path(tmp) / "cache")
            print(f"  whole-shard cache: {c[0]:7.2f} s, {c[1]:5d} objects fetched (index included), "
                  f"{c[2] / 1e6:7.2f} MB")
            r = ranged_epoch(url, options, order)
            print(f"  ranged reads     : {r[0]:7.2f} s, {r[1]:5d} requests, {r[2] / 1e6:7.2f} MB")
            warm = cached_epoch(url, options, order, Path(tmp) / "cache")
            print(f"  whole-shard, 2nd epoch (cache warm): {warm[0]:.2f} s (the index is fetched again)")
        finally:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
