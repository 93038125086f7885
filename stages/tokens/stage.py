"""The `tokens` stage: tokens of every labelled input, one store per tokenizer (SPEC §4 tokenize).

Tokenizers (`vit.py`, `encodec.py`): `vit-base-patch16-224` (thesis Version 3: images and
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
computed independently of its batch neighbours (tests/stages/tokens/test_encode.py checks ViT
batch sizes 1, 7 and 16 give byte-identical shards, test_encodec.py EnCodec batch sizes 1-7;
see encodec.py for what that takes). Under CUDA autocast the kernels may differ with the
batch shape; the recorded compute dtype says so, and the bound is then the float16/bfloat16
rounding of the activations.

The parts: parameters and weight identity (`params.py`), inputs joined with their labels
(`inputs.py`), one shard's computation (`encode.py`, with `decode.py` in DataLoader workers and
`families.py` for what differs between ViT and EnCodec), the index rows (`index_rows.py`);
the store format is `emoprep.manifests.token_store`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from emoprep.manifests.reasons import NO_IMAGE, NO_INPUT
from emoprep.manifests.token_store.layout import store_meta, tokenizer_folder
from emoprep.manifests.token_store.objects import OBJECTS_DIR, link_shard, object_key, read_object, sweep_object_temps
from emoprep.manifests.token_store.writer import write_store_files
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import pd
from emoprep.pipeline.stage import Outcome, Reject, Stage, WorkItem
from emoprep.pipeline.values import natural_key
from emoprep.stages.tokens import encode, weights
from emoprep.stages.tokens.encode import failures_as_rejects, object_config, sample_digest
from emoprep.stages.tokens.families import FAMILIES, family_of
from emoprep.stages.tokens.hf_checkpoint import is_hf
from emoprep.stages.tokens.index_rows import index_rows, store_rows
from emoprep.stages.tokens.inputs import inside_output_root, match_labels, payload_sample, source_rows, without_image
from emoprep.stages.tokens.params import TokensParams, assignment, tokenizer_names
from emoprep.stages.tokens.resolve import check_params, identity_of, preprocessing_of, weights_dir_for

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
UNMATCHED_KEY = "unmatched"  # the work item that carries the rejects found while planning
T = TypeVar("T")


class Tokens(Stage[TokensParams]):
    name = "tokens"
    version = "3"  # 3: inputs linked out of the output root are bad-path rejects
    libraries = tuple(sorted({lib for fam in FAMILIES for lib in fam.libraries}))
    default_inputs = ("spectrogram", "images", "split")
    description = ("Tokens of every labelled input, one sharded-NPY store per tokenizer: ViT (CLS + patches) "
                   "for images and spectrograms, EnCodec codes for 46 s clips")
    parallel = False
    uses_device = True
    Params = TokensParams

    def libraries_for(self, params: TokensParams) -> tuple[str, ...]:
        """The families of the tokenizers this configuration writes (ViT needs no soxr)."""
        return tuple(sorted({lib for tok in tokenizer_names(params) for lib in family_of(tok).libraries}))

    def inputs(self, params: TokensParams) -> list[str]:
        return [*params.sources, "split"]

    def output_subdir(self, params: TokensParams) -> str:
        return "tokens/" + "+".join(map(tokenizer_folder, tokenizer_names(params)))

    # ---- fingerprint ----------------------------------------------------------------
    def fingerprint_extra(self, ctx: StageContext[TokensParams]) -> dict[str, Any]:
        """Per tokenizer: weight identity (name + safetensors checksum or random-init) and
        compute dtype/device (one tokenizer: those three keys at the top level)."""
        p = check_params(ctx.params)
        setups = {}
        for tok in tokenizer_names(p):
            fam = family_of(tok)
            source = fam.locate(tok, weights_dir_for(p, tok), p)
            if not source.pretrained and source.wanted and not p.allow_random_init:
                raise ConfigError(f"tokens: {weights.missing_weights_message(tok, source.wanted)}")
            if not source.pretrained:
                fam.warn(tok, p)
            compute = fam.compute(ctx.device, p.autocast)
            setups[tok] = {"weights": identity_of(p, tok, ctx), "device": compute.device,
                           "compute_dtype": compute.dtype_name}
            prep = fam.preprocessing(tok, source)
            if prep is not None:
                setups[tok]["preprocessing"] = prep
            if is_hf(tok):  # the checkpoint's architecture and revision, layers, pooling, window
                setups[tok]["arch"] = fam.arch(tok, p)
        return next(iter(setups.values())) if len(setups) == 1 else {"tokenizers": setups}

    # ---- plan -----------------------------------------------------------------------
    def plan(self, ctx: StageContext[TokensParams]) -> list[WorkItem]:
        p = check_params(ctx.params)
        names, assign = tokenizer_names(p), assignment(p)
        for tok in names:  # the runner holds the output lock
            sweep_object_temps(objects_dir(ctx.out_root, p, tok))
        inputs = source_rows(ctx, p.sources)
        labels = ctx.input_manifest("split").drop_duplicates("sample_id").set_index("sample_id")
        samples, rejects = match_labels(inputs, labels)
        samples, escaping = inside_output_root(samples, ctx.out_root)
        rejects += escaping
        check_modalities(samples, assign)
        audio = any(family_of(t).input_column_of(t) == "audio_path" for t in names)
        rejects += without_image(labels.index, inputs, p.sources, NO_INPUT if audio else NO_IMAGE)
        items = []
        for tok in names:
            identity = identity_of(p, tok, ctx)
            config = object_config(p, ctx.device, identity, tok, preprocessing_of(p, tok))
            mine = [payload_sample(s) for s in samples if assign[s["stage"]] == tok]
            for k, chunk in enumerate(_chunks(mine, p.shard_size)):
                items.append(WorkItem(key=item_key(p, tok, k), payload={
                    "tokenizer": tok, "shard": k, "samples": chunk, "config": config, "weights": identity}))
        if rejects:
            items.append(WorkItem(key=UNMATCHED_KEY,
                                  payload={"rejects": [[r.sample_id, r.reason, r.message] for r in rejects]}))
        return items

    # ---- process --------------------------------------------------------------------
    def process(self, item: WorkItem, ctx: ItemContext[TokensParams]) -> Outcome:
        """Hash the shard's inputs; re-use the object with that key or compute it; link it in."""
        if item.key == UNMATCHED_KEY:
            return Outcome(rejects=[Reject(*r) for r in item.payload["rejects"]])
        p = check_params(ctx.params)
        tok = item.payload["tokenizer"]
        samples, shard, config = item.payload["samples"], item.payload["shard"], item.payload["config"]
        digests = [sample_digest(s, ctx) for s in samples]
        fam = family_of(tok)
        key = object_key(config, [(s["sample_id"], fam.key_digest(s, d))
                                  for s, d in zip(samples, digests, strict=True)])
        objects = objects_dir(ctx.out_root, p, tok)
        meta = read_object(objects, key)
        if meta is None:  # (looked up on its module, so a test can forbid computing here)
            meta = encode.compute_object(objects, key, samples, digests, ctx, p, config, tok)
        rows: list[dict[str, Any]] = []
        if meta["kept"]:
            written = link_shard(objects, meta, store_dir(ctx.out_dir, p, tok), shard)
            rows = index_rows(samples, meta["kept"], shard, written, ctx, p, tok, item.payload["weights"])
        return Outcome(rows=rows, rejects=failures_as_rejects(samples, meta["failed"]))

    # ---- finalize -------------------------------------------------------------------
    def finalize(self, ctx: StageContext[TokensParams], rows: pd.DataFrame,
                 rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
        """Make each store folder self-describing: `index.parquet` + `store.json`."""
        p = check_params(ctx.params)
        if len(rows):  # the manifest's order: natural sort of sample_id, as the runner writes it
            order = sorted(range(len(rows)), key=lambda i: natural_key(str(rows["sample_id"].iat[i])))
            rows = rows.iloc[order].reset_index(drop=True)
        names = tokenizer_names(p)
        for tok in names:
            fam = family_of(tok)
            index = rows if len(names) == 1 else store_rows(rows, tok, p)
            layout = fam.layout(tok, p)
            extra = fam.store_extra(tok, p)
            if layout is None:  # hf: one array, its per-sample shape from the index
                shape = [int(v) for v in index["shape"].iloc[0]] if len(index) else []
                layout = {fam.main_array: tuple(shape)}
                extra = {**extra, "shape": shape}
            meta = store_meta(index, tok, fam.store_dtype(tok, p), layout, identity_of(p, tok, ctx), extra=extra)
            write_store_files(store_dir(ctx.out_dir, p, tok), index, meta)
        return rows, rejects


# ---- folders and keys --------------------------------------------------------------------

def objects_dir(out_root: Path, p: TokensParams, tokenizer: str | None = None) -> Path:
    """The shard-object store of one tokenizer, shared by every fingerprint folder and every
    stage configuration that uses it: `tokens/<tokenizer>/objects/`."""
    return Path(out_root) / "tokens" / tokenizer_folder(tokenizer or tokenizer_names(p)[0]) / OBJECTS_DIR


def store_dir(out_dir: Path, p: TokensParams, tokenizer: str) -> Path:
    """Where a tokenizer's store lives: the fingerprint folder, or its `<tokenizer>/`
    subfolder when the stage writes several stores."""
    return Path(out_dir) if len(tokenizer_names(p)) == 1 else Path(out_dir) / tokenizer_folder(tokenizer)


def item_key(p: TokensParams, tokenizer: str, shard: int) -> str:
    return f"shard-{shard:05d}" if len(tokenizer_names(p)) == 1 else f"{tokenizer_folder(tokenizer)}/shard-{shard:05d}"


def check_modalities(samples: list[dict[str, Any]], assign: dict[str, str]) -> None:
    """Refuse (exit 2, before any item runs) an `hf:` encoder given inputs of the other
    modality: an image encoder given audio, an audio encoder given images."""
    seen: dict[str, str] = {}
    for s in samples:
        tok = assign[s["stage"]]
        if is_hf(tok) and s["stage"] not in seen:
            audio = "view" in s or not str(s["input_path"]).lower().endswith(IMAGE_SUFFIXES)
            seen[s["stage"]] = "audio" if audio else "image"
    for stage, modality in seen.items():
        want = family_of(assign[stage]).input_column_of(assign[stage])
        if (want == "audio_path") != (modality == "audio"):
            kind = "an audio" if want == "audio_path" else "an image"
            raise ConfigError(f"tokens: {assign[stage]} is {kind} encoder, but source {stage!r} gives "
                              f"{modality} inputs; give it to an encoder of that modality (tokens.tokenizers)")


def _chunks(seq: list[T], size: int) -> list[list[T]]:
    return [seq[i:i + size] for i in range(0, len(seq), size)]
