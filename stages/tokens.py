"""The `tokens` stage: ViT tokens of every labelled image and spectrogram (SPEC §4 tokenize).

One work item is one shard of `shard_size` samples: the labelled inputs' sample ids in
natural order, cut every `shard_size`, so the sharding does not depend on the split. Within
an item the PNGs are decoded and normalised by DataLoader workers while the model — built
once per process and cached — runs batches in this process. The runner drives the stage
in-process (`parallel = False`): one model, all cores for its matrix products.

The expensive part is content-addressed. A shard's CLS [n, D] and patch [n, P, D] arrays
depend only on the tokenizer setup (architecture, weight checksum, compute device/dtype,
stored dtype, library versions) and on its input images (sample ids + PNG SHA-256, in shard
order); they are stored once under `tokens/<tokenizer>/objects/<key>/` and the fingerprint
folder's `cls-00000.npy` / `patches-00000.npy` are hard links to them (copies where the
filesystem refuses links). The split and the labels still enter the stage fingerprint —
the index carries their columns and must be rebuilt — but a new split seed or label
normalisation only re-hashes the PNGs and re-links: the model is not run and the shard
bytes are the same. `--force` rebuilds the folder but re-uses the objects; delete
`tokens/<tokenizer>/objects/` to recompute them.

Accounting: every split-manifest row ends as exactly one token row or one `tokens` reject
(`no-image` when no image stage produced it; decode / model failures otherwise); image rows
without a split row are rejected `unlabelled`.

Batch size cannot change the stored values: on CPU in float32 every sample's result is
computed independently of its batch neighbours (tests/test_tokens.py checks batch sizes
1, 7 and 16 give byte-identical shards). Under CUDA autocast the kernels may differ with
the batch shape; the recorded compute dtype says so, and the bound is then the float16/
bfloat16 rounding of the activations.
"""
from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from emoprep.errors import ConfigError
from emoprep.filehash import hash_file
from emoprep.fingerprint import library_version
from emoprep.manifests import token_store as ts
from emoprep.stage import Outcome, Reject, Stage, WorkItem, register, runtime
from emoprep.store import natural_key
from emoprep.stages import vit

LABEL_COLUMNS = ("source_id", "modality", "start_s", "end_s", "valence", "arousal",
                 "valence_raw", "arousal_raw", "emotion", "split")
UNMATCHED_KEY = "unmatched"  # the work item that carries the rejects found while planning
# Bump when the arrays computed for the same setup and images change (preprocessing, the
# forward pass, the cast): it is part of every shard object's key.
OBJECT_CODE = "1"
# PNG "digests" of inputs that cannot be read: they still key the object (its record holds
# the reject), and a file that appears later changes the key.
MISSING, UNREADABLE = "missing", "unreadable"


@register
class Tokens(Stage):
    name = "tokens"
    version = "2"
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
        hf_model_id: str = vit.HF_MODEL_ID  # HF cache id of the weights (why this one: stages/vit.py)
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
            vit.warn_random_init(p.tokenizer, p.seed, p.hf_model_id)
        identity = vit.weight_identity(source, p.seed, getattr(ctx, "hasher", None))
        compute = vit.resolve_compute(ctx.device, p.autocast)
        return {"weights": identity, "device": compute.device, "compute_dtype": compute.dtype_name}

    # ---- plan -----------------------------------------------------------------------
    def plan(self, ctx: Any) -> list[WorkItem]:
        p = check_params(ctx.params)
        ts.sweep_object_temps(objects_dir(ctx.out_root, p))  # the runner holds the output lock
        images = _source_rows(ctx, p.sources)
        labels = ctx.input_manifest("split").drop_duplicates("sample_id").set_index("sample_id")
        samples, rejects = match_labels(images, labels)
        rejects += without_image(labels.index, images, p.sources)
        identity = vit.weight_identity(vit.locate_weights(p.tokenizer, p.weights, p.hf_model_id), p.seed,
                                       getattr(ctx, "hasher", None))
        config = object_config(p, ctx.device, identity)
        items = [WorkItem(key=f"shard-{k:05d}", payload={"shard": k, "samples": chunk, "config": config,
                                                         "weights": identity})
                 for k, chunk in enumerate(_chunks(samples, p.shard_size))]
        if rejects:
            items.append(WorkItem(key=UNMATCHED_KEY,
                                  payload={"rejects": [[r.sample_id, r.reason, r.message] for r in rejects]}))
        return items

    # ---- process --------------------------------------------------------------------
    def process(self, item: WorkItem, ctx: Any) -> Outcome:
        """Hash the shard's PNGs; re-use the object with that key or compute it; link it in."""
        if item.key == UNMATCHED_KEY:
            return Outcome(rejects=[Reject(*r) for r in item.payload["rejects"]])
        p = check_params(ctx.params)
        samples, shard, config = item.payload["samples"], item.payload["shard"], item.payload["config"]
        digests = [png_digest(ctx.abs(s["image_path"])) for s in samples]
        key = ts.object_key(config, [(s["sample_id"], d) for s, d in zip(samples, digests)])
        objects = objects_dir(ctx.out_root, p)
        meta = ts.read_object(objects, key)
        if meta is None:
            meta = compute_object(objects, key, samples, digests, ctx, p, config)
        rows: list[dict[str, Any]] = []
        if meta["kept"]:
            written = ts.link_shard(objects, meta, ctx.out_dir, shard)
            rows = _rows(samples, meta["kept"], shard, written, ctx, p, item.payload["weights"])
        return Outcome(rows=rows, rejects=failures_as_rejects(samples, meta["failed"]))

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


def objects_dir(out_root: Path, p: Any) -> Path:
    """The shard-object store shared by every fingerprint folder of this tokenizer."""
    return Path(out_root) / Tokens().output_subdir(p) / ts.OBJECTS_DIR


def object_config(p: Any, device: str, identity: dict[str, Any]) -> dict[str, Any]:
    """Everything besides the images that decides a shard's array bytes. Not the labels,
    the split, the shard number, the batch size or the worker count."""
    compute = vit.resolve_compute(device, p.autocast)
    random_init = identity["sha256"] == vit.RANDOM_INIT
    return {"tokenizer": p.tokenizer, "arch": dict(sorted(vit.ARCHS[p.tokenizer].items())),
            "layout": {k: list(v) for k, v in vit.token_layout(p.tokenizer).items()},
            "weights": identity["sha256"], "init_seed": int(identity["seed"]) if random_init else None,
            "device": compute.device, "compute_dtype": compute.dtype_name, "dtype": p.dtype,
            "code": OBJECT_CODE, "libraries": {d: library_version(d) for d in sorted(Tokens.libraries)}}


def png_digest(path: Path) -> str:
    """SHA-256 of an input PNG's bytes (`missing` / `unreadable` when it cannot be read)."""
    try:
        return hash_file(path)
    except FileNotFoundError:
        return MISSING
    except OSError:
        return UNREADABLE


def compute_object(objects: Path, key: str, samples: list[dict[str, Any]], digests: list[str],
                   ctx: Any, p: Any, config: dict[str, Any]) -> dict[str, Any]:
    """Run the model on one shard and commit the result as the object `key`."""
    vit.set_threads(p.threads)
    model = vit.get_vit(p.tokenizer, p.weights, p.hf_model_id, p.seed, ctx.device, p.autocast)
    if (model.identity["sha256"], model.compute.dtype_name) != (config["weights"], config["compute_dtype"]):
        raise RuntimeError(f"the weights or compute dtype changed since this run was planned "
                           f"({config['weights'][:12]} {config['compute_dtype']} → "
                           f"{model.identity['sha256'][:12]} {model.compute.dtype_name}); re-run")
    arrays, kept, failed = encode_shard(samples, digests, ctx, model, p)
    record = {"config": config, "inputs": [[s["sample_id"], d] for s, d in zip(samples, digests)],
              "kept": kept, "failed": failed}
    return ts.write_object(objects, key, arrays if kept else {}, record)


def failures_as_rejects(samples: list[dict[str, Any]], failed: list[list[Any]]) -> list[Reject]:
    """An object's per-sample failures as rejects naming the current input file (objects
    store no paths: the same PNG bytes may sit in another upstream folder next time)."""
    return [Reject(samples[int(i)]["sample_id"], str(reason), f"{samples[int(i)]['image_path']}: {detail}")
            for i, reason, detail in failed]


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


def without_image(labelled: Any, images: pd.DataFrame, sources: Any) -> list[Reject]:
    """`no-image` rejects for split-manifest ids that no image stage produced, so every
    labelled id ends as a token row or a tokens reject."""
    have = set(images["sample_id"].astype(str))
    where = ", ".join(sources)
    return [Reject(sid, "no-image", f"{sid}: in the split manifest but no image in stage(s) {where} "
                                    "(rejected or dropped there; see that stage's rejects)")
            for sid in sorted({str(s) for s in labelled} - have, key=natural_key)]


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

def decode_image(path: Path, size: int) -> tuple[np.ndarray | None, tuple[str, str] | None, str]:
    """A 224-px PNG → (uint8 [H, W] gray or [H, W, 3] RGB, None, SHA-256 of the bytes decoded),
    or (None, (reason, detail), digest) for a reject. `detail` names no path (the caller
    prefixes the manifest path). The size is checked from the header before pixels are
    decoded, so a huge file is refused without being decompressed."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None, ("missing-file", "file not found"), MISSING
    except OSError as exc:
        return None, ("unreadable-image", f"cannot read ({exc.strerror or type(exc).__name__})"), UNREADABLE
    sha = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size != (size, size):
                return None, ("bad-image-size", f"{im.size[0]}x{im.size[1]} px, expected {size}x{size}"), sha
            if im.mode not in ("L", "RGB"):
                return None, ("bad-image-mode", f"mode {im.mode}, expected L (spectrogram) or RGB (image)"), sha
            return np.asarray(im), None, sha
    except UnidentifiedImageError:
        return None, ("unreadable-image", "cannot decode (not an image format Pillow knows)"), sha
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return None, ("unreadable-image", f"cannot decode ({exc})"), sha


class PngShard:
    """Map-style dataset over one shard's PNGs (a plain class: DataLoader needs only these two)."""

    def __init__(self, paths: list[Path], size: int):
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, tuple[str, str] | None, str]:
        arr, err, sha = decode_image(self.paths[i], self.size)
        return i, arr, err, sha


def collate_pixels(batch: list) -> tuple[list[int], Any, list[tuple[int, str, str]], list[tuple[int, str]]]:
    """Normalise the decoded images of a batch into one float32 [b,3,H,W] tensor (in the worker).
    Returns (kept positions, pixels, [(position, reason, detail)], [(position, sha256)])."""
    import torch

    ok = [(i, a) for i, a, e, _s in batch if e is None]
    errors = [(i, *e) for i, _a, e, _s in batch if e is not None]
    pixels = None
    if ok:
        pixels = torch.from_numpy(np.stack([vit.pixel_values(a[None])[0] for _i, a in ok]))
    return [i for i, _a in ok], pixels, errors, [(i, s) for i, _a, _e, s in batch]


def encode_shard(samples: list[dict[str, Any]], digests: list[str], ctx: Any, model: vit.LoadedViT,
                 p: Any) -> tuple[dict[str, np.ndarray], list[int], list[list[Any]]]:
    """Decode + forward one shard. Returns the arrays of the kept samples (in sample order),
    the kept sample positions, and the failures [position, reason, detail] by position.

    Every PNG must still have the bytes hashed into the object key (`digests`): a file
    that changed in between fails the item rather than storing tokens under a wrong key."""
    from torch.utils.data import DataLoader

    layout = vit.token_layout(p.tokenizer)
    n = len(samples)
    cls = np.empty((n, *layout["cls"]), dtype=p.dtype)
    patches = np.empty((n, *layout["patches"]), dtype=p.dtype)
    good = np.zeros(n, dtype=bool)
    failed: list[list[Any]] = []
    dataset = PngShard([ctx.abs(s["image_path"]) for s in samples], vit.image_size(p.tokenizer))
    loader = DataLoader(dataset, batch_size=int(p.batch_size), shuffle=False,
                        num_workers=max(0, int(p.num_workers)), collate_fn=collate_pixels,
                        pin_memory=model.compute.device == "cuda")
    for idx, pixels, errors, shas in loader:
        for i, sha in shas:
            if sha != digests[i]:
                raise RuntimeError(f"{samples[i]['image_path']}: changed while being tokenized "
                                   f"(hashed {digests[i][:12]}, decoded {sha[:12]}); re-run")
        failed += [[i, reason, detail] for i, reason, detail in errors]
        if not idx:
            continue
        hidden = vit.forward_tokens(model.model, pixels, model.compute).astype(p.dtype)
        finite = np.isfinite(hidden).all(axis=(1, 2))
        for j, i in enumerate(idx):
            if not finite[j]:
                failed.append([i, "non-finite-tokens", f"model output has NaN/inf in {p.dtype}"])
                continue
            cls[i], patches[i], good[i] = hidden[j, 0], hidden[j, 1:], True
    ok = np.flatnonzero(good).tolist()
    if len(ok) < n:
        cls, patches = cls[good], patches[good]
    return {"cls": cls, "patches": patches}, ok, sorted(failed, key=lambda f: f[0])


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
