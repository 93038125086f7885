"""The `tokens` stage's parameters and which tokenizer each source stage goes to (what the
families make of them: `resolve.py`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.stage import runtime
from emoprep.stages.tokens import vit


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
    # False (real data without --allow-random-init): refuse to plan a random init where a
    # published checkpoint exists, saying how to get it (set by the command line)
    allow_random_init: bool = runtime(True)
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
