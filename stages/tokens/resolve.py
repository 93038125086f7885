"""What the `tokens` parameters resolve to through the tokenizer families: a checked
configuration, each tokenizer's checkpoint folder, weight identity and preprocessing."""
from __future__ import annotations

from typing import Any

from emoprep.manifests.token_store.layout import STORE_DTYPES
from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.errors import ConfigError
from emoprep.stages.tokens import weights
from emoprep.stages.tokens.families import family_of
from emoprep.stages.tokens.hf_checkpoint import is_hf
from emoprep.stages.tokens.params import TokensParams, tokenizer_names


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
