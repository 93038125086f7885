"""Benchmark: the DEAM audio path at DEAM scale and at 10×, through the real CLI (SPEC §7.1).

    .venv/bin/python bench/deam_scale.py [--n-scale 1] [--workers 2] [--executor local] [--set K=V]
                                         [--before] [--breakdown SONGS]
    .venv/bin/python bench/deam_scale.py --dask-speedup [--songs 400]

Builds (once, cached under bench/out/) a synthetic tree with the real DEAM id set and
durations as MP3 (`write_deam_scale_tree`; at 10× the extra ids are hard links of copy 0),
then runs `emoprep run --recipe thesis-v3 --stage spectrogram` (deam → chunks → 224-px
spectrogram PNGs; `--set chunks.materialize=true` to write the chunk FLACs as before issue 18)
into a fresh output folder while sampling the memory of the whole process tree (the CLI and
every worker) every 0.25 s. Prints wall time, items/s, peak memory (sum of RSS over the tree —
pages shared between processes counted once per process, so an upper bound — and sum of PSS,
the fair share), the output folder's size on disk, then the time of a no-op re-run.
`--before` first runs the same DAG as it was before issue 18 (`chunks.materialize=true`: chunk
FLACs written, then read by the spectrogram stage) and prints both runs' figures per stage side
by side; `--breakdown SONGS` ends with `bench/chunk_path.py` over that many songs of the tree
(CPU ms per chunk for decode, resample, rFFT, |·|, filterbank, image, resize, PNG encode,
write, against the rFFT floor).

`--dask-speedup` runs deam + chunks once on the first `--songs` songs, then the
spectrogram stage alone with `--executor dask --workers 1`, `--workers 2` and the local
executor with 2 workers (on hard-linked copies of that output), prints the stage times and
the speed-up, and checks both dask outputs are byte-identical to the local one.
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
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the tree generator is bench.trees.deam_scale_tree
OUT = HERE / "out"
EMOPREP = Path(sys.executable).with_name("emoprep")


def ensure_tree(n_scale: int, seed: int = 0, only_ids: list[int] | None = None, tag: str = "") -> Path:
    """The synthetic tree, built once; 10× seeds its copy 0 from the 1× tree's MP3s."""
    from bench.trees.deam_scale_tree import write_deam_scale_tree
    from emoprep.stages.demo.deam_files import AUDIO_DIR

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
        self.samples: list[tuple[float, int, int]] = []  # (epoch s, RSS sum of the tree, CLI RSS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            rss = pss = main = 0
            for p in procs:
                try:
                    full = p.memory_full_info()
                except psutil.Error:
                    continue
                rss += full.rss
                pss += getattr(full, "pss", full.rss)
                if p.pid == self.root.pid:
                    main = full.rss
                    self.peak_main = max(self.peak_main, full.rss)
            self.samples.append((time.time(), rss, main))
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


def phase_peaks(mem: TreeMemory, out: Path) -> dict[str, str]:
    """Peak tree RSS (and the CLI's RSS at that moment) over each stage, start to _DONE,
    from the stage-start/stage-done events of the run log."""
    events = [json.loads(line) for log in sorted((out / "logs").glob("run-*.jsonl"))
              for line in log.read_text().splitlines()]
    starts = {e["stage"]: e["t"] for e in events if e["event"] == "stage-start"}
    ends = {e["stage"]: e["t"] for e in events if e["event"] == "stage-done"}
    parts = {}
    for stage, t0 in starts.items():
        inside = [(rss, main) for t, rss, main in mem.samples if t0 <= t <= ends.get(stage, t0)]
        if inside:
            rss, main = max(inside)
            parts[stage] = f"{gib(rss)} ({gib(main)})"
    return parts


def done_counts(out: Path, stage: str) -> dict:
    cur = json.loads((out / "manifests" / "_current.json").read_text())
    return json.loads((out / cur[stage]["dir"] / "_DONE.json").read_text())


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def scale_run(a: argparse.Namespace, sets: list[str] | None = None,
              label: str = "") -> tuple[list[str], dict[str, Any]]:
    """One timed run into a fresh folder, then its no-op re-run: printed lines and figures."""
    sets = a.set if sets is None else sets
    tree = ensure_tree(a.n_scale) if not a.first else first_songs_tree(a.first)
    out = OUT / f"deam-scale-run-n{a.n_scale}"
    shutil.rmtree(out, ignore_errors=True)
    common = ["--recipe", "thesis-v3", "--stage", "spectrogram", "--data-root", str(tree),
              "--out", str(out), "--workers", str(a.workers), "--executor", a.executor,
              *(x for kv in sets for x in ("--set", kv))]
    wall, mem, _ = emoprep_run(common)
    size = folder_size(out)
    stages = {s: done_counts(out, s) for s in ("deam", "chunks", "spectrogram")}
    noop, _, noop_out = emoprep_run(common)
    assert "running" not in noop_out, noop_out
    songs = stages["deam"]["counts"]["rows"]
    chunks = stages["chunks"]["counts"]["rows"]
    images = stages["spectrogram"]["counts"]["rows"]
    sizes = {s: folder_size(out / s)[0] for s in ("deam", "chunks", "spectrogram")}
    figures: dict[str, Any] = {"wall": wall, "seconds": {s: d["run"]["seconds"] for s, d in stages.items()},
               "peaks": phase_peaks(mem, out), "sizes": sizes, "total": size[0], "rss": mem.peak_rss,
               "noop": noop}
    lines = [
        (f"{label}DEAM scale ×{a.n_scale}: {songs} songs → {chunks} chunks → {images} spectrogram PNGs "
         f"({a.executor}, {a.workers} workers{', --set ' + ' '.join(sets) if sets else ''})"),
        f"wall {wall:.1f} s ({images / wall:.1f} images/s); stage seconds: "
        + ", ".join(f"{s} {d['run']['seconds']:.1f}" for s, d in stages.items()),
        (f"peak memory of the process tree: RSS sum {gib(mem.peak_rss)}, PSS sum {gib(mem.peak_pss)}, "
         f"CLI process {gib(mem.peak_main)}, {mem.peak_procs} processes"),
        "peak RSS sum while each stage ran: " + ", ".join(f"{k} {v}" for k, v in figures["peaks"].items()),
        f"output folder: {gib(size[0])} on disk ({gib(size[1])} of file bytes, {size[2]} files); "
        + ", ".join(f"{s} {gib(n)}" for s, n in sizes.items()),
        f"no-op re-run: {noop:.2f} s",
        "rejects: " + ", ".join(f"{s} {d['counts']['rejects']}" for s, d in stages.items()),
    ]
    if not a.keep:
        shutil.rmtree(out, ignore_errors=True)
    return lines, figures


def before_after(a: argparse.Namespace) -> list[str]:
    """The DAG as before issue 18 (chunk FLACs written and read back), then as configured."""
    before_lines, before = scale_run(a, [*a.set, "chunks.materialize=true"], "before (materialised chunks): ")
    after_lines, after = scale_run(a, a.set, "after (segments as views): ")
    rows = ["| | before | after |", "|---|---:|---:|", f"| wall s | {before['wall']:.1f} | {after['wall']:.1f} |"]
    for stage in ("deam", "chunks", "spectrogram"):
        rows += [f"| {stage} s | {before['seconds'][stage]:.1f} | {after['seconds'][stage]:.1f} |",
                 (f"| {stage} peak RSS sum (CLI) | {before['peaks'].get(stage, '–')} "
                 f"| {after['peaks'].get(stage, '–')} |"),
                 f"| {stage} on disk | {gib(before['sizes'][stage])} | {gib(after['sizes'][stage])} |"]
    rows += [f"| output folder | {gib(before['total'])} | {gib(after['total'])} |",
             f"| peak RSS sum of the tree | {gib(before['rss'])} | {gib(after['rss'])} |",
             f"| no-op re-run s | {before['noop']:.2f} | {after['noop']:.2f} |"]
    return [*before_lines, "", *after_lines, "", *rows]


def breakdown(songs: int) -> list[str]:
    """bench/chunk_path.py over the first `songs` songs of the 1× tree (one thread)."""
    done = subprocess.run([sys.executable, str(HERE / "chunk_path.py"), "--songs", str(songs), "--rounds", "1"],
                          capture_output=True, text=True, check=True)
    return ["", "CPU per chunk, one thread (bench/chunk_path.py):", *done.stdout.splitlines()]


def first_songs_tree(songs: int) -> Path:
    """A tree of the first `songs` excerpts only (quick checks; the dask comparison)."""
    from bench.trees.deam_scale_tree import scale_specs

    ids = [s.song_id for s in scale_specs(0) if s.kind == "excerpt"][:songs]
    return ensure_tree(1, only_ids=ids, tag=f"-first{songs}")


def dask_speedup(a: argparse.Namespace) -> list[str]:
    tree = first_songs_tree(a.songs)
    base = OUT / f"dask-base-{a.songs}"
    shutil.rmtree(base, ignore_errors=True)
    emoprep_run(["--recipe", "thesis-v3", "--stage", "chunks", "--data-root", str(tree), "--out", str(base)])
    seconds, images = {}, 0
    runs = {"dask-w1": ("dask", 1), "dask-w2": ("dask", 2), "local-w2": ("local", 2)}
    for name, (executor, n) in runs.items():
        out = OUT / name
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run(["cp", "-al", str(base), str(out)], check=True)
        emoprep_run(["--recipe", "thesis-v3", "--stage", "spectrogram", "--data-root", str(tree),
                     "--out", str(out), "--executor", executor, "--workers", str(n)])
        seconds[name] = done_counts(out, "spectrogram")["run"]["seconds"]
        images = done_counts(out, "spectrogram")["counts"]["rows"]
    reference = stage_files(OUT / "local-w2" / "spectrogram")
    differ = {name: sorted(k for k in reference.keys() | files.keys() if reference.get(k) != files.get(k))
              for name in ("dask-w1", "dask-w2") for files in [stage_files(OUT / name / "spectrogram")]}
    for p in (base, *(OUT / name for name in runs)):
        shutil.rmtree(p, ignore_errors=True)
    verdict = "; ".join(f"{name} vs local: " + ("identical" if not d else f"{len(d)} files DIFFER, e.g. {d[:3]}")
                        for name, d in differ.items())
    return [(f"spectrogram stage, {a.songs} songs → {images} images: dask 1 worker {seconds['dask-w1']:.1f} s, "
            f"dask 2 workers {seconds['dask-w2']:.1f} s (speed-up {seconds['dask-w1'] / seconds['dask-w2']:.2f}×), "
             f"local 2 workers {seconds['local-w2']:.1f} s; {verdict}")]


def folder_size(folder: Path) -> tuple[int, int, int]:
    """(bytes allocated on disk, file bytes, files) under `folder`, as `du` and `du -b` count."""
    disk = apparent = files = 0
    for path in folder.rglob("*"):
        st = path.lstat()
        disk += st.st_blocks * 512
        if path.is_file():
            apparent += st.st_size
            files += 1
    return disk, apparent, files


def stage_files(folder: Path) -> dict[str, bytes]:
    """Every file of a stage folder by relative path; `_DONE.json` without its "run" block
    (that run's timings and executor), which is all that may differ between executors."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "_DONE.json":
                info = json.loads(data)
                info.pop("run", None)
                data = json.dumps(info, sort_keys=True).encode()
            files[path.relative_to(folder).as_posix()] = data
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-scale", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--executor", default="local")
    ap.add_argument("--dask-speedup", action="store_true")
    ap.add_argument("--songs", type=int, default=400)
    ap.add_argument("--keep", action="store_true", help="keep the output folder")
    ap.add_argument("--first", type=int, default=0, metavar="SONGS",
                    help="run on the first SONGS excerpts only, at 1× (a quick check of the script)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="passed to emoprep run (e.g. chunks.materialize=true)")
    ap.add_argument("--before", action="store_true",
                    help="first run the DAG as before issue 18 (chunks.materialize=true), compare per stage")
    ap.add_argument("--breakdown", type=int, default=0, metavar="SONGS",
                    help="end with bench/chunk_path.py's CPU breakdown per chunk over SONGS songs")
    a = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d')} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    if a.dask_speedup:
        lines = dask_speedup(a)
    elif a.before:
        lines = before_after(a)
    else:
        lines = scale_run(a)[0]
    if a.breakdown:
        lines += breakdown(a.breakdown)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
