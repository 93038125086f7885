"""The `tokens` stage: tokens of every labelled input, one store per tokenizer (SPEC §4 tokenize).

Tokenizers (stages/tokenizers.py): `vit-base-patch16-224` (thesis Version 3: images and
spectrograms, CLS + 196 × 768), `vit-patch28-h2048` (Versions 1-2 images: CLS + 64 × 2048)
and `encodec-24khz` (Versions 1-2 audio: 46 s clips → int16 codes 32 × 3450). Each source
stage goes to one tokenizer: `tokenizer` is the default, `tokenizers = {source = name}`
overrides it per source, so one stage instance can write several stores::

    [tokens]                                   # thesis-v12
    sources = ["clips", "images"]
    tokenizers = { clips = "encodec-24khz", images = "vit-patch28-h2048" }

Folders: with one tokenizer the store is the fingerprint folder `tokens/<tokenizer>/<fp>/`
(as always); with several, the folder is `tokens/<a>+<b>/<fp>/` (names sorted) and holds one
store per tokenizer in `<fp>/<tokenizer>/`. Either way the stage manifest — published as
`manifests/tokens.parquet` — indexes every token set with its `tokenizer` column, and each
sample id has exactly one tokenizer (it comes from one source).

One work item is one shard of `shard_size` samples of one tokenizer: that tokenizer's inputs'
sample ids in natural order, cut every `shard_size`, so the sharding does not depend on the
split. Within an item the inputs (PNGs or FLACs) are decoded by DataLoader workers while the
model — built once per process and cached — runs batches in this process. The runner drives
the stage in-process (`parallel = False`): one model, all cores for its matrix products.

The expensive part is content-addressed. A shard's arrays depend only on the tokenizer setup
(architecture, weight checksum, compute device/dtype, stored dtype, library versions) and on
its input files (sample ids + SHA-256 of the bytes, in shard order); they are stored once under
`tokens/<tokenizer>/objects/<key>/` and the store folder's `cls-00000.npy` / `patches-00000.npy`
/ `codes-00000.npy` are hard links to them (copies where the filesystem refuses links). The
split and the labels still enter the stage fingerprint — the index carries their columns and
must be rebuilt — but a new split seed or label normalisation only re-hashes the inputs and
re-links: the model is not run and the shard bytes are the same. `--force` rebuilds the folder
but re-uses the objects; delete `tokens/<tokenizer>/objects/` to recompute them.

Accounting: every split-manifest row ends as exactly one token row or one `tokens` reject
(`no-image` — `no-input` when an audio tokenizer is configured — when no source stage produced
it; decode / model failures otherwise); input rows without a split row are rejected `unlabelled`.

Batch size cannot change the stored values: on CPU in float32 every sample's result is
computed independently of its batch neighbours (tests/test_tokens.py checks ViT batch sizes
1, 7 and 16 give byte-identical shards, tests/test_encodec.py EnCodec batch sizes 1-7; see
stages/encodec.py for what that takes). Under CUDA autocast the kernels may differ with the
batch shape; the recorded compute dtype says so, and the bound is then the float16/bfloat16
rounding of the activations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from emoprep.manifests.token_store import layout as ts
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.filehash import hash_file
from emoprep.pipeline.fingerprint import library_version
from emoprep.pipeline.paths import output_file
from emoprep.pipeline.stage import Outcome, Reject, Stage, WorkItem, runtime
from emoprep.pipeline.values import natural_key
from emoprep.stages.tokens import vit, weights
from emoprep.stages.tokens.families import ARRAY_ORDER, FAMILIES, InputShard, collate_inputs, family_of

LABEL_COLUMNS = ("source_id", "modality", "start_s", "end_s", "valence", "arousal",
                 "valence_raw", "arousal_raw", "emotion", "split")
UNMATCHED_KEY = "unmatched"  # the work item that carries the rejects found while planning
# Bump (in stages/tokenizers.py, per family) when the arrays computed for the same setup and
# inputs change (preprocessing, the forward pass, the cast): it is part of every object's key.
OBJECT_CODE = FAMILIES[0].object_code
# Digests of inputs that cannot be read: they still key the object (its record holds the
# reject), and a file that appears later changes the key.
MISSING, UNREADABLE = "missing", "unreadable"


class Tokens(Stage):
    name = "tokens"
    version = "3"  # 3: inputs linked out of the output root are bad-path rejects
    libraries = tuple(sorted({lib for fam in FAMILIES for lib in fam.libraries}))
    default_inputs = ("spectrogram", "images", "split")
    description = ("Tokens of every labelled input, one sharded-NPY store per tokenizer: ViT (CLS + patches) "
                   "for images and spectrograms, EnCodec codes for 46 s clips")
    parallel = False
    uses_device = True

    @dataclass(frozen=True)
    class Params:
        tokenizer: str = "vit-base-patch16-224"   # for every source not in `tokenizers`
        sources: tuple[str, ...] = ("spectrogram", "images")  # stages producing the inputs
        tokenizers: dict[str, str] = field(default_factory=dict)  # source stage → tokenizer
        shard_size: int = 256
        dtype: str = "float16"            # stored dtype of ViT tokens: float16 | float32 (codes: int16)
        seed: int = 0                     # random-init seed (used only without weights)
        hf_model_id: str = vit.HF_MODEL_ID  # HF cache id of the ViT-base weights (why this one: stages/vit.py)
        autocast: str = "auto"            # auto | none | float16 | bfloat16 (auto: EnCodec stays float32)
        # checkpoint folder (one tokenizer, or matched by its config's model_type) or
        # {tokenizer = folder}; its checksum is fingerprinted
        weights: str | dict[str, str] | None = runtime(None)
        batch_size: int = runtime(16)     # images per ViT forward pass
        audio_batch_size: int = runtime(0)  # clips per EnCodec pass; 0 = 1 on CPU, 8 on CUDA
        num_workers: int = runtime(1)     # DataLoader decode workers
        threads: int = runtime(0)         # torch intra-op threads; 0 = all cores

    def inputs(self, params: Any) -> list[str]:
        return [*params.sources, "split"]

    def output_subdir(self, params: Any) -> str:
        return "tokens/" + "+".join(tokenizer_names(params))

    # ---- fingerprint ----------------------------------------------------------------
    def fingerprint_extra(self, ctx: Any) -> dict[str, Any]:
        """Per tokenizer: weight identity (name + safetensors checksum or random-init) and
        compute dtype/device (one tokenizer: those three keys at the top level)."""
        p = check_params(ctx.params)
        setups = {}
        for tok in tokenizer_names(p):
            fam = family_of(tok)
            source = fam.locate(tok, weights_dir_for(p, tok), p)
            if not source.pretrained:
                fam.warn(tok, p)
            compute = fam.compute(ctx.device, p.autocast)
            setups[tok] = {"weights": identity_of(p, tok, ctx), "device": compute.device,
                           "compute_dtype": compute.dtype_name}
        return next(iter(setups.values())) if len(setups) == 1 else {"tokenizers": setups}

    # ---- plan -----------------------------------------------------------------------
    def plan(self, ctx: Any) -> list[WorkItem]:
        p = check_params(ctx.params)
        names, assign = tokenizer_names(p), assignment(p)
        for tok in names:  # the runner holds the output lock
            ts.sweep_object_temps(objects_dir(ctx.out_root, p, tok))
        inputs = _source_rows(ctx, p.sources)
        labels = ctx.input_manifest("split").drop_duplicates("sample_id").set_index("sample_id")
        samples, rejects = match_labels(inputs, labels)
        samples, escaping = inside_output_root(samples, ctx.out_root)
        rejects += escaping
        audio = any(family_of(t).input_column == "audio_path" for t in names)
        rejects += without_image(labels.index, inputs, p.sources, "no-input" if audio else "no-image")
        items = []
        for tok in names:
            identity = identity_of(p, tok, ctx)
            config = object_config(p, ctx.device, identity, tok)
            mine = [_payload_sample(s) for s in samples if assign[s["stage"]] == tok]
            for k, chunk in enumerate(_chunks(mine, p.shard_size)):
                items.append(WorkItem(key=item_key(p, tok, k), payload={
                    "tokenizer": tok, "shard": k, "samples": chunk, "config": config, "weights": identity}))
        if rejects:
            items.append(WorkItem(key=UNMATCHED_KEY,
                                  payload={"rejects": [[r.sample_id, r.reason, r.message] for r in rejects]}))
        return items

    # ---- process --------------------------------------------------------------------
    def process(self, item: WorkItem, ctx: Any) -> Outcome:
        """Hash the shard's inputs; re-use the object with that key or compute it; link it in."""
        if item.key == UNMATCHED_KEY:
            return Outcome(rejects=[Reject(*r) for r in item.payload["rejects"]])
        p = check_params(ctx.params)
        tok = item.payload["tokenizer"]
        samples, shard, config = item.payload["samples"], item.payload["shard"], item.payload["config"]
        digests = [input_digest(ctx.abs(s["input_path"])) for s in samples]
        fam = family_of(tok)
        key = ts.object_key(config, [(s["sample_id"], fam.key_digest(s, d)) for s, d in zip(samples, digests)])
        objects = objects_dir(ctx.out_root, p, tok)
        meta = ts.read_object(objects, key)
        if meta is None:
            meta = compute_object(objects, key, samples, digests, ctx, p, config, tok)
        rows: list[dict[str, Any]] = []
        if meta["kept"]:
            written = ts.link_shard(objects, meta, store_dir(ctx.out_dir, p, tok), shard)
            rows = _rows(samples, meta["kept"], shard, written, ctx, p, tok, item.payload["weights"])
        return Outcome(rows=rows, rejects=failures_as_rejects(samples, meta["failed"]))

    # ---- finalize -------------------------------------------------------------------
    def finalize(self, ctx: Any, rows: pd.DataFrame, rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
        """Make each store folder self-describing: `index.parquet` + `store.json`."""
        p = check_params(ctx.params)
        if len(rows):  # the manifest's order: natural sort of sample_id, as the runner writes it
            order = sorted(range(len(rows)), key=lambda i: natural_key(str(rows["sample_id"].iat[i])))
            rows = rows.iloc[order].reset_index(drop=True)
        names = tokenizer_names(p)
        for tok in names:
            fam = family_of(tok)
            index = rows if len(names) == 1 else store_rows(rows, tok)
            meta = ts.store_meta(index, tok, fam.store_dtype(tok, p), fam.layout(tok), identity_of(p, tok, ctx),
                                 extra=fam.store_extra(tok))
            ts.write_store_files(store_dir(ctx.out_dir, p, tok), index, meta)
        return rows, rejects


# ---- parameters --------------------------------------------------------------------------

def assignment(p: Any) -> dict[str, str]:
    """Source stage → tokenizer: `tokenizers[source]`, else `tokenizer`."""
    unknown = sorted(set(p.tokenizers) - set(p.sources))
    if unknown:
        raise ConfigError(f"tokens.tokenizers names {', '.join(unknown)}, which tokens.sources "
                          f"({', '.join(p.sources) or 'empty'}) does not list")
    return {src: p.tokenizers.get(src, p.tokenizer) for src in p.sources}


def tokenizer_names(p: Any) -> list[str]:
    """The tokenizers this stage writes stores for, sorted."""
    return sorted(set(assignment(p).values())) or [p.tokenizer]


def check_params(p: Any) -> Any:
    """Refuse a configuration that cannot work before any model is built (exit 2)."""
    if not p.sources:
        raise ConfigError("tokens.sources is empty: name the stages that produce the inputs")
    for tok in tokenizer_names(p):
        family_of(tok).check(tok)
    if p.dtype not in ts.STORE_DTYPES:
        raise ConfigError(f"tokens.dtype {p.dtype!r}: expected one of {', '.join(ts.STORE_DTYPES)}")
    for name in ("shard_size", "batch_size"):
        if int(getattr(p, name)) < 1:
            raise ConfigError(f"tokens.{name} must be ≥ 1, got {getattr(p, name)}")
    if int(p.audio_batch_size) < 0:
        raise ConfigError(f"tokens.audio_batch_size must be ≥ 0 (0 = automatic), got {p.audio_batch_size}")
    if isinstance(p.weights, dict):
        unknown = sorted(set(p.weights) - set(tokenizer_names(p)))
        if unknown:
            raise ConfigError(f"tokens.weights names {', '.join(unknown)}, not a tokenizer of this stage "
                              f"({', '.join(tokenizer_names(p))})")
    return p


def weights_dir_for(p: Any, tokenizer: str) -> str | None:
    """The checkpoint folder for `tokenizer`: from a {tokenizer: folder} table; or the one
    folder given (`--weights DIR`) when the stage has one tokenizer, or when its config's
    `model_type` fits exactly one of them (an EnCodec folder in a ViT + EnCodec recipe)."""
    if not p.weights:
        return None
    if isinstance(p.weights, dict):
        return p.weights.get(tokenizer)
    names = tokenizer_names(p)
    if len(names) == 1:
        return p.weights
    kind = weights.checkpoint_model_type(p.weights)
    fits = [t for t in names if family_of(t).model_type == kind]
    if len(fits) != 1:
        raise ConfigError(f"--weights {p.weights}: a {kind or 'unreadable'} checkpoint, but this recipe has "
                          f"{len(fits)} tokenizers of that kind among {', '.join(names)}; give one folder "
                          "per tokenizer: --set 'tokens.weights={<tokenizer> = \"DIR\"}'")
    return p.weights if tokenizer == fits[0] else None


def identity_of(p: Any, tokenizer: str, ctx: Any = None) -> dict[str, Any]:
    fam = family_of(tokenizer)
    source = fam.locate(tokenizer, weights_dir_for(p, tokenizer), p)
    return weights.weight_identity(source, p.seed, getattr(ctx, "hasher", None))


# ---- folders and keys --------------------------------------------------------------------

def objects_dir(out_root: Path, p: Any, tokenizer: str | None = None) -> Path:
    """The shard-object store of one tokenizer, shared by every fingerprint folder and every
    stage configuration that uses it: `tokens/<tokenizer>/objects/`."""
    return Path(out_root) / "tokens" / (tokenizer or tokenizer_names(p)[0]) / ts.OBJECTS_DIR


def store_dir(out_dir: Path, p: Any, tokenizer: str) -> Path:
    """Where a tokenizer's store lives: the fingerprint folder, or its `<tokenizer>/`
    subfolder when the stage writes several stores."""
    return Path(out_dir) if len(tokenizer_names(p)) == 1 else Path(out_dir) / tokenizer


def item_key(p: Any, tokenizer: str, shard: int) -> str:
    return f"shard-{shard:05d}" if len(tokenizer_names(p)) == 1 else f"{tokenizer}/shard-{shard:05d}"


def object_config(p: Any, device: str, identity: dict[str, Any], tokenizer: str | None = None) -> dict[str, Any]:
    """Everything besides the inputs that decides a shard's array bytes. Not the labels,
    the split, the shard number, the batch size or the worker count."""
    tok = tokenizer or p.tokenizer
    fam = family_of(tok)
    compute = fam.compute(device, p.autocast)
    random_init = identity["sha256"] == weights.RANDOM_INIT
    return {"tokenizer": tok, "arch": fam.arch(tok),
            "layout": {k: list(v) for k, v in fam.layout(tok).items()},
            "weights": identity["sha256"], "init_seed": int(identity["seed"]) if random_init else None,
            "device": compute.device, "compute_dtype": compute.dtype_name, "dtype": fam.store_dtype(tok, p),
            "code": fam.object_code, "libraries": {d: library_version(d) for d in sorted(fam.libraries)}}


def input_digest(path: Path) -> str:
    """SHA-256 of an input file's bytes (`missing` / `unreadable` when it cannot be read)."""
    try:
        return hash_file(path)
    except FileNotFoundError:
        return MISSING
    except OSError:
        return UNREADABLE


png_digest = input_digest  # the name it had when every input was a PNG


# ---- computing a shard ---------------------------------------------------------------------

def compute_object(objects: Path, key: str, samples: list[dict[str, Any]], digests: list[str],
                   ctx: Any, p: Any, config: dict[str, Any], tokenizer: str | None = None) -> dict[str, Any]:
    """Run the model on one shard and commit the result as the object `key`."""
    tok = tokenizer or p.tokenizer
    fam = family_of(tok)
    weights.set_threads(p.threads)
    model = fam.model(tok, weights_dir_for(p, tok), p, ctx.device)
    if (model.identity["sha256"], model.compute.dtype_name) != (config["weights"], config["compute_dtype"]):
        raise RuntimeError(f"the weights or compute dtype changed since this run was planned "
                           f"({config['weights'][:12]} {config['compute_dtype']} → "
                           f"{model.identity['sha256'][:12]} {model.compute.dtype_name}); re-run")
    arrays, kept, failed = encode_shard(samples, digests, ctx, model, p, tok)
    record = {"config": config, "inputs": [[s["sample_id"], fam.key_digest(s, d)] for s, d in zip(samples, digests)],
              "kept": kept, "failed": failed}
    return ts.write_object(objects, key, arrays if kept else {}, record)


def encode_shard(samples: list[dict[str, Any]], digests: list[str], ctx: Any, model: Any, p: Any,
                 tokenizer: str | None = None) -> tuple[dict[str, np.ndarray], list[int], list[list[Any]]]:
    """Decode + forward one shard. Returns the arrays of the kept samples (in sample order),
    the kept sample positions, and the failures [position, reason, detail] by position.

    Every input must still have the bytes hashed into the object key (`digests`): a file
    that changed in between fails the item rather than storing tokens under a wrong key."""
    from torch.utils.data import DataLoader

    tok = tokenizer or p.tokenizer
    fam = family_of(tok)
    n = len(samples)
    dtype = fam.store_dtype(tok, p)
    arrays = {name: np.empty((n, *shape), dtype=dtype) for name, shape in fam.layout(tok).items()}
    good = np.zeros(n, dtype=bool)
    failed: list[list[Any]] = []
    dataset = InputShard([ctx.abs(s["input_path"]) for s in samples], fam.load(tok),
                         [fam.load_args(s) for s in samples])
    loader = DataLoader(dataset, batch_size=fam.batch_size(p, model.compute.device), shuffle=False,
                        num_workers=max(0, int(p.num_workers)), collate_fn=_Collate(fam.preparer()),
                        pin_memory=model.compute.device == "cuda")
    for idx, batch, errors, shas in loader:
        for i, sha in shas:
            if sha != digests[i]:
                raise RuntimeError(f"{samples[i]['input_path']}: changed while being tokenized "
                                   f"(hashed {digests[i][:12]}, decoded {sha[:12]}); re-run")
        failed += [[i, reason, detail] for i, reason, detail in errors]
        if not idx:
            continue
        out, bad = fam.forward(model, batch, tok, p)
        bad_at = {j: (reason, detail) for j, reason, detail in bad}
        for j, i in enumerate(idx):
            if j in bad_at:
                failed.append([i, *bad_at[j]])
                continue
            for name, arr in arrays.items():
                arr[i] = out[name][j]
            good[i] = True
    ok = np.flatnonzero(good).tolist()
    if len(ok) < n:
        arrays = {name: arr[good] for name, arr in arrays.items()}
    return arrays, ok, sorted(failed, key=lambda f: f[0])


class _Collate:
    """Picklable collate_fn for DataLoader workers (a partial of `collate_inputs`)."""

    def __init__(self, prepare: Any):
        self.prepare = prepare

    def __call__(self, batch: list) -> tuple:
        return collate_inputs(self.prepare, batch)


def failures_as_rejects(samples: list[dict[str, Any]], failed: list[list[Any]]) -> list[Reject]:
    """An object's per-sample failures as rejects naming the current input file (objects
    store no paths: the same bytes may sit in another upstream folder next time)."""
    return [Reject(samples[int(i)]["sample_id"], str(reason), f"{samples[int(i)]['input_path']}: {detail}")
            for i, reason, detail in failed]


# ---- inputs and labels ---------------------------------------------------------------------

def _source_rows(ctx: Any, sources: Any) -> pd.DataFrame:
    frames = []
    for src in sources:
        df = ctx.input_manifest(src)
        missing = {"sample_id", "path"} - set(df.columns)
        if missing:
            raise ConfigError(f"tokens: input stage {src!r} has no {sorted(missing)} column; "
                              "it must produce files to tokenize (a path to a PNG or an audio clip)")
        cols = ["sample_id", "path"] + [c for c in ("modality", "sample_rate") if c in df.columns]
        frames.append(df[cols].assign(stage=src))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["sample_id", "path", "stage"])


def match_labels(inputs: pd.DataFrame, labels: pd.DataFrame) -> tuple[list[dict[str, Any]], list[Reject]]:
    """Join input rows with their label/split rows; sorted by sample_id.

    Rejects: `duplicate-id` (an id produced by two sources or twice), `unlabelled` (no split
    row), `modality-mismatch` (the source says image, the label says audio), `bad-path`
    (a path that leaves the output root)."""
    samples, rejects = [], []
    inputs = inputs.iloc[sorted(range(len(inputs)), key=lambda i: natural_key(str(inputs["sample_id"].iat[i])))]
    cols = [c for c in LABEL_COLUMNS if c in labels.columns]
    records = labels[cols].to_dict("index")
    seen: dict[str, str] = {}
    for row in inputs.itertuples(index=False):
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
            rate = _plain(getattr(row, "sample_rate", None))
            samples.append({"sample_id": sid, "input_path": path, "stage": stage,
                            **({"sample_rate": int(rate)} if rate is not None else {}),
                            **{c: _plain(lab.get(c)) for c in LABEL_COLUMNS}})
    return samples, rejects


def _payload_sample(sample: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sample.items() if k != "stage"}


def without_image(labelled: Any, inputs: pd.DataFrame, sources: Any, reason: str = "no-image") -> list[Reject]:
    """`no-image` (`no-input`) rejects for split-manifest ids that no source stage produced,
    so every labelled id ends as a token row or a tokens reject."""
    have = set(inputs["sample_id"].astype(str))
    where = ", ".join(sources)
    what = "image" if reason == "no-image" else "input"
    return [Reject(sid, reason, f"{sid}: in the split manifest but no {what} in stage(s) {where} "
                                "(rejected or dropped there; see that stage's rejects)")
            for sid in sorted({str(s) for s in labelled} - have, key=natural_key)]


def inside_output_root(samples: list[dict[str, Any]], out_root: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
    """Drop samples whose file leads out of the output root through a symlink (`..` and
    absolute paths are already `bad-path` in match_labels): rejected, never read."""
    kept, rejects = [], []
    for s in samples:
        try:
            output_file(out_root, s["input_path"])
        except ValueError as exc:
            rejects.append(Reject(s["sample_id"], "bad-path", f"{exc} (stage {s['stage']})"))
        else:
            kept.append(s)
    return kept, rejects


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


# ---- index rows ----------------------------------------------------------------------------

def _rows(samples: list[dict[str, Any]], ok: list[int], shard: int, written: dict[str, tuple[Path, str]],
          ctx: Any, p: Any, tokenizer: str, identity: dict[str, Any]) -> list[dict[str, Any]]:
    fam = family_of(tokenizer)
    shape = ts.sequence_shape(fam.layout(tokenizer))
    files = {ts.path_column(name): ctx.rel(path) for name, (path, _sha) in written.items()}
    shas = {ts.sha_column(name): sha for name, (_path, sha) in written.items()}
    rows = []
    for row, i in enumerate(ok):
        s = samples[i]
        rows.append({"sample_id": s["sample_id"], "tokenizer": tokenizer, "shard": int(shard),
                     "row": row, "shape": list(shape), "dtype": fam.store_dtype(tokenizer, p),
                     "weights": identity["sha256"], **{c: s[c] for c in LABEL_COLUMNS},
                     fam.input_column: s["input_path"], "path": files[ts.path_column(fam.main_array)],
                     **files, **shas})
    return rows


def store_rows(rows: pd.DataFrame, tokenizer: str) -> pd.DataFrame:
    """One tokenizer's rows of a multi-store manifest, without the other families' columns."""
    fam = family_of(tokenizer)
    mine = set(fam.layout(tokenizer))
    foreign = {c for a in ARRAY_ORDER if a not in mine for c in (ts.path_column(a), ts.sha_column(a))}
    foreign |= {f.input_column for f in FAMILIES if f.input_column != fam.input_column}
    sub = rows[rows["tokenizer"] == tokenizer] if len(rows) else rows
    return sub.drop(columns=[c for c in sub.columns if c in foreign]).reset_index(drop=True)
