"""Benchmark: where one chunk's CPU time goes on the spectrogram path, one thread.

    .venv/bin/python bench/chunk_path.py [--songs 60] [--rounds 2]

Takes the first `--songs` MP3s of the DEAM-scale tree (`bench/deam_scale.py` builds it under
bench/out/), cuts them as the `chunks` stage plans them (views: decoded once per song) and
times each step of `spectrogram.stage` with `time.process_time` (CPU seconds of this process;
OMP/MKL and torch limited to one thread, as in a pool worker): decode (libsndfile MP3 read,
downmix, soxr), the riffusion mel split into its parts (reflect pad + windowing, the float32
rFFT, |·| of the kept bins, the sparse filterbank — the same operations as
`riffusion.riffusion_mel`, checked equal to it bit for bit), the power/255 image, Lanczos
512 → 224, PNG encode at compress levels 6 (today) and 1, and the file write (atomic rename,
no fsync, as the stage writes it). Prints ms per song and per chunk, the chunk's cost as a
multiple of its rFFT (the floor of the exact transform), and what that makes for the 1,802
songs / 12,960 chunks of DEAM on 2 cores. `bench/deam_scale.py --breakdown N` runs it too.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import io
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TREE = HERE / "out" / "deam-scale-n1-s0"
DEAM_SONGS, DEAM_CHUNKS = 1802, 12960


RFFT = "mel: rFFT (float32, torch/MKL)"


def timed_mel(audio: Any, clock: Callable[[str, float], float], t0: float) -> tuple[Any, float]:
    """`riffusion.riffusion_mel`, step by step, charging each step to `clock`."""
    import numpy as np
    import torch

    from emoprep.stages.spectrogram.params import DEFAULT_PARAMS
    from emoprep.stages.spectrogram.riffusion import FRAME_BLOCK, _riffusion_plan, _transform_key, n_frames_for

    p = DEFAULT_PARAMS
    plan = _riffusion_plan(_transform_key(p))
    n_frames = n_frames_for(audio.size, p)
    right_pad = (n_frames - 1) * p.hop_length + p.win_length - plan.left_pad - audio.size
    padded = np.pad(audio, (plan.left_pad, max(right_pad, 0)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, p.win_length)[::p.hop_length]
    buf = np.zeros((min(FRAME_BLOCK, n_frames), p.n_fft), dtype=np.float32)
    frames_in = torch.from_numpy(buf)
    magnitude = np.empty((n_frames, plan.n_bins), dtype=np.float32)
    t0 = clock("mel: reflect pad + frame setup", t0)
    for start in range(0, n_frames, FRAME_BLOCK):
        n = min(FRAME_BLOCK, n_frames - start)
        np.multiply(frames[start:start + n], plan.window, out=buf[:n, :p.win_length])
        t0 = clock("mel: window × samples", t0)
        spectrum = torch.fft.rfft(frames_in[:n], dim=-1).numpy()
        t0 = clock(RFFT, t0)
        np.abs(spectrum[:, :plan.n_bins], out=magnitude[start:start + n])
        t0 = clock("mel: |.| of the kept bins", t0)
    mel = np.asarray(plan.filterbank @ magnitude.T, dtype=np.float32)
    return mel, clock("mel: sparse filterbank", t0)


def main() -> int:
    import numpy as np
    import soundfile as sf
    import soxr
    import torch
    from PIL import Image

    from emoprep.pipeline.atomic import atomic_path
    from emoprep.stages.common.audio_io import downmix, fit_length
    from emoprep.stages.segments.spans import chunk_spans_samples
    from emoprep.stages.spectrogram.riffusion import image_from_mel, riffusion_mel, to_model_size

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(1)
    mp3s = sorted((TREE / "MEMD_audio").glob("[0-9]*.mp3"), key=lambda p: int(p.stem))[: a.songs]
    if not mp3s:
        raise SystemExit(f"no tree under {TREE}: run bench/deam_scale.py once to build it")
    t: dict[str, float] = defaultdict(float)
    n_songs = n_chunks = 0
    png_bytes = {6: 0, 1: 0}
    scratch = Path(tempfile.mkdtemp(prefix="chunk-path-"))

    def clock(name: str, t0: float) -> float:
        now = time.process_time()
        t[name] += now - t0
        return now

    # Once per worker process, not per chunk: the transform's plan (scipy import, filterbank,
    # window) and MKL's FFT setup. Paid here so the per-chunk figures exclude it.
    t0 = time.process_time()
    riffusion_mel(np.zeros(220500, dtype=np.float32) + np.float32(1e-3))
    once = time.process_time() - t0
    for _ in range(a.rounds):
        for mp3 in mp3s:
            t0 = time.process_time()
            data, sr = sf.read(str(mp3), dtype="float32", always_2d=True)
            t0 = clock("decode: MP3 read", t0)
            mono = downmix(data)
            t0 = clock("decode: downmix", t0)
            if sr != 44100:
                mono = fit_length(soxr.resample(mono, sr, 44100, quality="HQ"), round(len(data) * 44100 / sr))
            t0 = clock("decode: soxr to 44.1 kHz", t0)
            spans, _ = chunk_spans_samples(len(mono), 15.0, 5.0, 4.5, 44100)
            n_songs += 1
            for sp in spans:
                t0 = time.process_time()
                audio = fit_length(mono[sp.first:sp.first + sp.n_audio], 220500)
                t0 = clock("cut + pad", t0)
                mel, t0 = timed_mel(audio, clock, t0)
                if n_chunks < 3:  # the instrumented copy is the stage's transform
                    assert np.array_equal(mel, riffusion_mel(audio))
                    t0 = time.process_time()
                img, _ = image_from_mel(mel)
                t0 = clock("image (÷max, ^0.25, ×255)", t0)
                small = to_model_size(img, 224)
                t0 = clock("Lanczos 512x501 -> 224", t0)
                for level in (6, 1):
                    buf = io.BytesIO()
                    Image.fromarray(small).save(buf, format="PNG", compress_level=level, optimize=False)
                    t0 = clock(f"PNG encode, compress_level {level}", t0)
                    png_bytes[level] += buf.tell()
                with atomic_path(scratch / f"{n_chunks % 50}.png") as tmp:
                    tmp.write_bytes(buf.getvalue())
                t0 = clock("file write (temp + rename)", t0)
                n_chunks += 1
    per_song = {k: v / n_songs * 1e3 for k, v in t.items() if k.startswith("decode")}
    fft_floor = t[RFFT] / n_chunks * 1e3
    per_chunk = {k: v / n_chunks * 1e3 for k, v in t.items() if not k.startswith("decode")}
    print(f"# {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
          f"{len(mp3s)} songs × {a.rounds} rounds = {n_chunks} chunks, one thread")
    print(f"{'once per worker process: transform plan + FFT setup':45s} {once * 1e3:7.1f} ms")
    for k, v in per_song.items():
        print(f"{k:45s} {v:7.2f} ms/song")
    for k, v in per_chunk.items():
        print(f"{k:45s} {v:7.2f} ms/chunk")
    today = sum(v for k, v in per_chunk.items() if "level 1" not in k)
    song = sum(per_song.values())
    cpu = DEAM_SONGS * song / 1e3 + DEAM_CHUNKS * today / 1e3
    print(f"chunk path at compress_level 6: {today:.2f} ms/chunk + {song:.2f} ms/song decode "
          f"→ DEAM {cpu:.0f} CPU s, {cpu / 2:.0f} s on 2 cores")
    chunk_all = today + song * n_songs / n_chunks
    print(f"FFT floor: {fft_floor:.2f} ms/chunk; the whole chunk (its share of the decode included) "
          f"costs {chunk_all / fft_floor:.2f}× its rFFT; the rFFT is {fft_floor / chunk_all:.0%} of it")
    for level, b in png_bytes.items():
        print(f"PNG compress_level {level}: {b / n_chunks / 1024:.1f} KiB/chunk → "
              f"{b / n_chunks * DEAM_CHUNKS / 2**30:.2f} GiB for DEAM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
