"""Synthetic inputs for the split/tokens/reader/validate tests, and a minimal stand-in for
the runner (plan → process → finalize → manifests/*.parquet), so those stages are tested
before the engine exists. Everything is generated; nothing binary is checked in."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from emoprep.stage import StageContext
from emoprep.stages.split import Split
from emoprep.stages.tokens import Tokens

EMOTIONS = ("excited", "delighted", "happy", "content", "relaxed", "calm",
            "tired", "bored", "depressed", "frustrated", "angry", "tense")


def label_rows(n_songs: int = 4, chunks: int = 3, n_images: int = 5, seed: int = 0,
               first_song: int = 2) -> pd.DataFrame:
    """Label rows as the `labels` stage writes them: DEAM chunks (audio) and FoodPics images."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(first_song, first_song + n_songs):
        for k in range(chunks):
            v, a = rng.uniform(-1, 1, 2)
            rows.append({"sample_id": f"deam:{s}:{k}", "source_id": f"deam:{s}", "modality": 1,
                         "valence": v, "arousal": a, "valence_raw": 5 + 4 * v, "arousal_raw": 5 + 4 * a,
                         "emotion": EMOTIONS[rng.integers(12)], "start_s": 15.0 + 5 * k, "end_s": 20.0 + 5 * k})
    for i in range(1, n_images + 1):
        v, a = rng.uniform(-1, 1, 2)
        rows.append({"sample_id": f"foodpics:{i:04d}", "source_id": f"foodpics:{i:04d}", "modality": 0,
                     "valence": v, "arousal": a, "valence_raw": 50 + 50 * v, "arousal_raw": 50 + 50 * a,
                     "emotion": EMOTIONS[rng.integers(12)], "start_s": None, "end_s": None})
    return pd.DataFrame(rows)


def write_pngs(out_root: Path, labels: pd.DataFrame, size: int = 224, seed: int = 1) -> dict[str, pd.DataFrame]:
    """Gray spectrogram PNGs for audio rows, RGB PNGs for image rows; the two source manifests."""
    rng = np.random.default_rng(seed)
    spec, imgs = [], []
    for row in labels.sort_values("sample_id").itertuples():
        safe = row.sample_id.replace(":", "_")
        if row.modality == 1:
            rel = f"spectrogram/fp0/png/{safe}.png"
            arr = rng.integers(0, 256, (size, size), dtype=np.uint8)
            spec.append({"sample_id": row.sample_id, "source_id": row.source_id, "modality": 1, "path": rel})
        else:
            rel = f"images/fp0/png/{safe}.png"
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            imgs.append({"sample_id": row.sample_id, "source_id": row.source_id, "modality": 0, "path": rel})
        (out_root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(out_root / rel)
    return {"spectrogram": pd.DataFrame(spec), "images": pd.DataFrame(imgs)}


def split_rows(labels: pd.DataFrame, out_root: Path, **params: Any) -> pd.DataFrame:
    ctx = StageContext(stage="split", params=Split.Params(**params), out_root=out_root,
                       out_dir=out_root / "split" / "fp0", manifests={"labels": labels})
    return pd.DataFrame(Split().run(ctx).rows)


def tokens_ctx(out_root: Path, manifests: dict[str, pd.DataFrame], out_dir: Path | None = None,
               **params: Any) -> StageContext:
    params.setdefault("tokenizer", "vit-tiny-test")
    params.setdefault("num_workers", 0)
    p = Tokens.Params(**params)
    stage = Tokens()
    out_dir = out_dir or out_root / stage.output_subdir(p) / "fp0"
    return StageContext(stage="tokens", params=p, out_root=out_root, out_dir=out_dir,
                        manifests=manifests, device="cpu")


def run_tokens(ctx: StageContext, publish: bool = True) -> tuple[pd.DataFrame, list]:
    """What the runner does: plan, process every item, finalize, publish the manifests."""
    stage = Tokens()
    rows, rejects = [], []
    for item in stage.plan(ctx):
        out = stage.process(item, ctx.item_context())
        rows += out.rows
        rejects += out.rejects
    df = pd.DataFrame(rows)
    if len(df):
        df = df.sort_values("sample_id").reset_index(drop=True)
    df, rejects = stage.finalize(ctx, df, rejects)
    if publish:
        man = ctx.out_root / "manifests"
        man.mkdir(parents=True, exist_ok=True)
        df.to_parquet(man / "tokens.parquet", index=False)
        if "split" in ctx._manifests:
            ctx.input_manifest("split").to_parquet(man / "split.parquet", index=False)
        pd.DataFrame([dataclasses.asdict(r) | {"stage": "tokens"} for r in rejects],
                     columns=["sample_id", "reason", "message", "stage"]).to_parquet(man / "rejects.parquet", index=False)
    return df, rejects


def build_store(out_root: Path, n_songs: int = 4, chunks: int = 3, n_images: int = 5,
                **params: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A complete small run: labels → split → PNGs → tokens (tiny ViT). Returns (index, split)."""
    labels = label_rows(n_songs, chunks, n_images)
    split = split_rows(labels, out_root)
    sources = write_pngs(out_root, labels)
    params.setdefault("shard_size", 5)
    ctx = tokens_ctx(out_root, {**sources, "split": split}, **params)
    index, _ = run_tokens(ctx)
    return index, split
