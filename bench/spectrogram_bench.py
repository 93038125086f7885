"""Spectrogram stage throughput: fast path vs plain librosa vs the bare FFT (SPEC §7.1).

On the same N synthetic 5 s chunks (emoprep.stages.demo.signals.synthetic_music), in one run:
  (a) `riffusion_image` — the stage's fast path (float32 torch/MKL rfft of the 4,410 windowed
      samples, bins ≤ 10 kHz, sparse mel);
  (b) `riffusion_image_reference` — plain librosa: full STFT, dense 512 × 8,821 mel matrix;
  (c) the floor: a bare float32 `torch.fft.rfft` of 501 frames of 17,640 points (frames
      prepared outside the timer); (c2) the same with `scipy.fft.rfft` (pocketfft), which
      the stage used up to version 3;
  (d) riffusion's converter as torch runs it (the test replica; torch uses its own threads);
  (e) the stage end to end: `Spectrogram.process` on the chunks as PCM_24 FLACs (decode,
      image, Lanczos 224 px, PNG write), per chunk.
CPU seconds (time.process_time, all threads of this process) and wall seconds per chunk;
each method runs `--rounds` times over all chunks, interleaved, and the best round counts
(the machine is shared). Pixels of (a) are compared with (b) and (d).

    .venv/bin/python bench/spectrogram_bench.py [--n 60] [--rounds 3] [--markdown]
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

import numpy as np
import pandas as pd
import scipy.fft
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tests.helpers.riffusion_reference as rr
from emoprep.pipeline.context import StageContext
from emoprep.stages.demo.signals import MUSIC_KINDS, synthetic_music
from emoprep.stages.spectrogram import params, riffusion
from emoprep.stages.spectrogram import stage as sp


def make_chunks(n: int) -> list[np.ndarray]:
    kinds = MUSIC_KINDS
    return [synthetic_music(kinds[i % len(kinds)], seed=i) for i in range(n)]


def floor_frames(audio: np.ndarray, p: params.SpectrogramParams) -> np.ndarray:
    """501 frames of n_fft float32 samples, as a plain STFT would feed its FFT."""
    padded = np.pad(audio, p.n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, p.n_fft)[::p.hop_length]
    return np.ascontiguousarray(frames[: riffusion.n_frames_for(audio.size, p)], dtype=np.float32)


def bare_rfft(frames: np.ndarray) -> None:
    """The FFT alone; its 35 MB output is dropped (keeping N of them would measure paging)."""
    import torch

    torch.fft.rfft(torch.from_numpy(frames), dim=-1)


def bare_scipy_rfft(frames: np.ndarray) -> None:
    scipy.fft.rfft(frames, axis=-1)


def timed(fn, inputs, prepare=None) -> tuple[float, float, list]:
    """CPU and wall seconds per input of fn(prepare(x)); `prepare` runs outside the timer."""
    cpu = wall = 0.0
    out = []
    for x in inputs:
        if prepare is not None:
            x = prepare(x)
        c0, w0 = time.process_time(), time.perf_counter()
        out.append(fn(x))
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
    return cpu / len(inputs), wall / len(inputs), out


def stage_runner(chunks: list[np.ndarray], root: Path):
    """Write the chunks as PCM_24 FLACs of 6-chunk songs; return a callable per work item."""
    rows = []
    for i, audio in enumerate(chunks):
        song, k = i // 6, i % 6
        rel = f"chunks/fp/audio/{song}/{k}.flac"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(root / rel), audio, 44100, subtype="PCM_24", format="FLAC")
        rows.append({"sample_id": f"bench:{song}:{k}", "source_id": f"bench:{song}",
                     "modality": 1, "start_s": 15.0 + 5 * k, "end_s": 20.0 + 5 * k, "path": rel})
    ctx = StageContext(stage="spectrogram", params=params.SpectrogramParams(), out_root=root,
                       out_dir=root / "spectrogram" / "bench", manifests={"chunks": pd.DataFrame(rows)})
    stage = sp.Spectrogram()
    items = list(stage.plan(ctx))
    item_ctx = ctx.item_context()
    return items, lambda item: stage.process(item, item_ctx)


def pixel_stats(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[int, float]:
    worst = max(int(np.abs(x.astype(np.int16) - y.astype(np.int16)).max()) for x, y in zip(a, b, strict=True))
    frac = float(np.mean([np.mean(x != y) for x, y in zip(a, b, strict=True)]))
    return worst, frac


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="number of 5 s chunks")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown", action="store_true", help="print a RESULTS.md section too")
    args = ap.parse_args()

    p = params.DEFAULT_PARAMS
    chunks = make_chunks(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        items, run_item = stage_runner(chunks, Path(tmp))
        # name: (function, inputs, untimed preparation); the floor gets its 35 MB frame array
        # built per chunk outside the timer (keeping N of them would need N x 35 MB)
        methods = {
            "(a) stage fast path": (lambda a: riffusion.riffusion_image(a, p), chunks, None),
            "(b) plain librosa (full STFT, dense mel)": (lambda a: riffusion.riffusion_image_reference(a, p),
                                                         chunks, None),
            "(c) floor: bare rfft 501 x 17640 f32": (bare_rfft, chunks, lambda a: floor_frames(a, p)),
            "(c2) bare scipy rfft 501 x 17640 f32": (bare_scipy_rfft, chunks, lambda a: floor_frames(a, p)),
            "(d) riffusion converter (torch replica)": (rr.image_from_float_audio, chunks, None),
            "(e) stage process(): FLAC->PNG 224": (run_item, items, None),
        }
        for fn, inputs, prepare in methods.values():  # warm caches (filterbank, FFT plans)
            fn(prepare(inputs[0]) if prepare else inputs[0])
        best: dict[str, tuple[float, float]] = {}
        results: dict[str, list] = {}
        for _ in range(args.rounds):
            for name, (fn, inputs, prepare) in methods.items():
                cpu, wall, out = timed(fn, inputs, prepare)
                # (e) runs per song (6 chunks): report per chunk
                cpu, wall = cpu * len(inputs) / args.n, wall * len(inputs) / args.n
                old = best.get(name)
                best[name] = (cpu, wall) if old is None else (min(old[0], cpu), min(old[1], wall))
                results[name] = out

    fast = [img for img, _ in results["(a) stage fast path"]]
    ref = [img for img, _ in results["(b) plain librosa (full STFT, dense mel)"]]
    riff = [img for img, _ in results["(d) riffusion converter (torch replica)"]]
    vs_ref, vs_riff = pixel_stats(fast, ref), pixel_stats(fast, riff)
    fast_cpu = best["(a) stage fast path"][0]
    speedup_cpu = best["(b) plain librosa (full STFT, dense mel)"][0] / fast_cpu
    speedup_wall = best["(b) plain librosa (full STFT, dense mel)"][1] / best["(a) stage fast path"][1]
    floor_cpu = best["(c) floor: bare rfft 501 x 17640 f32"][0]

    lines = ["| method | CPU ms/chunk | wall ms/chunk | chunks/CPU-s |", "|---|---:|---:|---:|"]
    for name, (cpu, wall) in best.items():
        lines.append(f"| {name} | {cpu * 1e3:.1f} | {wall * 1e3:.1f} | {1 / cpu:.1f} |")
    summary = [
        (f"fast vs plain librosa: {speedup_cpu:.2f}x per CPU-second, {speedup_wall:.2f}x wall "
         f"({'PASS' if speedup_cpu >= 3 else 'FAIL'}: SPEC needs >= 3x)"),
        f"fast path = {fast_cpu / floor_cpu:.2f}x the bare-FFT floor",
        (f"pixels, fast vs plain librosa: max |diff| {vs_ref[0]}, {vs_ref[1]:.4%} differ; "
         f"fast vs riffusion replica: max |diff| {vs_riff[0]}, {vs_riff[1]:.4%} differ"),
    ]
    print("\n".join([*lines, "", *summary]))
    if args.markdown:
        from importlib.metadata import version
        print("\n---- markdown ----")
        print(f"\n## Spectrogram stage ({dt.date.today().isoformat()})\n")
        libs = ", ".join(f"{d} {version(d)}" for d in ("numpy", "scipy", "librosa", "torch", "pillow"))
        print(f"Machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
              f"{libs}. `{' '.join(['.venv/bin/python', 'bench/spectrogram_bench.py', *sys.argv[1:]])}`: "
              f"{args.n} synthetic 5 s chunks (512 x 501 px), best of {args.rounds} interleaved "
              "rounds; CPU = time.process_time of all threads.\n")
        print("\n".join(lines) + "\n")
        print("\n".join(f"- {s}" for s in summary))
    return 0 if speedup_cpu >= 3 and vs_ref[0] <= 1 and vs_riff[0] <= 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
