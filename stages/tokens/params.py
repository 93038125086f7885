"""The `tokens` stage's parameters, and what follows from them before any model is built:
which tokenizer each source stage goes to, the checks that refuse a configuration that
cannot work (exit 2), and each tokenizer's weight folder and weight identity.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emoprep.manifests.token_store.layout import STORE_DTYPES
from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.stage import runtime
from emoprep.stages.tokens import vit, weights
from emoprep.stages.tokens.families import family_of
from emoprep.stages.tokens.hf_checkpoint import is_hf


def hf_only(default: Any) -> Any:
    """A parameter of `hf:` tokenizers: out of the stage's parameter fingerprint (like a
    runtime knob) and entered, for `hf:` tokenizers only, through `fingerprint_extra`."""
    return runtime(default)


@dataclass(frozen=True)
class TokensParams:
    tokenizer: str = "vit-base-patch16-224"   # for every source not in `tokenizers`
    sources: tuple[str, ...] = ("spectrogram", "images")  # stages producing the inputs
    tokenizers: dict[str, str] = field(default_factory=dict)  # source stage → tokenizer
    shard_size: int = 256
    dtype: str = "float16"            # stored dtype of ViT tokens: float16 | float32 (codes: int16)
    seed: int = 0                     # random-init seed (used only without weights)
    hf_model_id: str = vit.HF_MODEL_ID  # HF cache id of the ViT-base weights (why this one: vit.py)
    autocast: str = "auto"            # auto | none | float16 | bfloat16 (auto: EnCodec stays float32)
    # checkpoint folder (one tokenizer, or matched by its config's model_type) or
    # {tokenizer = folder}; its checksum is fingerprinted
    weights: str | dict[str, str] | None = runtime(None)  # noqa: RUF009 - runtime() is a dataclasses.field
    batch_size: int = runtime(16)     # images per ViT forward pass
    audio_batch_size: int = runtime(0)  # clips per EnCodec pass; 0 = 1 on CPU, 8 on CUDA
    num_workers: int = runtime(1)     # DataLoader decode workers
    threads: int = runtime(0)         # torch intra-op threads; 0 = all cores
    # `hf:` tokenizers only (hf_checkpoint.py, hf_model.py). Kept out of the parameters'
    # fingerprint so the ViT and EnCodec stores keep theirs; `Tokens.fingerprint_extra` and
    # every shard-object key of an `hf:` tokenizer hold them.
    # "last" | "all" | [hidden-state indices, 0 = embeddings, as output_hidden_states numbers them]
    layers: str | list[int] = hf_only("last")   # noqa: RUF009 - hf_only() is a dataclasses.field
    pooling: str = hf_only("none")              # none | mean | cls
    window_s: float = hf_only(0.0)              # audio window; 0 = the model's input limit
    trust_remote_code: bool = hf_only(False)    # run a checkpoint's own code (auto_map)


def assignment(p: TokensParams) -> dict[str, str]:
    """Source stage → tokenizer: `tokenizers[source]`, else `tokenizer`."""
    unknown = sorted(set(p.tokenizers) - set(p.sources))
    if unknown:
        raise ConfigError(f"tokens.tokenizers names {', '.join(unknown)}, which tokens.sources "
                          f"({', '.join(p.sources) or 'empty'}) does not list")
    return {src: p.tokenizers.get(src, p.tokenizer) for src in p.sources}


def tokenizer_names(p: TokensParams) -> list[str]:
    """The tokenizers this stage writes stores for, sorted."""
    return sorted(set(assignment(p).values())) or [p.tokenizer]


def check_params(p: TokensParams) -> TokensParams:
    """Refuse a configuration that cannot work before any model is built (exit 2)."""
    if not p.sources:
        raise ConfigError("tokens.sources is empty: name the stages that produce the inputs")
    for tok in tokenizer_names(p):
        family_of(tok).check(tok, p)
    if (p.layers != "last" or p.pooling != "none") and not any(map(is_hf, tokenizer_names(p))):
        raise ConfigError("tokens.layers and tokens.pooling apply to hf: tokenizers only "
                          f"(this stage has {', '.join(tokenizer_names(p))})")
    if p.dtype not in STORE_DTYPES:
        raise ConfigError(f"tokens.dtype {p.dtype!r}: expected one of {', '.join(STORE_DTYPES)}")
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


def weights_dir_for(p: TokensParams, tokenizer: str) -> str | None:
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


def identity_of(p: TokensParams, tokenizer: str, ctx: ItemContext[TokensParams] | None = None) -> dict[str, Any]:
    """The weight identity of `tokenizer` (weights.weight_identity), hashing the checkpoint with
    the run's file hasher when `ctx` is the main process's StageContext."""
    fam = family_of(tokenizer)
    source = fam.locate(tokenizer, weights_dir_for(p, tokenizer), p)
    return weights.weight_identity(source, p.seed, getattr(ctx, "hasher", None))


def preprocessing_of(p: TokensParams, tokenizer: str) -> dict[str, Any] | None:
    """How `tokenizer`'s inputs become model input, as recorded (None: nothing configurable)."""
    fam = family_of(tokenizer)
    return fam.preprocessing(tokenizer, fam.locate(tokenizer, weights_dir_for(p, tokenizer), p))

