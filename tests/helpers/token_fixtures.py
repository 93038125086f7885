"""Synthetic inputs for the split/tokens/reader/validate tests, and a minimal stand-in for
the runner (plan → process → finalize → manifests/*.parquet), so those stages are tested
before the engine exists. Everything is generated; nothing binary is checked in."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from emoprep.manifests.reasons import UNDECODABLE_IMAGE
from emoprep.manifests.validate_report import FAIL, Check, ValidationReport
from emoprep.pipeline.assemble import finish_manifest
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.stage import Reject
from emoprep.stages.common.naming import safe_name
from emoprep.stages.split import Split, SplitParams
from emoprep.stages.tokens import vit
from emoprep.stages.tokens.params import TokensParams
from emoprep.stages.tokens.stage import Tokens

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
        safe = safe_name(str(row.sample_id))
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
    ctx: StageContext[SplitParams] = StageContext(stage="split", params=Split.Params(**params),
                                                  out_root=out_root,
                       out_dir=out_root / "split" / "fp0", manifests={"labels": labels})
    return pd.DataFrame(Split().run(ctx).rows)


def tokens_ctx(out_root: Path, manifests: dict[str, pd.DataFrame], out_dir: Path | None = None,
               **params: Any) -> StageContext[TokensParams]:
    params.setdefault("tokenizer", "vit-tiny-test")
    params.setdefault("num_workers", 0)
    p = Tokens.Params(**params)
    stage = Tokens()
    out_dir = out_dir or out_root / stage.output_subdir(p) / "fp0"
    return StageContext(stage="tokens", params=p, out_root=out_root, out_dir=out_dir,
                        manifests=manifests, device="cpu")


def run_tokens(ctx: StageContext[TokensParams], publish: bool = True) -> tuple[pd.DataFrame, list[Reject]]:
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
    df, rejects = finish_manifest(stage, ctx, df, rejects)
    if publish:
        man = ctx.out_root / "manifests"
        man.mkdir(parents=True, exist_ok=True)
        df.to_parquet(man / "tokens.parquet", index=False)
        if "split" in ctx._manifests:
            ctx.input_manifest("split").to_parquet(man / "split.parquet", index=False)
        pd.DataFrame([dataclasses.asdict(r) | {"stage": "tokens"} for r in rejects],
                     columns=["sample_id", "reason", "message", "stage"]
                     ).to_parquet(man / "rejects.parquet", index=False)
    return df, rejects


def build_store(out_root: Path, n_songs: int = 4, chunks: int = 3, n_images: int = 5, first_song: int = 2,
                **params: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A complete small run: labels → split → PNGs → tokens (tiny ViT). Returns (index, split)."""
    labels = label_rows(n_songs, chunks, n_images, first_song=first_song)
    split = split_rows(labels, out_root)
    sources = write_pngs(out_root, labels)
    params.setdefault("shard_size", 5)
    ctx = tokens_ctx(out_root, {**sources, "split": split}, **params)
    index, _ = run_tokens(ctx)
    return index, split


# ---- stand-ins for the upstream stages, to drive `tokens` through the real runner ----------

def fake_upstream_stages(n_songs: int = 11, chunks: int = 2, n_images: int = 4,
                         no_png: tuple[str, ...] = ()) -> dict[str, Any]:
    """A `labels` stage giving `label_rows(...)` and a `fake-pngs` stage writing one PNG per
    labelled id (gray for audio, RGB for images): the inputs `split` and `tokens` need.
    `fake-pngs` rejects the ids in `no_png` (labelled ids that never get an image)."""
    from emoprep.pipeline.atomic import atomic_path
    from emoprep.pipeline.stage import NoParams, Outcome, Stage, WorkItem

    class FakeLabels(Stage[NoParams]):
        name = "labels"

        def run(self, ctx):
            rows = label_rows(n_songs=n_songs, chunks=chunks, n_images=n_images).to_dict("records")
            return Outcome(rows=[{str(k): v for k, v in row.items()} for row in rows])

    class FakePngs(Stage[NoParams]):
        name = "fake-pngs"
        default_inputs = ("labels",)

        def plan(self, ctx):
            return [WorkItem(r.sample_id, {"modality": int(r.modality), "source_id": r.source_id})
                    for r in ctx.input_manifest("labels").itertuples()]

        def process(self, item, ctx):
            if item.key in no_png:
                return Outcome(rejects=[Reject(item.key, UNDECODABLE_IMAGE, f"{item.key}: cannot decode")])
            rng = np.random.default_rng(sum(map(ord, item.key)))
            shape = (224, 224) if item.payload["modality"] else (224, 224, 3)
            out = ctx.out_dir / f"{safe_name(item.key)}.png"
            with atomic_path(out) as tmp:
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(tmp, format="PNG")
            return Outcome(rows=[{"sample_id": item.key, **item.payload, "path": ctx.rel(out)}])

    return {"labels": FakeLabels(), "fake-pngs": FakePngs()}


def tiny_recipe(split_seed: int = 0, shard_size: int = 8, no_png: tuple[str, ...] = (), **tokens: Any) -> Any:
    """tokens (tiny ViT) over `fake-pngs`, with the stand-in `labels` and `fake-pngs` in the
    recipe's catalog; split by hash with the seed given (so a new seed moves sources even in
    strata too small for the quota method to cut)."""
    from emoprep.pipeline.recipe import Recipe
    from emoprep.stages.catalog import builtin_catalog

    catalog = builtin_catalog().with_stages(fake_upstream_stages(no_png=no_png).values())
    return Recipe(name="t", targets=["tokens"], catalog=catalog, sections={
        "split": {"seed": split_seed, "method": "hash"},
        "tokens": {"tokenizer": "vit-tiny-test", "sources": ["fake-pngs"], "shard_size": shard_size,
                   "num_workers": 0, **tokens}})


# ---- audio clips for the EnCodec tokenizer (thesis v1-2) ----------------------------------

def clip_label_rows(n_songs: int = 4, n_images: int = 3, seed: int = 0, first_song: int = 2) -> pd.DataFrame:
    """Label rows as `labels` writes them for thesis-v12: whole-song clips `deam:<id>` (audio)
    and FoodPics images."""
    rows = label_rows(n_songs=n_songs, chunks=1, n_images=n_images, seed=seed, first_song=first_song)
    audio = rows["modality"] == 1
    rows.loc[audio, "sample_id"] = rows.loc[audio, "source_id"]
    rows.loc[audio, "start_s"], rows.loc[audio, "end_s"] = 0.0, 46.0
    return rows


def clip_signal(n: int, rate: int, seed: int) -> np.ndarray:
    """A few seconds of 'music': a gliding tone, a second partial, a beat envelope and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    f0 = rng.uniform(110, 440)
    x = 0.3 * np.sin(2 * np.pi * (f0 + rng.uniform(-50, 50) * t) * t) + 0.1 * np.sin(2 * np.pi * 2.5 * f0 * t)
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 4) * t) ** 2
    return (x + 0.02 * rng.standard_normal(n)).astype(np.float32)


def write_clips(out_root: Path, labels: pd.DataFrame, clip_s: float = 0.5, rate: int = 44100,
                seed: int = 3) -> pd.DataFrame:
    """A FLAC (PCM_24, mono, exactly clip_s × rate samples, as the `clips` stage writes them)
    per audio label row; returns the `clips` manifest (sample_id, source_id, modality, path,
    sample_rate)."""
    import soundfile as sf

    rows = []
    for k, r in enumerate(labels[labels["modality"] == 1].sort_values("sample_id").itertuples()):
        rel = f"clips/fp0/audio/{str(r.sample_id).split(':')[1]}.flac"
        (out_root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out_root / rel, clip_signal(round(clip_s * rate), rate, seed + k), rate,
                 format="FLAC", subtype="PCM_24")
        rows.append({"sample_id": r.sample_id, "source_id": r.source_id, "modality": 1, "path": rel,
                     "sample_rate": rate})
    return pd.DataFrame(rows)


V12_TINY: dict[str, Any] = {"tokenizers": {"clips": "encodec-tiny-test", "images": "vit-tiny-test"},
            "sources": ("clips", "images")}


def v12_inputs(out_root: Path, n_songs: int = 4, n_images: int = 3, **kw: Any) -> dict[str, pd.DataFrame]:
    """Labels → split, clip FLACs and image PNGs: the manifests a thesis-v12 tokens stage reads."""
    labels = clip_label_rows(n_songs=n_songs, n_images=n_images)
    split = split_rows(labels, out_root)
    clips = write_clips(out_root, labels, **kw)
    images = write_pngs(out_root, labels[labels["modality"] == 0])["images"]
    return {"clips": clips, "images": images, "split": split}


# ---- small helpers of the tokens, reader and validate tests ---------------------------------

def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resplit(split: pd.DataFrame) -> pd.DataFrame:
    """The same split manifest with two sources moved to the other split (as a new seed would)."""
    out = split.copy()
    moved = out["source_id"].isin(["deam:3", "foodpics:0002"])
    out.loc[moved, "split"] = np.where(out.loc[moved, "split"] == "test", "train", "test")
    return out


def expected_tokens(root: Path, r: Any) -> np.ndarray:
    """What item r must hold, read with plain NumPy as the token_store docstring shows."""
    cls = np.load(root / r.cls_path, mmap_mode="r", allow_pickle=False)
    patches = np.load(root / r.patches_path, mmap_mode="r", allow_pickle=False)
    return np.concatenate([cls[r.row][None], patches[r.row]]).astype(np.float32)


def save_tiny_vit_checkpoint(folder: Path, seed: int, **overrides: Any) -> Path:
    """A `vit-tiny-test` checkpoint folder (safetensors), seeded, with config `overrides`."""
    import torch
    from transformers import ViTModel

    torch.manual_seed(seed)
    cfg = vit.arch_config("vit-tiny-test")
    for k, v in overrides.items():
        setattr(cfg, k, v)
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(folder, safe_serialization=True)
    return folder


# ---- reading and damaging a finished store (validate tests) ----------------------------------

def index_of(root: Path) -> pd.DataFrame:
    return pd.read_parquet(root / "manifests/tokens.parquet")


def save_index(root: Path, df: pd.DataFrame) -> None:
    df.to_parquet(root / "manifests/tokens.parquet", index=False)


def rewrite_array(root: Path, rel: str, arr: np.ndarray) -> None:
    """Replace a shard file and record its new checksum, so only the content is wrong."""
    np.save(root / rel, arr, allow_pickle=False)
    df = index_of(root)
    col = "cls_sha256" if "/cls-" in rel else "patches_sha256"
    df.loc[df[col.replace("sha256", "path")] == rel, col] = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    save_index(root, df)


def check(report: ValidationReport, name: str) -> Check:
    """The one check called `name` (for unique-ids: the token-index one)."""
    return next(c for c in report.checks if c.name == name)


def failed(report: ValidationReport) -> dict[str, list[str]]:
    return {c.name: c.offenders for c in report.checks if c.status == FAIL}
