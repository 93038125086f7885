"""Computing one shard of the `tokens` stage: the object key's setup (`object_config`) and
input digests, decoding the inputs in DataLoader workers and running the model in batches
(`encode_shard`), and committing the arrays as a content-addressed shard object
(`compute_object`, store: `emoprep.manifests.token_store.objects`).

Batch size cannot change the stored values (see the stage's docstring); an input whose bytes
changed after they were hashed into the key fails the item instead of being stored under a
wrong key.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from emoprep.manifests.reasons import BAD_AUDIO_LENGTH
from emoprep.manifests.token_store.objects import write_object
from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.filehash import hash_file
from emoprep.pipeline.fingerprint import library_version
from emoprep.pipeline.lazy import np
from emoprep.pipeline.reasons import ReasonCode
from emoprep.pipeline.stage import Reject
from emoprep.stages.common.audio_io import AudioError
from emoprep.stages.common.audio_source import song_sha256, view_dataset
from emoprep.stages.tokens import weights
from emoprep.stages.tokens.decode import MISSING, UNREADABLE, Batch, InputShard, Item, collate_inputs
from emoprep.stages.tokens.families import LoadedModel, family_of
from emoprep.stages.tokens.params import TokensParams
from emoprep.stages.tokens.resolve import weights_dir_for
from emoprep.stages.tokens.vit import DEFAULT_PREPROCESSING


def object_config(p: TokensParams, device: str, identity: dict[str, Any],
                  tokenizer: str | None = None, preprocessing: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything besides the inputs that decides a shard's array bytes. Not the labels,
    the split, the shard number, the batch size or the worker count. Preprocessing constants
    enter only when they differ from ViT's defaults, so objects made before they were read
    from checkpoints (all with the defaults) keep their keys."""
    tok = tokenizer or p.tokenizer
    fam = family_of(tok)
    compute = fam.compute(device, p.autocast)
    random_init = identity["sha256"] == weights.RANDOM_INIT
    layout = fam.layout(tok, p)
    config = {"tokenizer": tok, "arch": fam.arch(tok, p),
              **({"layout": {k: list(v) for k, v in layout.items()}} if layout is not None else {}),
              "weights": identity["sha256"], "init_seed": int(identity["seed"]) if random_init else None,
              "device": compute.device, "compute_dtype": compute.dtype_name, "dtype": fam.store_dtype(tok, p),
              "code": fam.object_code, "libraries": {d: library_version(d) for d in sorted(fam.libraries)}}
    values = {k: v for k, v in (preprocessing or {}).items() if k != "source"}
    if values and values != DEFAULT_PREPROCESSING.values():
        config["preprocessing"] = values
    return config


def input_digest(path: Path) -> str:
    """SHA-256 of an input file's bytes (`missing` / `unreadable` when it cannot be read)."""
    try:
        return hash_file(path)
    except FileNotFoundError:
        return MISSING
    except OSError:
        return UNREADABLE


def sample_digest(sample: dict[str, Any], ctx: ItemContext[TokensParams]) -> str:
    """What keys a sample's tokens: its input file's SHA-256, or for a view the SHA-256 of the
    song file it is cut from (`missing` / `unreadable` when that cannot be read)."""
    view = sample.get("view")
    if view is None:
        return input_digest(ctx.abs(sample["input_path"]))
    return view_digest(view_root(view, ctx.roots), view)


def view_root(view: dict[str, Any], roots: dict[str, Any]) -> str:
    """The dataset root a view's song lies under (absolute, so DataLoader workers need no
    context); "" when the run does not know that dataset's root."""
    root = roots.get(view_dataset(view))
    return str(root) if root is not None else ""


def view_digest(root: str, view: dict[str, Any]) -> str:
    if not root:
        return MISSING
    try:
        return song_sha256(Path(root), view)
    except AudioError:
        return UNREADABLE


def compute_object(objects: Path, key: str, samples: list[dict[str, Any]], digests: list[str],
                   ctx: ItemContext[TokensParams], p: TokensParams, config: dict[str, Any],
                   tokenizer: str | None = None) -> dict[str, Any]:
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
    record = {"config": config,
              "inputs": [[s["sample_id"], fam.key_digest(s, d)] for s, d in zip(samples, digests, strict=True)],
              "kept": kept, "failed": failed}
    return write_object(objects, key, arrays if kept else {}, record)


def encode_shard(samples: list[dict[str, Any]], digests: list[str], ctx: ItemContext[TokensParams],
                 model: LoadedModel, p: TokensParams,
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
    layout = fam.layout(tok, p)
    arrays = ({name: np.empty((n, *shape), dtype=dtype) for name, shape in layout.items()}
              if layout is not None else _LazyArrays(n, dtype))
    good = np.zeros(n, dtype=bool)
    failed: list[list[Any]] = []
    inputs: list[Any] = [ctx.abs(s["input_path"]) if "view" not in s else (view_root(s["view"], ctx.roots), s["view"])
                         for s in samples]  # a file, or a view: (dataset root, view columns)
    dataset = InputShard(inputs, fam.load(tok),
                         [fam.load_args(s) for s in samples])
    # (InputShard is no torch Dataset subclass, so the stage registry need not import torch;
    # DataLoader takes any object with __len__ and __getitem__)
    loader: DataLoader[Item] = DataLoader(
        dataset, batch_size=fam.batch_size(p, model.compute.device), shuffle=False,  # type: ignore[arg-type]
        num_workers=max(0, int(p.num_workers)), collate_fn=_Collate(fam.preparer(model)),
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
            if isinstance(arrays, _LazyArrays):
                refused = arrays.put(i, {name: out[name][j] for name in out})
                if refused:
                    failed.append([i, BAD_AUDIO_LENGTH, refused])
                    continue
            else:
                for name, arr in arrays.items():
                    arr[i] = out[name][j]
            good[i] = True
    if isinstance(arrays, _LazyArrays):
        arrays = arrays.stacked()
    ok = np.flatnonzero(good).tolist()
    if len(ok) < n and not isinstance(arrays, _LazyArrays):
        arrays = {name: arr[good] for name, arr in arrays.items()}
    return arrays, ok, sorted(failed, key=lambda f: f[0])


class _LazyArrays:
    """A shard's arrays when their per-sample shape is known only from the model's output
    (`hf:` tokenizers): the first kept sample sets it, a sample of another shape is refused."""

    def __init__(self, n: int, dtype: str):
        self.dtype = dtype
        self.rows: dict[int, dict[str, np.ndarray]] = {}
        self.shapes: dict[str, tuple[int, ...]] | None = None

    def put(self, i: int, arrays: dict[str, np.ndarray]) -> str | None:
        shapes = {k: tuple(v.shape) for k, v in arrays.items()}
        if self.shapes is None:
            self.shapes = shapes
        elif shapes != self.shapes:
            return (f"gives arrays of shape {shapes}, the shard's first sample {self.shapes} "
                    "(a store holds one shape: cut the inputs to one length, or pool)")
        self.rows[i] = arrays
        return None

    def stacked(self) -> dict[str, np.ndarray]:
        if not self.rows:
            return {}
        names = next(iter(self.rows.values()))
        return {k: np.stack([self.rows[i][k] for i in sorted(self.rows)]).astype(self.dtype, copy=False)
                for k in names}


class _Collate:
    """Picklable collate_fn for DataLoader workers (a partial of `collate_inputs`)."""

    def __init__(self, prepare: Callable[[list[np.ndarray]], Any]):
        self.prepare = prepare

    def __call__(self, batch: list[Item]) -> Batch:
        return collate_inputs(self.prepare, batch)


def failures_as_rejects(samples: list[dict[str, Any]], failed: list[list[Any]]) -> list[Reject]:
    """An object's per-sample failures as rejects naming the current input file (objects
    store no paths: the same bytes may sit in another upstream folder next time)."""
    return [Reject(samples[int(i)]["sample_id"], ReasonCode(str(reason)),
                   f"{samples[int(i)]['input_path']}: {detail}")
            for i, reason, detail in failed]
