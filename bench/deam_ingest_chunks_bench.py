"""Benchmark: `deam` ingest + `chunks` on a DEAM-scale synthetic tree (SPEC §7.1).

    .venv/bin/python bench/deam_ingest_chunks_bench.py [--n-scale 1] [--workers 2] [--markdown]

The tree (1,802 songs × n_scale, real ids and durations, cheap MP3 audio) is written once
under bench/out/deam-scale-n<N>-s<seed>/ and reused (its `_TREE.json` marks it complete).
The stages are driven as the runner will drive them (plan in this process, `process` in a
pool of `--workers` processes, then `finalize`), since the runner is not ready yet. Printed:
wall time, CPU time, items/s, outputs, peak RSS of this process and of the largest worker.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from emoprep.pipeline.assemble import finish_manifest
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.filehash import FileHasher
from emoprep.stages.catalog import builtin_catalog

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from bench.trees.deam_scale_tree import write_deam_scale_tree  # noqa: E402


def get_stage(name):
    return builtin_catalog()[name]


def _process(args):
    name, item, ictx = args
    return get_stage(name).process(item, ictx)


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def run_stage(name, root, out, workers, manifests=None, hasher=None):
    """plan → process (pool) → finalize; returns (rows, rejects, counters, timings)."""
    stage = get_stage(name)
    ctx = StageContext(stage=name, params=stage.Params(), out_root=out, out_dir=out / name / "bench",
                       manifests=manifests or {}, roots={"deam": root}, hasher=hasher)
    t0, c0 = time.perf_counter(), _cpu()
    sig_s = None
    if stage.datasets:
        stage.source_signature(ctx)
        sig_s = time.perf_counter() - t0
    items = list(stage.plan(ctx))
    ictx = ctx.item_context()
    rows, rejects, counters = [], [], {}
    # longest songs first, so the pool does not end on one 10-minute song
    order = sorted(items, key=lambda it: -len(it.payload.get("dyn_valence") or []))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        for o in pool.map(_process, [(name, it, ictx) for it in order], chunksize=4):
            rows += o.rows
            rejects += o.rejects
            for k, v in o.counters.items():
                counters[k] = counters.get(k, 0) + v
    df, rejects = finish_manifest(stage, ctx, pd.DataFrame(rows), rejects)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    return df, rejects, counters, {"items": len(items), "wall_s": wall, "cpu_s": cpu, "signature_s": sig_s}


def acceptance(deam: pd.DataFrame, chunks: pd.DataFrame, rejects: list) -> dict[str, bool]:
    """The issue's acceptance on this tree: 6 chunks per excerpt; floor((d − 15) / 5) + 1 for
    a tail ≥ 4.5 s per full song, minus under-annotated chunks."""
    counts = chunks.groupby("song_id").size()
    under = pd.Series([int(r.sample_id.split(":")[1]) for r in rejects if r.reason == "under-annotated"],
                      dtype="int64").value_counts()
    ok_ex, ok_full = True, True
    for sid, d in zip(deam["song_id"], deam["duration_s"], strict=True):
        full = int((d - 15) // 5)
        want = full + (1 if d - 15 - 5 * full >= 4.5 else 0) - int(under.get(sid, 0))
        got = int(counts.get(sid, 0))
        if d <= 46.0:
            ok_ex &= got == want == 6
        else:
            ok_full &= got == want
    return {"every excerpt gives 6 chunks": bool(ok_ex), "full songs follow the formula": bool(ok_full)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-scale", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tree", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "deam-bench-run")
    ap.add_argument("--keep", action="store_true", help="keep the chunk files")
    ap.add_argument("--clips", action="store_true", help="also time the clips stage")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    tree = a.tree or HERE / "out" / f"deam-scale-n{a.n_scale}-s{a.seed}"
    marker = tree / "_TREE.json"
    if not marker.exists():
        t0 = time.perf_counter()
        info = write_deam_scale_tree(tree, n_scale=a.n_scale, seed=a.seed, workers=a.workers)
        built = time.perf_counter() - t0
        marker.write_text(json.dumps({"n_songs": info["n_songs"], "build_s": round(built, 1)}))
        print(f"built the tree ({info['n_songs']} songs) in {built:.0f} s: {tree}")
    tree_info = json.loads(marker.read_text())
    if a.out.exists():
        shutil.rmtree(a.out)
    a.out.mkdir(parents=True)

    hasher = FileHasher()
    deam, rej_d, _, t_d = run_stage("deam", tree, a.out, a.workers, hasher=hasher)
    t0 = time.perf_counter()
    get_stage("deam").source_signature(StageContext(stage="deam", params=get_stage("deam").Params(),
                                                    out_root=a.out, out_dir=a.out / "x",
                                                    roots={"deam": tree}, hasher=hasher))
    warm_sig = time.perf_counter() - t0
    chunks, rej_c, cnt_c, t_c = run_stage("chunks", tree, a.out, a.workers, manifests={"deam": deam})
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    du = sum(p.stat().st_size for p in (a.out / "chunks").rglob("*") if p.is_file()) / 2**30
    if not a.keep:
        shutil.rmtree(a.out / "chunks", ignore_errors=True)

    checks = acceptance(deam, chunks, rej_c)
    clips_line = None
    if a.clips:
        clips, rej_k, _, t_k = run_stage("clips", tree, a.out, a.workers, manifests={"deam": deam})
        n_fit = int((deam["duration_s"] <= 46.0).sum())
        clips_line = (f"clips: {t_k['items']} songs → {len(clips)} clips (songs ≤ 46 s: {n_fit}), "
                      f"{len(rej_k)} rejects in {t_k['wall_s']:.1f} s wall (CPU {t_k['cpu_s']:.1f} s)")
        shutil.rmtree(a.out / "clips", ignore_errors=True)

    load = os.getloadavg()
    lines = [
        (f"tree: {tree_info['n_songs']} songs (built in {tree_info['build_s']} s), workers={a.workers}, "
         f"{os.cpu_count()} CPUs, python {platform.python_version()}, load avg at end {load[0]:.2f}"),
        (f"deam ingest: {t_d['items']} items, {len(deam)} rows, {len(rej_d)} rejects in {t_d['wall_s']:.1f} s wall "
         f"({t_d['items'] / t_d['wall_s']:.0f} items/s; CPU {t_d['cpu_s']:.1f} s; cold content hashing "
         f"{t_d['signature_s']:.1f} s, warm {warm_sig:.2f} s)"),
        (f"chunks: {t_c['items']} songs → {len(chunks)} chunks, {len(rej_c)} rejects, {cnt_c} in "
         f"{t_c['wall_s']:.1f} s wall ({t_c['items'] / t_c['wall_s']:.1f} songs/s, "
         f"{len(chunks) / t_c['wall_s']:.0f} chunks/s; CPU {t_c['cpu_s']:.1f} s); FLAC {du:.2f} GiB"),
        (f"ingest + chunks: {t_d['wall_s'] + t_c['wall_s']:.1f} s wall; peak RSS main {self_rss:.0f} MiB, "
         f"largest worker {child_rss:.0f} MiB"),
    ]
    lines.append(f"acceptance: {checks}")
    if clips_line:
        lines.append(clips_line)
    reasons = pd.Series([r.reason for r in rej_d + rej_c]).value_counts().to_dict() if rej_d or rej_c else {}
    lines.append(f"rejects by reason: {reasons}")
    print("\n".join(("- " if a.markdown else "") + ln for ln in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
