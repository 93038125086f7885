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

Preprocessing equals `ViTImageProcessor(do_resize=False)` bit for bit (rescale in float64
then float32, normalise per channel) via one 256-entry lookup table per channel; gray images
(spectrograms) are replicated to 3 channels. The constants come from the checkpoint's
`preprocessor_config.json` when it has one (`image_mean`, `image_std`, `rescale_factor`,
`do_rescale`, `do_normalize`), else ViT's defaults (mean 0.5, std 0.5, 1/255 — also Google's
values); which one was used enters the tokens' fingerprint.

This module imports torch and transformers inside functions only (the stage registry imports
every stage module at start-up).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from emoprep.manifests.token_store.layout import RANDOM_INIT_BY_DESIGN
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import np
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


PREPROCESSOR_FILE = "preprocessor_config.json"


@dataclass(frozen=True)
class Preprocessing:
    """How uint8 pixels become model input: ViTImageProcessor's rescale, then normalise."""

    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    rescale_factor: float = 1 / 255
    source: str = "ViT default"  # or the checkpoint's preprocessor_config.json

    def values(self) -> dict[str, Any]:
        return {"image_mean": list(self.image_mean), "image_std": list(self.image_std),
                "rescale_factor": self.rescale_factor}

    def record(self) -> dict[str, Any]:
        return {**self.values(), "source": self.source}


DEFAULT_PREPROCESSING = Preprocessing()


def read_preprocessing(source: WeightsSource) -> Preprocessing:
    """The checkpoint's preprocessing constants, or ViT's defaults when it has none (random
    init, or a folder without preprocessor_config.json)."""
    import json

    if not source.pretrained or source.path is None or not (source.path / PREPROCESSOR_FILE).is_file():
        return DEFAULT_PREPROCESSING
    path = source.path / PREPROCESSOR_FILE
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
        mean = _triple(cfg.get("image_mean", 0.5)) if cfg.get("do_normalize", True) else (0.0, 0.0, 0.0)
        std = _triple(cfg.get("image_std", 0.5)) if cfg.get("do_normalize", True) else (1.0, 1.0, 1.0)
        rescale = float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 1.0
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: not a usable image preprocessor config ({exc})") from None
    if not all(np.isfinite([*mean, *std, rescale])) or min(std) <= 0 or rescale <= 0:
        raise ConfigError(f"{path}: image_std and rescale_factor must be positive and finite "
                          f"(image_mean {mean}, image_std {std}, rescale_factor {rescale})")
    return Preprocessing(mean, std, rescale, f"{source.name}/{PREPROCESSOR_FILE}")


def _triple(value: Any) -> tuple[float, float, float]:
    vals = [float(value)] * 3 if isinstance(value, int | float) else [float(v) for v in value]
    if len(vals) != 3:
        raise ValueError(f"expected 3 channel values, got {vals}")
    return vals[0], vals[1], vals[2]


@functools.cache
def pixel_lut(prep: Preprocessing = DEFAULT_PREPROCESSING) -> np.ndarray:
    """uint8 → float32 per channel [3, 256], exactly as ViTImageProcessor computes it (made
    once per preprocessing, on first use: importing this module must not import numpy)."""
    rescaled = (np.arange(256, dtype=np.float64) * prep.rescale_factor).astype(np.float32)
    lut = np.stack([(rescaled - np.float32(m)) / np.float32(s)
                    for m, s in zip(prep.image_mean, prep.image_std, strict=True)])
    lut.flags.writeable = False  # one shared copy per preprocessing
    return lut



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

def pixel_values(images: np.ndarray, lut: np.ndarray | None = None) -> np.ndarray:
    """uint8 images [B, H, W] (gray) or [B, H, W, 3] (RGB) → float32 [B, 3, H, W] model input
    (`lut`: `pixel_lut` of the checkpoint's preprocessing; ViTImageProcessor's defaults if None)."""
    lut = pixel_lut() if lut is None else lut
    if images.dtype != np.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    if images.ndim == 3:  # gray: the same pixel in the 3 channels, each normalised with its own constants
        return np.stack([lut[c][images] for c in range(3)], axis=1)
    if images.ndim == 4 and images.shape[-1] == 3:
        return np.stack([lut[c][images[..., c]] for c in range(3)], axis=1)
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
    preprocessing: Preprocessing = DEFAULT_PREPROCESSING


def get_vit(tokenizer: str, weights_dir: str | None, hf_model_id: str, seed: int,
            device: str, autocast: str) -> LoadedViT:
    """Build (once per process) and cache the model for this config + weights + compute."""
    source = locate_weights(tokenizer, weights_dir, hf_model_id)
    compute = resolve_compute(device, autocast)
    identity = weight_identity(source, seed)  # file hashes are cached by stat
    key = ("vit", tokenizer, source, identity["sha256"], seed if not source.pretrained else None, compute)
    return weights.cached_model(key, lambda: LoadedViT(
        build_model(tokenizer, source, seed, compute.device, hf_model_id), identity, compute,
        read_preprocessing(source)))
