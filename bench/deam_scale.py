"""Benchmark: the DEAM audio path at DEAM scale and at 10×, through the real CLI (SPEC §7.1).

    .venv/bin/python bench/deam_scale.py [--n-scale 1] [--workers 2] [--executor local]
    .venv/bin/python bench/deam_scale.py --dask-speedup [--songs 400]

Builds (once, cached under bench/out/) a synthetic tree with the real DEAM id set and
durations as MP3 (`write_deam_scale_tree`; at 10× the extra ids are hard links of copy 0),
then runs `emoprep run --recipe thesis-v3 --stage spectrogram` (deam → chunks → 224-px
spectrogram PNGs) into a fresh output folder while sampling the memory of the whole
process tree (the CLI and every worker) every 0.25 s. Prints wall time, items/s, peak
memory (sum of RSS over the tree — pages shared between processes counted once per process,
so an upper bound — and sum of PSS, the fair share), then the time of a no-op re-run.

`--dask-speedup` runs deam + chunks once on the first `--songs` songs, then the
spectrogram stage alone with `--executor dask --workers 1` and `--workers 2` (on hard-linked
copies of that output) and prints both stage times and the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
EMOPREP = Path(sys.executable).with_name("emoprep")


def ensure_tree(n_scale: int, seed: int = 0, only_ids: list[int] | None = None, tag: str = "") -> Path:
    """The synthetic tree, built once; 10× seeds its copy 0 from the 1× tree's MP3s."""
    from emoprep.stages.demo_deam import AUDIO_DIR, write_deam_scale_tree

    root = OUT / f"deam-scale-n{n_scale}-s{seed}{tag}"
    marker = root / "_TREE.json"
    if marker.exists():
        return root
    base = OUT / f"deam-scale-n1-s{seed}"
    if n_scale > 1 and (base / "_TREE.json").exists():
        (root / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
        for mp3 in (base / AUDIO_DIR).glob("*.mp3"):
            dst = root / AUDIO_DIR / mp3.name
            if not dst.exists():
                os.link(mp3, dst)
    t0 = time.perf_counter()
    info = write_deam_scale_tree(root, n_scale=n_scale, seed=seed, workers=os.cpu_count() or 2,
                                 only_ids=only_ids)
    marker.write_text(json.dumps({"n_songs": info["n_songs"], "build_s": round(time.perf_counter() - t0, 1)}))
    return root


class TreeMemory:
    """Peak memory of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.25):
        self.root = psutil.Process(pid)
        self.every = every
        self.peak_rss = self.peak_pss = self.peak_main = 0
        self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            rss = pss = 0
            for p in procs:
                try:
                    full = p.memory_full_info()
                except psutil.Error:
                    continue
                rss += full.rss
                pss += getattr(full, "pss", full.rss)
                if p.pid == self.root.pid:
                    self.peak_main = max(self.peak_main, full.rss)
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, len(procs))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def emoprep_run(args: list[str]) -> tuple[float, TreeMemory, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(EMOPREP), "run", "--quiet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    mem = TreeMemory(proc.pid)
    output, _ = proc.communicate()
    wall = time.perf_counter() - t0
    mem.stop()
    if proc.returncode != 0:
        raise SystemExit(f"emoprep run failed ({proc.returncode}):\n{output}")
    return wall, mem, output


def done_counts(out: Path, stage: str) -> dict:
    cur = json.loads((out / "manifests" / "_current.json").read_text())
    return json.loads((out / cur[stage]["dir"] / "_DONE.json").read_text())


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def scale_run(a: argparse.Namespace) -> list[str]:
    tree = ensure_tree(a.n_scale)
    out = OUT / f"deam-scale-run-n{a.n_scale}"
    shutil.rmtree(out, ignore_errors=True)
    common = ["--recipe", "thesis-v3", "--stage", "spectrogram", "--data-root", str(tree),
              "--out", str(out), "--workers", str(a.workers), "--executor", a.executor]
    wall, mem, _ = emoprep_run(common)
    stages = {s: done_counts(out, s) for s in ("deam", "chunks", "spectrogram")}
    noop, _, noop_out = emoprep_run(common)
    assert "running" not in noop_out, noop_out
    songs = stages["deam"]["counts"]["rows"]
    chunks = stages["chunks"]["counts"]["rows"]
    images = stages["spectrogram"]["counts"]["rows"]
    lines = [
        f"DEAM scale ×{a.n_scale}: {songs} songs → {chunks} chunks → {images} spectrogram PNGs "
        f"({a.executor}, {a.workers} workers)",
        f"wall {wall:.1f} s ({images / wall:.1f} images/s); stage seconds: "
        + ", ".join(f"{s} {d['run']['seconds']:.1f}" for s, d in stages.items()),
        f"peak memory of the process tree: RSS sum {gib(mem.peak_rss)}, PSS sum {gib(mem.peak_pss)}, "
        f"CLI process {gib(mem.peak_main)}, {mem.peak_procs} processes",
        f"no-op re-run: {noop:.2f} s",
        "rejects: " + ", ".join(f"{s} {d['counts']['rejects']}" for s, d in stages.items()),
    ]
    if not a.keep:
        shutil.rmtree(out, ignore_errors=True)
    return lines


def dask_speedup(a: argparse.Namespace) -> list[str]:
    from emoprep.stages.demo_deam import scale_specs

    ids = [s.song_id for s in scale_specs(0) if s.kind == "excerpt"][: a.songs]
    tree = ensure_tree(1, only_ids=ids, tag=f"-first{a.songs}")
    base = OUT / f"dask-base-{a.songs}"
    shutil.rmtree(base, ignore_errors=True)
    emoprep_run(["--recipe", "thesis-v3", "--stage", "chunks", "--data-root", str(tree), "--out", str(base)])
    seconds = {}
    for n in (1, 2):
        out = OUT / f"dask-w{n}"
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run(["cp", "-al", str(base), str(out)], check=True)
        emoprep_run(["--recipe", "thesis-v3", "--stage", "spectrogram", "--data-root", str(tree),
                     "--out", str(out), "--executor", "dask", "--workers", str(n)])
        seconds[n] = done_counts(out, "spectrogram")["run"]["seconds"]
        images = done_counts(out, "spectrogram")["counts"]["rows"]
    same = subprocess.run(["diff", "-r", "-q", str(OUT / "dask-w1" / "spectrogram"),
                           str(OUT / "dask-w2" / "spectrogram")], capture_output=True, text=True)
    for p in (base, OUT / "dask-w1", OUT / "dask-w2"):
        shutil.rmtree(p, ignore_errors=True)
    return [f"dask spectrogram stage, {len(ids)} songs → {images} images: 1 worker {seconds[1]:.1f} s, "
            f"2 workers {seconds[2]:.1f} s, speed-up {seconds[1] / seconds[2]:.2f}×; "
            f"outputs {'identical' if same.returncode == 0 else 'DIFFER: ' + same.stdout[:300]}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-scale", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--executor", default="local")
    ap.add_argument("--dask-speedup", action="store_true")
    ap.add_argument("--songs", type=int, default=400)
    ap.add_argument("--keep", action="store_true", help="keep the output folder")
    a = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d')} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    lines = dask_speedup(a) if a.dask_speedup else scale_run(a)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
