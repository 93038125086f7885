"""`emoprep export` throughput on a finished output: both formats, cold and up to date, and
the first read back (`datasets.load_dataset` converts the Parquet files to its Arrow cache;
`webdataset` streams the tars).

Prints one row per (format, store): samples, bytes written, seconds, MB/s.

    .venv/bin/python bench/export_bench.py OUT [--shard-size 1000]
    .venv/bin/python bench/export_bench.py --synthetic 2000     # a ViT-base-shaped store of random tokens
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from emoprep.manifests.export.step import export


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", help="a run's output root")
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--synthetic", type=int, default=0, help="build a ViT-base-shaped store of N samples instead")
    args = ap.parse_args()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        if args.synthetic:
            args.out = synthetic_store(Path(tmp) / "store", args.synthetic)
        print("| format | samples | bytes | export s | MB/s | up-to-date re-run s | first read s |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for fmt in ("hf", "webdataset"):
            dest = Path(tmp) / fmt
            t0 = time.perf_counter()
            result = export(args.out, dest, fmt, shard_size=args.shard_size)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            assert export(args.out, dest, fmt, shard_size=args.shard_size).up_to_date
            noop = time.perf_counter() - t0
            nbytes = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
            samples = sum(sum(s.values()) for s in result.samples.values())
            t0 = time.perf_counter()
            read_back(fmt, dest, result.samples, Path(tmp) / "hf-cache")
            first_read = time.perf_counter() - t0
            print(f"| {fmt} | {samples} | {nbytes} | {cold:.2f} | {nbytes / cold / 1e6:.1f} | {noop:.2f} "
                  f"| {first_read:.2f} |")


def synthetic_store(folder: Path, n: int, per_shard: int = 500) -> Path:
    """A standalone ViT-base store (CLS [768] + patches [196, 768] float16) of random tokens,
    80/20 train/test, written straight in the store format (no model run)."""
    import hashlib

    import numpy as np
    import pandas as pd

    from emoprep.manifests.token_store.layout import INDEX_FILE, STORE_FILE, shard_file, store_meta
    from emoprep.pipeline.atomic import atomic_write_json

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for shard, start in enumerate(range(0, n, per_shard)):
        m = min(per_shard, n - start)
        files = {}
        for name, shape in (("cls", (768,)), ("patches", (196, 768))):
            path = folder / shard_file(name, shard)
            np.save(path, rng.standard_normal((m, *shape), dtype=np.float32).astype(np.float16))
            files[name] = (path.name, hashlib.sha256(path.read_bytes()).hexdigest())
        for r in range(m):
            i = start + r
            rows.append({"sample_id": f"foodpics:{i}", "source_id": f"foodpics:{i}",
                         "tokenizer": "vit-base-patch16-224", "shard": shard, "row": r, "modality": 0,
                         "valence": float(rng.uniform(-1, 1)), "arousal": float(rng.uniform(-1, 1)), "emotion": "happy",
                         "split": "train" if i % 5 else "test", "weights": "random-init",
                         **{f"{k}_path": f[0] for k, f in files.items()},
                         **{f"{k}_sha256": f[1] for k, f in files.items()}})
    index = pd.DataFrame(rows)
    index.to_parquet(folder / INDEX_FILE, index=False)
    atomic_write_json(folder / STORE_FILE, store_meta(index, "vit-base-patch16-224", "float16",
                                                      {"cls": (768,), "patches": (196, 768)}, {"name": "random"}))
    return folder


def read_back(fmt: str, dest: Path, samples: dict[str, dict[str, int]], cache: Path) -> None:
    """Touch every sample's arrays once, as a training epoch would."""
    for config, splits in samples.items():
        for split in splits:
            if fmt == "hf":
                import datasets

                ds = datasets.load_dataset(str(dest), name=config, split=split, cache_dir=str(cache))
                for _ in ds.with_format("numpy").iter(batch_size=64):
                    pass
            else:
                import webdataset as wds

                urls = [str(dest / config / n) for n in (dest / config / f"{split}.txt").read_text().split()]
                for _ in wds.WebDataset(urls, shardshuffle=False).decode():
                    pass


if __name__ == "__main__":
    main()
