"""`emoprep probe` on a DEAM-scale pooled store: 13,000 items (1,625 songs × 8 chunks, 20 % of
songs in test) × 13 layers × 768 dims, float16, a planted VA signal on layer 6; ridge, 5
grouped folds, valence and arousal. Target: ≤ 60 s on 2 cores (issue 29).

Prints the seconds to write the store (not part of the target), the probe's wall time split
into reading + validating the store and fitting, and the R² of the signal layer and of a noise
layer as a sanity check.

    .venv/bin/python bench/probe_bench.py [--items 13000] [--layers 13] [--dim 768] [--folds 5]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from emoprep.stages.probe.features import open_stores
from emoprep.stages.probe.step import probe
from emoprep.stages.probe.synthetic import chunk_items, planted_layers, write_pooled_store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=13000)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="probe-bench-") as tmp:
        t0 = time.perf_counter()
        items = chunk_items(n_songs=args.items // args.chunks, chunks=args.chunks, seed=0)
        hidden = planted_layers(items, args.layers, args.dim, signal_layer=args.layers // 2, seed=1)
        folder = write_pooled_store(Path(tmp) / "store", items, hidden, dtype="float16", shard_size=1000)
        del hidden
        print(f"store: {len(items)} items x {args.layers} layers x {args.dim} (float16) written in "
              f"{time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs")
        t1 = time.perf_counter()
        (store,) = open_stores(folder, None)
        for layer in store.layers():
            store.matrix(layer, "stored")
        read = time.perf_counter() - t1
        del store
        t2, c2 = time.perf_counter(), time.process_time()
        result = probe(folder, dest=Path(tmp) / "probe", folds=args.folds, target="va")
        total, cpu = time.perf_counter() - t2, time.process_time() - c2
        table = result.table()
        ridge = table[(table["model"] == "ridge") & (table["level"] == "item")].set_index(["layer", "target"])["r2"]
        signal, noise = str(args.layers // 2), "0"
        print(f"probe (ridge, {args.folds} grouped folds, valence + arousal, modality audio): {total:.1f} s "
              f"wall, {cpu:.1f} CPU-s, load average {os.getloadavg()[0]:.1f}; reading the store alone "
              f"{read:.1f} s (measured before); {len(table)} records")
        print(f"R² layer {signal} (signal): valence {ridge[(signal, 'valence')]:.3f}, arousal "
              f"{ridge[(signal, 'arousal')]:.3f}; layer {noise} (noise): valence {ridge[(noise, 'valence')]:.3f}")


if __name__ == "__main__":
    main()
