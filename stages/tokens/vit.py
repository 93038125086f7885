"""Vision Transformers as tokenizers: architectures, model builder, preprocessing.

Two architectures of the thesis (seed 000, §2.1.4, §3.2.1), by tokenizer name:

- `vit-base-patch16-224` (Version 3): CLS + 196 patches × 768. Default checkpoint
  `google/vit-base-patch16-224` (`tokens.hf_model_id`). The thesis names "ViT-base-patch16-224
  (standard pre-trained configuration)"; on the Hugging Face Hub that exact name is Google's
  standard release, pre-trained on ImageNet-21k and fine-tuned on ImageNet-1k at 224 px.
  `google/vit-base-patch16-224-in21k` (21k pre-training only) would be a different model under
  a name the thesis does not use; set `tokens.hf_model_id` to it (or pass `--weights DIR`) to
  tokenize with it instead. The weights' SHA-256 is recorded either way.
- `vit-patch28-h2048` (Versions 1-2, the thesis's "custom Vision Transformer configuration"):
  patch 28 → 8 × 8 = 64 patches + CLS, hidden size 2048. The thesis changes only the patch
  size and the hidden size of ViT-base; we keep every other ViT-base value (12 layers, MLP
  width 3072, 224 px) except the number of attention heads, which must divide 2048 (ViT-base's
  12 does not): 32 heads keep ViT-base's per-head width of 64. 358 M parameters (1.4 GB in
  float32). No checkpoint of this architecture is published, and none of ViT-base's tensors
  fit it (every one has a 768-wide axis), so despite the thesis's "weights were preserved" its
  tokens can only have come from a random init; ours are a seeded random init, recorded as
  `weights: "random-init"` (pass `--weights DIR` with a checkpoint of this shape to use one).

The weight policy (SPEC §6: `--weights DIR` / HF cache offline / seeded random init with a loud
warning, identity recorded) is shared with EnCodec in `weights.py`.

Preprocessing equals `ViTImageProcessor(do_resize=False)` bit for bit (rescale 1/255 in
float64 then float32, normalise mean 0.5 / std 0.5) via a 256-entry lookup table; gray
images (spectrograms) are replicated to 3 channels.

This module imports torch and transformers inside functions only (the stage registry imports
every stage module at start-up).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emoprep.manifests.token_store.layout import RANDOM_INIT_BY_DESIGN
from emoprep.pipeline.errors import ConfigError
from emoprep.stages.tokens import weights
from emoprep.stages.tokens.weights import (
    Compute,
    WeightsSource,
    resolve_compute,
    weight_identity,
)

HF_MODEL_ID = "google/vit-base-patch16-224"  # see the module docstring

# Tokenizer name → ViTConfig overrides (empty = ViTConfig() defaults = base/16/224).
# The tiny entry exists so tests exercise the real code path in milliseconds.
ARCHS: dict[str, dict[str, Any]] = {
    "vit-base-patch16-224": {},
    "vit-patch28-h2048": {"patch_size": 28, "hidden_size": 2048, "num_attention_heads": 32},
    "vit-tiny-test": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "intermediate_size": 64},
}
# Why a tokenizer has no checkpoint to look for in the HF cache (said in the random-init warning;
# `validate --require-pretrained` reads the same table).
NO_PUBLISHED_CHECKPOINT = RANDOM_INIT_BY_DESIGN
# Architecture fields a checkpoint must match to be used under a tokenizer name.
_ARCH_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "patch_size", "image_size", "num_channels")


def _lut() -> np.ndarray:
    """uint8 → float32 exactly as ViTImageProcessor computes it (rescale, then normalise)."""
    rescaled = (np.arange(256, dtype=np.float64) * (1 / 255)).astype(np.float32)
    return (rescaled - np.float32(0.5)) / np.float32(0.5)


PIXEL_LUT = _lut()


def check_tokenizer(tokenizer: str) -> None:
    if tokenizer not in ARCHS:
        raise ConfigError(f"unknown ViT tokenizer {tokenizer!r}; known: {', '.join(sorted(ARCHS))}")


def arch_config(tokenizer: str) -> Any:
    """The `transformers.ViTConfig` of a tokenizer name."""
    from transformers import ViTConfig

    check_tokenizer(tokenizer)
    return ViTConfig(**ARCHS[tokenizer])


def token_layout(tokenizer: str) -> dict[str, tuple[int, ...]]:
    """Per-sample array shapes: {"cls": (D,), "patches": (P, D)}."""
    cfg = {"hidden_size": 768, "image_size": 224, "patch_size": 16, **ARCHS[tokenizer]}
    n_patches = (cfg["image_size"] // cfg["patch_size"]) ** 2
    return {"cls": (cfg["hidden_size"],), "patches": (n_patches, cfg["hidden_size"])}


def image_size(tokenizer: str) -> int:
    check_tokenizer(tokenizer)
    return int(ARCHS[tokenizer].get("image_size", 224))


# ---- preprocessing -------------------------------------------------------------------

def pixel_values(images: np.ndarray) -> np.ndarray:
    """uint8 images [B, H, W] (gray) or [B, H, W, 3] (RGB) → float32 [B, 3, H, W] model input."""
    if images.dtype != np.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    if images.ndim == 3:  # gray: same values in the 3 channels
        return np.ascontiguousarray(np.broadcast_to(PIXEL_LUT[images][:, None], (len(images), 3, *images.shape[1:])))
    if images.ndim == 4 and images.shape[-1] == 3:
        return np.ascontiguousarray(PIXEL_LUT[images].transpose(0, 3, 1, 2))
    raise ValueError(f"expected [B,H,W] or [B,H,W,3] images, got shape {images.shape}")


# ---- weights (the policy lives in weights.py, shared with EnCodec) --------------------

def locate_weights(tokenizer: str, weights_dir: str | None, hf_model_id: str = HF_MODEL_ID) -> WeightsSource:
    """Resolve the weight source: an explicit folder wins, then the HF cache (ViT-base only:
    no published checkpoint has the other architectures), else random init."""
    check_tokenizer(tokenizer)
    hub_id = hf_model_id if tokenizer == "vit-base-patch16-224" else None
    return weights.locate(tokenizer, weights_dir, hub_id, "ViT")


def warn_random_init(tokenizer: str, seed: int, hf_model_id: str = HF_MODEL_ID) -> None:
    """Say loudly that the tokens are not pretrained, naming the checkpoint the configuration
    asked for (`tokens.hf_model_id`), or why there is none to look for."""
    if tokenizer in NO_PUBLISHED_CHECKPOINT:
        wanted = (f"No published checkpoint has this architecture ({NO_PUBLISHED_CHECKPOINT[tokenizer]}); "
                  f"pass --weights DIR with a {tokenizer} checkpoint to use trained weights")
    elif tokenizer != "vit-base-patch16-224":
        wanted = f"Pass --weights DIR with a {tokenizer} checkpoint"
    elif hf_model_id:
        wanted = f"Put {hf_model_id} (tokens.hf_model_id) in the HF cache or pass --weights DIR"
    else:
        wanted = "tokens.hf_model_id is empty, so the HF cache is not searched; pass --weights DIR"
    weights.warn_random_init(tokenizer, seed, wanted)


# ---- model ---------------------------------------------------------------------------

def build_model(tokenizer: str, source: WeightsSource, seed: int, device: str = "cpu",
                hf_model_id: str = HF_MODEL_ID) -> Any:
    """A `ViTModel` (no pooler) in eval mode on `device`, from `source` or seeded random init
    (`hf_model_id` only names the missing checkpoint in the warning)."""
    from transformers import ViTModel

    if source.pretrained:
        model = ViTModel.from_pretrained(str(source.path), local_files_only=True, use_safetensors=True,
                                         trust_remote_code=False, add_pooling_layer=False)
        weights.check_arch(tokenizer, model.config, arch_config(tokenizer), _ARCH_FIELDS, "vit", source)
    else:
        warn_random_init(tokenizer, seed, hf_model_id)
        model = weights.seeded(seed, lambda: ViTModel(arch_config(tokenizer), add_pooling_layer=False))
    return model.to(device).eval()  # type: ignore[arg-type]  # transformers types .to() as an unbound wrapper


def forward_tokens(model: Any, pixels: Any, compute: Compute) -> np.ndarray:
    """Run the model on a float32 [B,3,H,W] batch → float32 numpy `last_hidden_state` [B,1+P,D]."""
    import torch

    x = torch.as_tensor(pixels).to(compute.device, non_blocking=True)
    with torch.inference_mode(), weights.autocast_context(compute):
        hidden = model(pixel_values=x).last_hidden_state
    out: np.ndarray = hidden.float().cpu().numpy()
    return out


@dataclass
class LoadedViT:
    model: Any
    identity: dict[str, Any]
    compute: Compute


def get_vit(tokenizer: str, weights_dir: str | None, hf_model_id: str, seed: int,
            device: str, autocast: str) -> LoadedViT:
    """Build (once per process) and cache the model for this config + weights + compute."""
    source = locate_weights(tokenizer, weights_dir, hf_model_id)
    compute = resolve_compute(device, autocast)
    identity = weight_identity(source, seed)  # file hashes are cached by stat
    key = ("vit", tokenizer, source, identity["sha256"], seed if not source.pretrained else None, compute)
    return weights.cached_model(key, lambda: LoadedViT(
        build_model(tokenizer, source, seed, compute.device, hf_model_id), identity, compute))
