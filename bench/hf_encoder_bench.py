"""`hf:` tokenizer throughput vs a bare forward of the same model (issue 28: ≥ 0.9 × bare).

On N synthetic 224-px RGB PNGs, one tiny checkpoint saved with `save_pretrained` (ViT-like,
hidden 192, 6 layers, 224 px / patch 16: big enough that the forward is the work), every
hidden state kept (`layers = "all"`), pooling none or mean:
  (a) bare: the checkpoint's own processor and `model(**inputs, output_hidden_states=True)`
      over pre-decoded images already in memory, in batches of `--batch-size`;
  (b) stage: `Tokens.process` on one shard of the N samples (PNG decode, processor, forward,
      layer stacking, pooling, float16 cast, NPY write with SHA-256), the shard-object store
      emptied before each round so it computes.
Both run `--rounds` times, interleaved; the best round counts (the machine is shared).

    .venv/bin/python bench/hf_encoder_bench.py [--n 64] [--batch-size 16] [--rounds 3] [--pooling mean]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from emoprep.stages.tokens import weights
from emoprep.stages.tokens.stage import Tokens, objects_dir
from tests.helpers.token_fixtures import label_rows, split_rows, tokens_ctx, write_pngs


def save_model(folder: Path) -> None:
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    ViTModel(ViTConfig(hidden_size=192, num_hidden_layers=6, num_attention_heads=3,
                       intermediate_size=768)).save_pretrained(folder)
    ViTImageProcessor().save_pretrained(folder)


def bare(folder: Path, images: list[np.ndarray], batch: int) -> float:
    import torch
    from transformers import AutoImageProcessor, AutoModel

    model, proc = AutoModel.from_pretrained(folder).eval(), AutoImageProcessor.from_pretrained(folder, backend="pil")
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = proc(images=images[i:i + batch], return_tensors="pt")
            model(**x, output_hidden_states=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pooling", default="none")
    args = ap.parse_args()
    weights.set_threads(0)
    with tempfile.TemporaryDirectory() as tmp:
        root, folder = Path(tmp) / "out", Path(tmp) / "ckpt"
        root.mkdir()
        save_model(folder)
        labels = label_rows(n_songs=0, chunks=0, n_images=args.n)
        manifests = {"images": write_pngs(root, labels)["images"], "split": split_rows(labels, root)}
        from PIL import Image

        images = [np.asarray(Image.open(root / p)) for p in manifests["images"]["path"]]
        ctx = tokens_ctx(root, manifests, tokenizer=f"hf:{folder}", sources=("images",), shard_size=args.n,
                         batch_size=args.batch_size, layers="all", pooling=args.pooling)
        stage = Tokens()
        stage.fingerprint_extra(ctx)
        item = next(i for i in stage.plan(ctx) if i.key != "unmatched")
        stage.process(item, ctx.item_context())  # warm-up: the model is built once per process
        bare(folder, images[: args.batch_size], args.batch_size)
        t_bare, t_stage = [], []
        for _ in range(args.rounds):
            t_bare.append(bare(folder, images, args.batch_size))
            shutil.rmtree(objects_dir(root, ctx.params), ignore_errors=True)
            t0 = time.perf_counter()
            stage.process(item, ctx.item_context())
            t_stage.append(time.perf_counter() - t0)
        b, s = min(t_bare), min(t_stage)
        print(f"n={args.n} batch={args.batch_size} layers=all pooling={args.pooling} rounds={args.rounds}")
        print(f"bare forward: {b:.3f} s ({args.n / b:.1f} img/s)   rounds {[round(t, 3) for t in t_bare]}")
        print(f"stage:        {s:.3f} s ({args.n / s:.1f} img/s)   rounds {[round(t, 3) for t in t_stage]}")
        print(f"stage / bare throughput: {b / s:.2f}x (target >= 0.9x)")


if __name__ == "__main__":
    main()
