"""Throughput of the seed stages `features` (seed 003) and `salient` (seed 004), per clip.

Inputs as the recipes meet them: synthetic music (the demo's synthesiser, VA-driven) encoded
as MP3 at 44.1 kHz stereo, in three lengths — 45 s (a DEAM excerpt), 30 s (about a PMEmo
chorus or a Spotify preview) and 240 s (a full song, what seed 004's chorus extraction reads).
Each stage's `process()` runs on every clip in this process, one at a time, as a worker
would: decode the MP3 (one read), downmix, resample (soxr HQ), compute, write (salient's FLAC).
CPU seconds (time.process_time: all threads of this process) and wall seconds per clip; the
best of `--rounds` rounds counts (the machine is shared). Extrapolation to DEAM + PMEmo
(1,744 DEAM excerpts of 45 s, 58 full songs of ~229 s on average, 794 PMEmo choruses taken
as ~30 s) at 1 and 2 workers assumes linear scaling.

The seeds' own figures, quoted: seed 003 §2.3 "The overall music information retrieval takes
1 hour and 44 minutes" (no clip count or machine given; over DEAM + PMEmo at most 2,596 songs,
i.e. ≥ 2.40 s per song); seed 004 §3.1 "each embedding generation of 30s would take about
10-20 seconds of computation" (OpenL3 embeddings, a neural step after the chorus extraction:
not the same work as `salient`, quoted for scale only).

    .venv/bin/python bench/seed_recipes_bench.py [--n 6] [--rounds 2] [--markdown]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import soundfile as sf

from emoprep.pipeline.context import StageContext
from emoprep.pipeline.recipe import build_params
from emoprep.stages.demo.music import synth_music
from emoprep.stages.features import Features
from emoprep.stages.segments.salient import Salient

LENGTHS = {"45 s excerpt": 45.0, "30 s clip": 30.0, "240 s song": 240.0}
SEED003_SECONDS, SEED003_MAX_SONGS = 104 * 60, 1802 + 794
# DEAM: 1,744 excerpts (~45 s) and 58 full songs (mean ~229 s); PMEmo: 794 choruses (~30 s assumed)
DEAM_EXCERPTS, DEAM_FULL, DEAM_FULL_MEAN_S, PMEMO_CLIPS = 1744, 58, 229.0, 794


def estimate(per: dict[str, tuple[float, float]]) -> float:
    """Seconds on one dedicated core for DEAM + PMEmo at these per-clip CPU costs (full songs
    scaled from the 240 s cost by length). CPU, not wall: the wall figure of a shared machine
    measures the other tenants too."""
    return (DEAM_EXCERPTS * per["45 s excerpt"][0] + PMEMO_CLIPS * per["30 s clip"][0]
            + DEAM_FULL * per["240 s song"][0] * DEAM_FULL_MEAN_S / 240.0)


def write_clips(root: Path, n: int) -> pd.DataFrame:
    """n MP3s per length (stereo 44.1 kHz); an ingest-like manifest of them."""
    rows = []
    for label, seconds in LENGTHS.items():
        count = n if seconds < 100 else max(1, n // 3)
        for i in range(count):
            name = f"{int(seconds)}_{i}"
            audio = synth_music(2 + (i * 1.3) % 6, 2 + (i * 2.1) % 6, seconds, 44100, 2, seed=i)
            sf.write(root / f"{name}.mp3", audio, 44100, format="MP3")
            rows.append({"sample_id": f"bench:{name}", "source_id": f"bench:{name}", "modality": 1,
                         "audio_path": f"{name}.mp3", "static_valence_raw": 5.0, "static_arousal_raw": 5.0,
                         "length": label})
    return pd.DataFrame(rows)


def stage_items(stage_cls, name: str, df: pd.DataFrame, root: Path, out: Path):
    params = build_params(stage_cls.Params, {"sources": ["bench"]}, name)
    ctx = StageContext(stage=name, params=params, out_root=out, out_dir=out / name / "bench",
                       manifests={"bench": df}, roots={"bench": root})
    stage = stage_cls()
    return stage, list(stage.plan(ctx)), ctx.item_context()


def timed(stage, items, ctx) -> dict[str, tuple[float, float]]:
    """Per length label: (CPU s, wall s) per clip."""
    acc: dict[str, list[float]] = {}
    for item in items:
        c0, w0 = time.process_time(), time.perf_counter()
        res = stage.process(item, ctx)
        c, w = time.process_time() - c0, time.perf_counter() - w0
        assert res.rows, res.rejects
        label = next(k for k, v in LENGTHS.items() if item.key.split(":")[1].startswith(f"{int(v)}_"))
        acc.setdefault(label, []).extend([c, w])
    return {k: (sum(acc[k][0::2]) / len(acc[k][0::2]), sum(acc[k][1::2]) / len(acc[k][1::2]))
            for k in LENGTHS if k in acc}


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name:"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6, help="clips per length (the 240 s songs: n // 3)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--markdown", action="store_true", help="print a RESULTS.md section too")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, out = Path(tmp) / "data", Path(tmp) / "out"
        root.mkdir()
        df = write_clips(root, args.n)
        results: dict[str, dict[str, tuple[float, float]]] = {}
        for name, cls in (("features", Features), ("salient", Salient)):
            stage, items, ctx = stage_items(cls, name, df, root, out)
            stage.process(items[0], ctx)  # warm-up: imports, numba JIT, filter banks
            for _ in range(args.rounds):
                got = timed(stage, items, ctx)
                old = results.get(name, {})
                results[name] = {k: (min(v[0], old.get(k, v)[0]), min(v[1], old.get(k, v)[1])) for k, v in got.items()}
    load = os.getloadavg()[0]
    lines = []
    for name, per in results.items():
        for label, (cpu, wall) in per.items():
            lines.append(f"| {name} | {label} | {cpu:.3f} | {wall:.3f} | {1 / wall:.2f} |")
    f45 = results["features"]["45 s excerpt"][0]
    s30 = results["salient"]["30 s clip"][0]
    est_f, est_s = estimate(results["features"]), estimate(results["salient"])
    print("| stage | input | CPU s / clip | wall s / clip | clips / s (1 worker) |")
    print("|---|---|---:|---:|---:|")
    print("\n".join(lines))
    print(f"DEAM + PMEmo estimate (1,744 x 45 s + 58 full songs + 794 x 30 s): features {est_f / 60:.1f} min "
          f"at 1 worker, {est_f / 120:.1f} min at 2; salient {est_s / 60:.1f} min at 1 worker, "
          f"{est_s / 120:.1f} min at 2")
    print(f"seed 003: 104 min for its feature extraction (>= {SEED003_SECONDS / SEED003_MAX_SONGS:.2f} s per song if "
          f"it covered all {SEED003_MAX_SONGS} songs); seed 004: 10-20 s per 30 s clip for OpenL3 embeddings")
    print(f"load average at the end: {load:.2f}")
    if args.markdown:
        today = dt.date.today().isoformat()
        print(f"\n## Seed stages: features (seed 003) and salient (seed 004) per clip ({today}, "
              f"{cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()})\n")
        print(f"`.venv/bin/python bench/seed_recipes_bench.py --n {args.n} --rounds {args.rounds} --markdown`: "
              "synthetic music as 44.1 kHz stereo MP3; `process()` per clip in one process (decode, "
              "downmix, soxr resample, compute, and for salient the FLAC write); best of the rounds.\n")
        print("| stage | input | CPU s / clip | wall s / clip | clips / s (1 worker) |")
        print("|---|---|---:|---:|---:|")
        print("\n".join(lines))
        print(f"\n- DEAM + PMEmo at these rates (1,744 x 45 s excerpts, 58 full songs of ~229 s, 794 x ~30 s "
              f"choruses; CPU seconds, one dedicated core per worker): "
              f"features {est_f / 60:.1f} min on 1 worker, ~{est_f / 120:.1f} min on 2; "
              f"salient {est_s / 60:.1f} min on 1 worker, ~{est_s / 120:.1f} min on 2.")
        print(f"- Seed 003 (§2.3): \"The overall music information retrieval takes 1 hour and 44 minutes\" "
              f"over DEAM + PMEmo (machine and count not stated; ≥ {SEED003_SECONDS / SEED003_MAX_SONGS:.2f} s "
              f"per song if all {SEED003_MAX_SONGS} songs): ours {f45:.2f} CPU s per 45 s clip.")
        print(f"- Seed 004 (§3.1): \"each embedding generation of 30s would take about 10-20 seconds\" — OpenL3 "
              f"embeddings, not the chorus extraction; ours selects and writes the salient 30 s in "
              f"{s30:.2f} CPU s (30 s clip) to {results['salient']['240 s song'][0]:.2f} CPU s (240 s song).")
        print(f"- Load average at the end: {load:.2f} (shared machine).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
