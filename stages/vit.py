"""ViT-base-patch16-224 as a tokenizer: model builder, weight policy, preprocessing.

Default checkpoint: `google/vit-base-patch16-224` (`tokens.hf_model_id`). The thesis (§2.1.4)
names "ViT-base-patch16-224 (standard pre-trained configuration)"; on the Hugging Face Hub
that exact name is Google's standard release, pre-trained on ImageNet-21k and fine-tuned on
ImageNet-1k at 224 px — the checkpoint `ViTModel.from_pretrained("google/vit-base-patch16-224")`
loads. `google/vit-base-patch16-224-in21k` (21k pre-training only) would be a different
model under a name the thesis does not use; set `tokens.hf_model_id` to it (or pass
`--weights DIR`) to tokenize with it instead. The weights' SHA-256 is recorded either way.

Weight policy (SPEC §6): weights come from `--weights DIR` or the local Hugging Face cache,
offline, from safetensors only and never with remote code. Without weights the same
architecture is built with a seeded random init, a loud warning is printed, and the weight
identity says `"random-init"` so `validate --require-pretrained` can refuse the store.

Preprocessing equals `ViTImageProcessor(do_resize=False)` bit for bit (rescale 1/255 in
float64 then float32, normalise mean 0.5 / std 0.5) via a 256-entry lookup table; gray
images (spectrograms) are replicated to 3 channels.

This module imports torch and transformers inside functions only (the stage registry imports
every stage module at start-up).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoprep.errors import ConfigError

log = logging.getLogger(__name__)

HF_MODEL_ID = "google/vit-base-patch16-224"  # see the module docstring
RANDOM_INIT = "random-init"

# Tokenizer name → ViTConfig overrides (empty = ViTConfig() defaults = base/16/224).
# The tiny entry exists so tests exercise the real code path in milliseconds.
ARCHS: dict[str, dict[str, int]] = {
    "vit-base-patch16-224": {},
    "vit-tiny-test": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "intermediate_size": 64},
}
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


# ---- weights -------------------------------------------------------------------------

@dataclass(frozen=True)
class WeightsSource:
    """Where the weights come from: a checkpoint folder (`--weights` or the HF cache) or none."""

    kind: str            # "dir" | "hf-cache" | "random"
    name: str            # HF model id, folder name, or the tokenizer name for random init
    path: Path | None = None

    @property
    def pretrained(self) -> bool:
        return self.kind != "random"


def locate_weights(tokenizer: str, weights_dir: str | None, hf_model_id: str = HF_MODEL_ID) -> WeightsSource:
    """Resolve the weight source: an explicit folder wins, then the HF cache, else random init.

    An explicit folder that is not a safetensors checkpoint is a configuration error (exit 2):
    silently falling back to random weights would hide the mistake.
    """
    check_tokenizer(tokenizer)
    if weights_dir:
        folder = Path(weights_dir).expanduser()
        if not (folder / "config.json").is_file() or not _safetensors_files(folder):
            raise ConfigError(f"--weights {folder}: expected a Hugging Face ViT checkpoint folder with "
                              "config.json and *.safetensors (SPEC §6; pickle .bin weights are refused)")
        return WeightsSource("dir", folder.resolve().name, folder.resolve())
    if tokenizer == "vit-base-patch16-224" and hf_model_id:
        cached = _hf_cache_dir(hf_model_id)
        if cached is not None:
            return WeightsSource("hf-cache", hf_model_id, cached)
    return WeightsSource("random", tokenizer)


def _safetensors_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.safetensors") if p.is_file())


def _hf_cache_dir(model_id: str) -> Path | None:
    """The cached snapshot folder of `model_id` if config + safetensors are there (offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return None
    config = try_to_load_from_cache(model_id, "config.json")
    weights = try_to_load_from_cache(model_id, "model.safetensors")
    if isinstance(config, str) and isinstance(weights, str):
        return Path(weights).parent
    return None


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path, hasher: Any = None) -> str:
    if hasher is not None:
        return hasher.hash(path)
    from emoprep.filehash import hash_file

    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = hash_file(path)
    return _SHA_CACHE[key]


def weights_sha256(folder: Path, hasher: Any = None) -> str:
    """Checksum of a checkpoint's safetensors files.

    One file (the usual case): its own SHA-256, which equals the Hub's LFS object id, so it
    can be checked against the model page. Several files: SHA-256 over "name sha256" lines.
    """
    import hashlib

    files = _safetensors_files(folder)
    shas = [(f.name, _file_sha256(f, hasher)) for f in files]
    if len(shas) == 1:
        return shas[0][1]
    return hashlib.sha256("".join(f"{n} {s}\n" for n, s in shas).encode()).hexdigest()


def weight_identity(source: WeightsSource, seed: int, hasher: Any = None) -> dict[str, Any]:
    """{"name", "sha256" (or "random-init"), "seed"}: enters the fingerprint and every row."""
    sha = weights_sha256(source.path, hasher) if source.pretrained else RANDOM_INIT
    return {"name": source.name, "sha256": sha, "seed": int(seed)}


_WARNED: set[tuple[str, int, str]] = set()


def warn_random_init(tokenizer: str, seed: int, hf_model_id: str = HF_MODEL_ID) -> None:
    """Say loudly (a WARNING log record, once per process) that the tokens are not pretrained,
    naming the checkpoint the configuration asked for (`tokens.hf_model_id`).
    The CLI shows emoprep's warnings on stderr and in the run log; a library user sees it
    through Python logging (stderr by default)."""
    if (tokenizer, seed, hf_model_id) in _WARNED:
        return
    _WARNED.add((tokenizer, seed, hf_model_id))
    if tokenizer != "vit-base-patch16-224":
        wanted = f"Pass --weights DIR with a {tokenizer} checkpoint"
    elif hf_model_id:
        wanted = f"Put {hf_model_id} (tokens.hf_model_id) in the HF cache or pass --weights DIR"
    else:
        wanted = "tokens.hf_model_id is empty, so the HF cache is not searched; pass --weights DIR"
    msg = (f"NO PRETRAINED WEIGHTS for {tokenizer}: using a RANDOM INIT (seed {seed}). "
           f"Tokens will be recorded as weights='random-init' and `emoprep validate "
           f"--require-pretrained` will fail. {wanted}.")
    log.warning(msg)


# ---- compute -------------------------------------------------------------------------

@dataclass(frozen=True)
class Compute:
    """Resolved device and autocast dtype (None = plain float32)."""

    device: str
    autocast: str | None

    @property
    def dtype_name(self) -> str:
        return self.autocast or "float32"


def resolve_compute(device: str, autocast: str = "auto") -> Compute:
    """`device` cpu/cuda/auto; `autocast` auto/none/float16/bfloat16.

    auto: CUDA → float16 autocast (bfloat16 when the GPU supports it), CPU → float32.
    """
    if device == "auto":
        device = "cuda" if _cuda_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r}: expected auto, cpu or cuda")
    aliases = {"fp16": "float16", "bf16": "bfloat16", "fp32": "none", "float32": "none"}
    autocast = aliases.get(autocast, autocast)
    if autocast not in ("auto", "none", "float16", "bfloat16"):
        raise ConfigError(f"tokens.autocast {autocast!r}: expected auto, none, float16 or bfloat16")
    if autocast == "auto":
        autocast = ("bfloat16" if _cuda_bf16() else "float16") if device == "cuda" else "none"
    if device == "cpu" and autocast == "float16":
        raise ConfigError("tokens.autocast float16 needs CUDA; on CPU use none or bfloat16")
    return Compute(device, None if autocast == "none" else autocast)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


# ---- model ---------------------------------------------------------------------------

def build_model(tokenizer: str, source: WeightsSource, seed: int, device: str = "cpu",
                hf_model_id: str = HF_MODEL_ID) -> Any:
    """A `ViTModel` (no pooler) in eval mode on `device`, from `source` or seeded random init
    (`hf_model_id` only names the missing checkpoint in the warning)."""
    import torch
    from transformers import ViTModel

    if source.pretrained:
        model = ViTModel.from_pretrained(str(source.path), local_files_only=True, use_safetensors=True,
                                         trust_remote_code=False, add_pooling_layer=False)
        _check_arch(tokenizer, model.config, source)
    else:
        warn_random_init(tokenizer, seed, hf_model_id)
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream untouched
            torch.manual_seed(seed)
            model = ViTModel(arch_config(tokenizer), add_pooling_layer=False)
    return model.to(device).eval()


def _check_arch(tokenizer: str, config: Any, source: WeightsSource) -> None:
    want = arch_config(tokenizer)
    bad = {f: (getattr(config, f, None), getattr(want, f)) for f in _ARCH_FIELDS
           if getattr(config, f, None) != getattr(want, f)}
    if bad or getattr(config, "model_type", "") != "vit":
        raise ConfigError(f"weights {source.path}: not a {tokenizer} checkpoint "
                          f"(model_type={getattr(config, 'model_type', '?')}, differs in {bad})")


def forward_tokens(model: Any, pixels: Any, compute: Compute) -> np.ndarray:
    """Run the model on a float32 [B,3,H,W] batch → float32 numpy `last_hidden_state` [B,1+P,D]."""
    import contextlib

    import torch

    x = torch.as_tensor(pixels).to(compute.device, non_blocking=True)
    amp = (torch.autocast(compute.device, dtype=getattr(torch, compute.autocast))
           if compute.autocast else contextlib.nullcontext())
    with torch.inference_mode(), amp:
        hidden = model(pixel_values=x).last_hidden_state
    return hidden.float().cpu().numpy()


@dataclass
class LoadedViT:
    model: Any
    identity: dict[str, Any]
    compute: Compute


_MODELS: dict[tuple, LoadedViT] = {}


def get_vit(tokenizer: str, weights_dir: str | None, hf_model_id: str, seed: int,
            device: str, autocast: str) -> LoadedViT:
    """Build (once per process) and cache the model for this config + weights + compute."""
    source = locate_weights(tokenizer, weights_dir, hf_model_id)
    compute = resolve_compute(device, autocast)
    identity = weight_identity(source, seed)  # file hashes are cached by stat
    key = (tokenizer, source, identity["sha256"], seed if not source.pretrained else None, compute)
    if key not in _MODELS:
        _MODELS.clear()  # one model per process: a new config replaces the old one
        model = build_model(tokenizer, source, seed, compute.device, hf_model_id)
        _MODELS[key] = LoadedViT(model, identity, compute)
    return _MODELS[key]


def set_threads(threads: int = 0) -> int:
    """Use `threads` intra-op threads, or every core this process may run on (0)."""
    import torch

    n = threads if threads > 0 else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
