"""The `tokens` stage: ViT tokens of every labelled image and spectrogram (SPEC §4 tokenize).

One work item is one shard of `shard_size` samples (sample ids sorted, so the sharding is
deterministic). Within an item the PNGs are decoded and normalised by DataLoader workers
while the model — built once per process and cached — runs batches in this process; the
shard's CLS [n, D] and patch [n, P, D] arrays are then written atomically as NPY (float16 by
default). The runner drives the stage in-process (`parallel = False`): one model, all cores
for its matrix products.

Batch size cannot change the stored values: on CPU in float32 every sample's result is
computed independently of its batch neighbours (tests/test_tokens.py checks batch sizes
1, 7 and 16 give byte-identical shards). Under CUDA autocast the kernels may differ with
the batch shape; the recorded compute dtype says so, and the bound is then the float16/
bfloat16 rounding of the activations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from emoprep.errors import ConfigError
from emoprep.manifests import token_store as ts
from emoprep.stage import Outcome, Reject, Stage, WorkItem, register, runtime
from emoprep.store import natural_key
from emoprep.stages import vit

LABEL_COLUMNS = ("source_id", "modality", "start_s", "end_s", "valence", "arousal",
                 "valence_raw", "arousal_raw", "emotion", "split")
UNMATCHED_KEY = "unmatched"  # the work item that carries the rejects found while planning


@register
class Tokens(Stage):
    name = "tokens"
    version = "1"
    libraries = ("torch", "transformers", "numpy", "pillow", "safetensors")
    default_inputs = ("spectrogram", "images", "split")
    description = "ViT tokens (CLS + 196 patches) of 224-px images and spectrograms, sharded NPY"
    parallel = False
    uses_device = True

    @dataclass(frozen=True)
    class Params:
        tokenizer: str = "vit-base-patch16-224"
        sources: tuple[str, ...] = ("spectrogram", "images")  # image-producing stages
        shard_size: int = 256
        dtype: str = "float16"            # stored dtype: float16 | float32
        seed: int = 0                     # random-init seed (used only without weights)
        hf_model_id: str = vit.HF_MODEL_ID
        autocast: str = "auto"            # auto | none | float16 | bfloat16
        weights: str | None = runtime(None)  # checkpoint folder; its checksum is fingerprinted
        batch_size: int = runtime(16)
        num_workers: int = runtime(1)     # DataLoader decode workers
        threads: int = runtime(0)         # torch intra-op threads; 0 = all cores

    def inputs(self, params: Any) -> list[str]:
        return [*params.sources, "split"]

    def output_subdir(self, params: Any) -> str:
        return f"tokens/{params.tokenizer}"

    # ---- fingerprint ----------------------------------------------------------------
    def fingerprint_extra(self, ctx: Any) -> dict[str, Any]:
        """Weight identity (name + safetensors checksum or random-init) and compute dtype/device."""
        p = check_params(ctx.params)
        source = vit.locate_weights(p.tokenizer, p.weights, p.hf_model_id)
        if not source.pretrained:
            vit.warn_random_init(p.tokenizer, p.seed)
        identity = vit.weight_identity(source, p.seed, getattr(ctx, "hasher", None))
        compute = vit.resolve_compute(ctx.device, p.autocast)
        return {"weights": identity, "device": compute.device, "compute_dtype": compute.dtype_name}

    # ---- plan -----------------------------------------------------------------------
    def plan(self, ctx: Any) -> list[WorkItem]:
        p = check_params(ctx.params)
        images = _source_rows(ctx, p.sources)
        labels = ctx.input_manifest("split").drop_duplicates("sample_id").set_index("sample_id")
        samples, rejects = match_labels(images, labels)
        n_without = len(set(labels.index) - set(images["sample_id"]))
        if n_without:
            ctx.info(f"tokens: {n_without} labelled ids have no image in {', '.join(p.sources)}",
                     count=n_without)
        items = [WorkItem(key=f"shard-{k:05d}", payload={"shard": k, "samples": chunk})
                 for k, chunk in enumerate(_chunks(samples, p.shard_size))]
        if rejects:
            items.append(WorkItem(key=UNMATCHED_KEY,
                                  payload={"rejects": [[r.sample_id, r.reason, r.message] for r in rejects]}))
        return items

    # ---- process --------------------------------------------------------------------
    def process(self, item: WorkItem, ctx: Any) -> Outcome:
        if item.key == UNMATCHED_KEY:
            return Outcome(rejects=[Reject(*r) for r in item.payload["rejects"]])
        p = check_params(ctx.params)
        vit.set_threads(p.threads)
        model = vit.get_vit(p.tokenizer, p.weights, p.hf_model_id, p.seed, ctx.device, p.autocast)
        samples = item.payload["samples"]
        arrays, ok, rejects = encode_shard(samples, ctx, model, p)
        rows: list[dict[str, Any]] = []
        if ok:
            written = ts.write_shard(ctx.out_dir, item.payload["shard"], arrays)
            rows = _rows(samples, ok, item.payload["shard"], written, ctx, p, model.identity)
        return Outcome(rows=rows, rejects=rejects)

    # ---- finalize -------------------------------------------------------------------
    def finalize(self, ctx: Any, rows: pd.DataFrame, rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
        """Make the store folder self-describing: `index.parquet` + `store.json`."""
        p = check_params(ctx.params)
        if len(rows):  # the manifest's order: natural sort of sample_id, as the runner writes it
            order = sorted(range(len(rows)), key=lambda i: natural_key(str(rows["sample_id"].iat[i])))
            rows = rows.iloc[order].reset_index(drop=True)
        source = vit.locate_weights(p.tokenizer, p.weights, p.hf_model_id)
        identity = vit.weight_identity(source, p.seed, getattr(ctx, "hasher", None))
        meta = ts.store_meta(rows, p.tokenizer, p.dtype, vit.token_layout(p.tokenizer), identity)
        ts.write_store_files(ctx.out_dir, rows, meta)
        return rows, rejects


# ---- helpers (module level so tests and the bench can use them) ----------------------

def check_params(p: Any) -> Any:
    """Refuse a configuration that cannot work before any model is built (exit 2)."""
    vit.check_tokenizer(p.tokenizer)
    if p.dtype not in ts.STORE_DTYPES:
        raise ConfigError(f"tokens.dtype {p.dtype!r}: expected one of {', '.join(ts.STORE_DTYPES)}")
    for field in ("shard_size", "batch_size"):
        if int(getattr(p, field)) < 1:
            raise ConfigError(f"tokens.{field} must be ≥ 1, got {getattr(p, field)}")
    if not p.sources:
        raise ConfigError("tokens.sources is empty: name the stages that produce images")
    return p


def _source_rows(ctx: Any, sources: Any) -> pd.DataFrame:
    frames = []
    for src in sources:
        df = ctx.input_manifest(src)
        missing = {"sample_id", "path"} - set(df.columns)
        if missing:
            raise ConfigError(f"tokens: input stage {src!r} has no {sorted(missing)} column; "
                              "it must produce images (path to a PNG)")
        cols = ["sample_id", "path"] + (["modality"] if "modality" in df.columns else [])
        frames.append(df[cols].assign(stage=src))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["sample_id", "path", "stage"])


def match_labels(images: pd.DataFrame, labels: pd.DataFrame) -> tuple[list[dict[str, Any]], list[Reject]]:
    """Join image rows with their label/split rows; sorted by sample_id.

    Rejects: `duplicate-id` (an id produced by two sources or twice), `unlabelled` (no split
    row), `modality-mismatch` (the source says image, the label says audio), `bad-path`
    (a path that leaves the output root)."""
    samples, rejects = [], []
    images = images.iloc[sorted(range(len(images)), key=lambda i: natural_key(str(images["sample_id"].iat[i])))]
    cols = [c for c in LABEL_COLUMNS if c in labels.columns]
    records = labels[cols].to_dict("index")
    seen: dict[str, str] = {}
    for row in images.itertuples(index=False):
        sid, path, stage = str(row.sample_id), str(row.path), str(row.stage)
        if sid in seen:
            rejects.append(Reject(sid, "duplicate-id", f"{path} (stage {stage}): id already produced by stage {seen[sid]}"))
            continue
        seen[sid] = stage
        lab = records.get(sid)
        src_mod = _plain(getattr(row, "modality", None))
        if not _safe_rel(path):
            rejects.append(Reject(sid, "bad-path", f"{path} (stage {stage}): not a path inside the output root"))
        elif lab is None:
            rejects.append(Reject(sid, "unlabelled", f"{path} (stage {stage}): no row in the split manifest, so no label"))
        elif src_mod is not None and int(src_mod) != int(lab["modality"]):
            rejects.append(Reject(sid, "modality-mismatch", f"{path} (stage {stage}): modality {int(src_mod)} "
                                  f"but the label row says {int(lab['modality'])}"))
        else:
            samples.append({"sample_id": sid, "image_path": path,
                            **{c: _plain(lab.get(c)) for c in LABEL_COLUMNS}})
    return samples, rejects


def _safe_rel(path: str) -> bool:
    pp = PurePosixPath(path)
    return bool(path) and not pp.is_absolute() and ".." not in pp.parts


def _plain(v: Any) -> Any:
    """numpy / pandas scalars → plain Python; NaN/NA → None (payloads and rows hold plain values)."""
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _chunks(seq: list, size: int) -> list[list]:
    return [seq[i:i + size] for i in range(0, len(seq), size)]


# ---- decoding (runs in DataLoader workers) --------------------------------------------

def decode_image(path: Path, rel: str, size: int) -> tuple[np.ndarray | None, tuple[str, str] | None]:
    """A 224-px PNG → uint8 [H, W] (gray) or [H, W, 3] (RGB), or a (reason, message) reject.

    The size is checked from the header before pixels are decoded, so a huge file is
    refused without being decompressed."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.size != (size, size):
                return None, ("bad-image-size", f"{rel}: {im.size[0]}x{im.size[1]} px, expected {size}x{size}")
            if im.mode not in ("L", "RGB"):
                return None, ("bad-image-mode", f"{rel}: mode {im.mode}, expected L (spectrogram) or RGB (image)")
            return np.asarray(im), None
    except FileNotFoundError:
        return None, ("missing-file", f"{rel}: file not found")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return None, ("unreadable-image", f"{rel}: cannot decode ({exc})")


class PngShard:
    """Map-style dataset over one shard's PNGs (a plain class: DataLoader needs only these two)."""

    def __init__(self, paths: list[Path], rels: list[str], size: int):
        self.paths, self.rels, self.size = paths, rels, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, tuple[str, str] | None]:
        arr, err = decode_image(self.paths[i], self.rels[i], self.size)
        return i, arr, err


def collate_pixels(batch: list) -> tuple[list[int], Any, list[tuple[int, str, str]]]:
    """Normalise the decoded images of a batch into one float32 [b,3,H,W] tensor (in the worker)."""
    import torch

    ok = [(i, a) for i, a, e in batch if e is None]
    errors = [(i, *e) for i, _a, e in batch if e is not None]
    pixels = None
    if ok:
        pixels = torch.from_numpy(np.stack([vit.pixel_values(a[None])[0] for _i, a in ok]))
    return [i for i, _a in ok], pixels, errors


def encode_shard(samples: list[dict[str, Any]], ctx: Any, model: vit.LoadedViT,
                 p: Any) -> tuple[dict[str, np.ndarray], list[int], list[Reject]]:
    """Decode + forward one shard. Returns the arrays of the kept samples (in sample order),
    the kept sample positions, and the rejects."""
    from torch.utils.data import DataLoader

    layout = vit.token_layout(p.tokenizer)
    n = len(samples)
    cls = np.empty((n, *layout["cls"]), dtype=p.dtype)
    patches = np.empty((n, *layout["patches"]), dtype=p.dtype)
    good = np.zeros(n, dtype=bool)
    rejects: list[Reject] = []
    dataset = PngShard([ctx.abs(s["image_path"]) for s in samples], [s["image_path"] for s in samples],
                       vit.image_size(p.tokenizer))
    loader = DataLoader(dataset, batch_size=int(p.batch_size), shuffle=False,
                        num_workers=max(0, int(p.num_workers)), collate_fn=collate_pixels,
                        pin_memory=model.compute.device == "cuda")
    for idx, pixels, errors in loader:
        rejects += [Reject(samples[i]["sample_id"], reason, msg) for i, reason, msg in errors]
        if not idx:
            continue
        hidden = vit.forward_tokens(model.model, pixels, model.compute).astype(p.dtype)
        finite = np.isfinite(hidden).all(axis=(1, 2))
        for j, i in enumerate(idx):
            if not finite[j]:
                rejects.append(Reject(samples[i]["sample_id"], "non-finite-tokens",
                                      f"{samples[i]['image_path']}: model output has NaN/inf in {p.dtype}"))
                continue
            cls[i], patches[i], good[i] = hidden[j, 0], hidden[j, 1:], True
    ok = np.flatnonzero(good).tolist()
    if len(ok) < n:
        cls, patches = cls[good], patches[good]
    return {"cls": cls, "patches": patches}, ok, rejects


def _rows(samples: list[dict[str, Any]], ok: list[int], shard: int,
          written: dict[str, tuple[Path, str]], ctx: Any, p: Any, identity: dict[str, Any]) -> list[dict[str, Any]]:
    shape = ts.sequence_shape(vit.token_layout(p.tokenizer))
    files = {f"{name}_path": ctx.rel(path) for name, (path, _sha) in written.items()}
    shas = {f"{name}_sha256": sha for name, (_path, sha) in written.items()}
    rows = []
    for row, i in enumerate(ok):
        s = samples[i]
        rows.append({"sample_id": s["sample_id"], "tokenizer": p.tokenizer, "shard": int(shard),
                     "row": row, "shape": list(shape), "dtype": p.dtype, "weights": identity["sha256"],
                     **{c: s[c] for c in LABEL_COLUMNS}, "image_path": s["image_path"],
                     "path": files["patches_path"], **files, **shas})
    return rows
