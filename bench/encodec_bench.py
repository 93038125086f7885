"""EnCodec 24 kHz throughput on this machine: seconds of audio encoded per second, batched vs
unbatched (thesis-v12 audio tokens, SPEC §4 tokenize / §7.1).

On N synthetic 46.0 s clips (the `clips` stage's length), the real `encodec-24khz`
architecture (seeded random init unless --weights; weights do not change the cost), 24 kbps,
float32 on CPU, torch using every core:
  (a) bare: `EncodecModel.encode` of transformers, one clip at a time, on audio already at
      24 kHz in memory — the floor;
  (b) `encodec.encode` (what the stage calls: LSTM and quantizer one clip at a time inside a
      batch, so codes do not depend on the batch) at each batch size of --batch-sizes;
      its codes are compared with (a)'s, byte for byte;
  (c) the stage: `Tokens.process` on one shard of the N clips, i.e. FLAC decode + soxr HQ
      44.1 → 24 kHz + encode + int16 NPY write (fsync, SHA-256), at the default audio batch.
The model is built and warmed up before any timer starts. Each method runs --rounds times,
interleaved; the best round counts (the machine is shared).

    .venv/bin/python bench/encodec_bench.py [--n 4] [--seconds 46] [--batch-sizes 1,2,4] [--rounds 1] [--markdown]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from emoprep.stages.tokens import encodec, weights
from emoprep.stages.tokens.stage import Tokens, objects_dir
from tests.helpers.token_fixtures import clip_label_rows, clip_signal, split_rows, tokens_ctx, write_clips

TOK = "encodec-24khz"


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[float, float, object]:
    t0, c0 = time.perf_counter(), cpu_seconds()
    out = fn()
    return time.perf_counter() - t0, cpu_seconds() - c0, out


def bare(model, clips: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        out = [model.encode(torch.from_numpy(c)[None, None], bandwidth=24.0).audio_codes[0, 0].numpy()
               for c in clips]
    return np.stack(out).astype(np.int16)


def batched(model, clips: np.ndarray, batch: int) -> np.ndarray:
    compute = weights.Compute("cpu", None)
    return np.concatenate([encodec.encode(model, clips[i:i + batch], TOK, compute)
                           for i in range(0, len(clips), batch)])


def stage_shard(root: Path, n: int, seconds: float):
    """Clip FLACs + a split manifest, and a function running the tokens stage on one shard."""
    labels = clip_label_rows(n_songs=n, n_images=0)
    manifests = {"clips": write_clips(root, labels, clip_s=seconds), "split": split_rows(labels, root)}
    ctx = tokens_ctx(root, manifests, tokenizer=TOK, sources=("clips",), shard_size=n, num_workers=0)
    stage = Tokens()
    item = stage.plan(ctx)[0]

    def run():
        shutil.rmtree(objects_dir(root, ctx.params), ignore_errors=True)  # compute, do not re-use
        return stage.process(item, ctx.item_context())

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4, help="clips")
    ap.add_argument("--seconds", type=float, default=46.0, help="clip length (the stage path needs 46.0)")
    ap.add_argument("--batch-sizes", default="1,2,4")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    threads = weights.set_threads(0)
    rate = encodec.sample_rate(TOK)
    clips = np.stack([clip_signal(round(args.seconds * rate), rate, seed=k) for k in range(args.n)])
    audio_s = args.n * args.seconds
    model = encodec.get_encodec(TOK, None, 0, "cpu", "auto").model
    batched(model, clips[:1, : rate * 2], 1)  # warm-up
    tmp = Path(tempfile.mkdtemp(prefix="encodec-bench-"))
    try:
        run_stage = stage_shard(tmp, args.n, args.seconds) if args.seconds == encodec.ARCHS[TOK]["clip_s"] else None
        best: dict[str, tuple[float, float]] = {}
        ref = None
        same: dict[int, bool] = {}
        for _ in range(args.rounds):
            wall, cpu, codes = timed(lambda: bare(model, clips))
            ref = codes
            best["bare"] = min(best.get("bare", (1e18, 0)), (wall, cpu))
            for b in sizes:
                wall, cpu, codes = timed(lambda b=b: batched(model, clips, b))
                same[b] = bool(np.array_equal(codes, ref))
                best[f"batch {b}"] = min(best.get(f"batch {b}", (1e18, 0)), (wall, cpu))
            if run_stage is not None:
                wall, cpu, out = timed(run_stage)
                assert len(out.rows) == args.n, out.rejects
                best["stage"] = min(best.get("stage", (1e18, 0)), (wall, cpu))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = os.getloadavg()[0]
    lines = [(f"## EnCodec 24 kHz throughput ({dt.date.today().isoformat()}, "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"torch {__import__('torch').__version__}, {threads} threads)"), "",
             (f"`.venv/bin/python bench/encodec_bench.py --n {args.n} --seconds {args.seconds:g} "
              f"--batch-sizes {args.batch_sizes} --rounds {args.rounds}`: {args.n} synthetic clips of "
              f"{args.seconds:g} s ({audio_s:g} s of audio), `encodec-24khz` at 24 kbps, random init, float32 CPU; "
              f"best of {args.rounds} round(s); load average at the end {load:.2f}; peak RSS {peak:.0f} MiB."), "",
             "| method | wall s | audio s / s | CPU s | codes = bare |", "|---|---:|---:|---:|---|"]
    for name, (wall, cpu) in best.items():
        eq = "–" if name in ("bare", "stage") else ("yes" if same[int(name.split()[1])] else "NO")
        lines.append(f"| {name} | {wall:.1f} | {audio_s / wall:.2f} | {cpu:.1f} | {eq} |")
    if "stage" in best:
        lines += ["", (f"stage / bare throughput: {best['bare'][0] / best['stage'][0]:.3f} (wall), "
                       f"{best['bare'][1] / best['stage'][1]:.3f} (CPU s)")]
    text = "\n".join(lines)
    print(text if args.markdown else text.replace("| ", "").replace(" |", ""))


if __name__ == "__main__":
    main()
