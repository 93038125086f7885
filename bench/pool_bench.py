"""Benchmark: the local process pool's overhead on many tiny items (issue 30).

    .venv/bin/python bench/pool_bench.py [--n 2000] [--workers 2] [--rounds 3]

Runs `--n` trivial items (a stage whose `process` returns one row) through
`ProcessPoolExecutorBackend.map_unordered`, with and without an item time limit (a run
always has one: 1800 s by default), `--rounds` times each, interleaved, and prints min /
median / max wall seconds and items/s, plus the parent's CPU seconds. Wall time includes
spawning the workers (a stage pays it too). What it measures is the pool's own cost per item:
pickling, pipes, the scheduling loop. To compare commits, run it on each in the same clone, or
put a copy of another version's package first: `PYTHONPATH=/tmp/old .venv/bin/python bench/...`
(`cp -rL build/__editable__.*/emoprep /tmp/old/` on that version).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from emoprep.pipeline.catalog import register
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.executors.process_pool import ProcessPoolExecutorBackend
from emoprep.pipeline.stage import Outcome, Stage, WorkItem

STAGE = "pool-bench-noop"


@dataclass(frozen=True)
class NoopParams:
    pass


@register
class Noop(Stage[NoopParams]):
    """One row per item, no I/O: all that is left to time is the pool."""

    name = STAGE
    Params = NoopParams

    def plan(self, ctx: StageContext[NoopParams]) -> list[WorkItem]:
        return []

    def process(self, item: WorkItem, ctx: ItemContext[NoopParams]) -> Outcome:
        return Outcome(rows=[{"sample_id": item.key, "source_id": item.key, "value": item.payload["value"]}])


def one_round(n: int, workers: int, timeout: float | None, out: Path) -> tuple[float, float]:
    """(wall s, parent CPU s) to push n items through a fresh pool, then close it."""
    ctx = ItemContext(stage=STAGE, params=NoopParams(), out_root=out, out_dir=out / STAGE)
    items = (WorkItem(f"noop:{i}", {"value": i, "file": f"numbers/{i}.txt"}) for i in range(n))
    t0, c0 = time.perf_counter(), time.process_time()
    ex = ProcessPoolExecutorBackend(workers)
    ex.item_timeout = timeout
    done = 0
    try:
        for _item, result in ex.map_unordered(Noop(), items, ctx):
            if isinstance(result, BaseException):
                raise result
            done += 1
    finally:
        ex.close()
    if done != n:
        raise SystemExit(f"{done} results for {n} items")
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    modes = {"limit 1800 s": 1800.0, "no limit": None}
    walls: dict[str, list[float]] = {m: [] for m in modes}
    cpus: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.rounds):
            for mode, timeout in modes.items():
                wall, cpu = one_round(a.n, a.workers, timeout, Path(tmp))
                walls[mode].append(wall)
                cpus[mode].append(cpu)
    pool_file = sys.modules[ProcessPoolExecutorBackend.__module__].__file__
    print(f"pool: {pool_file}; n={a.n} workers={a.workers} rounds={a.rounds} "
          f"load after: {os.getloadavg()[0]:.1f}")
    print("| mode | wall s min / median / max | items/s (median) | parent CPU s (median) |")
    print("|---|---:|---:|---:|")
    for mode in modes:
        w = walls[mode]
        med = statistics.median(w)
        print(f"| {mode} | {min(w):.2f} / {med:.2f} / {max(w):.2f} | {a.n / med:.0f} | "
              f"{statistics.median(cpus[mode]):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
