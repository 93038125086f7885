"""Model weights and compute, shared by every tokenizer (ViT, EnCodec): SPEC §6.

Weight policy: weights come from a checkpoint folder (`--weights DIR`) or the local Hugging
Face cache, offline, from safetensors only and never with remote code. Without weights the
tokenizer builds the same architecture with a seeded random init, says so loudly (a WARNING
once per process), and records `"random-init"` as the weight checksum, so `validate
--require-pretrained` can refuse the store. The weight identity (name + SHA-256 or
random-init + seed) enters the stage fingerprint and every index row.

Also here: resolving the compute device / autocast dtype, torch threads, and the one-slot
model cache (a tokens stage holds one model at a time: a 2048-wide ViT is 1.4 GB).

Torch and huggingface_hub are imported inside functions (the stage registry imports every
module of `emoprep.stages` at start-up).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from emoprep.pipeline.errors import ConfigError

if TYPE_CHECKING:
    from emoprep.pipeline.filehash import FileHasher

log = logging.getLogger(__name__)
T = TypeVar("T")

RANDOM_INIT = "random-init"


# ---- where the weights come from -----------------------------------------------------

@dataclass(frozen=True)
class WeightsSource:
    """A checkpoint folder (`--weights` or the HF cache) or none (seeded random init)."""

    kind: str            # "dir" | "hf-cache" | "random"
    name: str            # HF model id, folder name, or the tokenizer name for random init
    path: Path | None = None
    wanted: str | None = None  # random init: the published checkpoint looked for (None: there is none)

    @property
    def pretrained(self) -> bool:
        return self.kind != "random"


def locate(tokenizer: str, weights_dir: str | None, hf_model_id: str | None, family: str) -> WeightsSource:
    """An explicit folder wins, then the HF cache snapshot of `hf_model_id`, else random init.

    A folder that is not a safetensors checkpoint is a configuration error (exit 2):
    silently falling back to random weights would hide the mistake."""
    if weights_dir:
        folder = Path(weights_dir).expanduser()
        if not (folder / "config.json").is_file() or not safetensors_files(folder):
            raise ConfigError(f"--weights {folder}: expected a Hugging Face {family} checkpoint folder with "
                              "config.json and *.safetensors (SPEC §6; pickle .bin weights are refused)")
        return WeightsSource("dir", folder.resolve().name, folder.resolve())
    if hf_model_id:
        cached = hf_cache_dir(hf_model_id)
        if cached is not None:
            return WeightsSource("hf-cache", hf_model_id, cached)
    return WeightsSource("random", tokenizer, wanted=hf_model_id or None)


def missing_weights_message(tokenizer: str, hub_id: str) -> str:
    """Why a run on real data stops without weights, and the two ways to get them here."""
    cache = "models--" + hub_id.replace("/", "--")
    return (f"no pretrained weights for {tokenizer}: {hub_id} is not in this machine's Hugging Face cache and "
            f"no --weights DIR was given, and this is not the demo data, so the tokens would come from a random "
            f"init (not features to train on). On a machine with internet: `hf download {hub_id}` "
            f"(or `python -c \"from huggingface_hub import snapshot_download; snapshot_download('{hub_id}')\"`), "
            f"then copy ~/.cache/huggingface/hub/{cache} into this machine's cache (HF_HOME/hub, default "
            f"~/.cache/huggingface/hub), or pass --weights DIR with the checkpoint folder (config.json + "
            f"*.safetensors). To tokenize with a seeded random init anyway, pass --allow-random-init")


def safetensors_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).glob("*.safetensors") if p.is_file())


def hf_cache_dir(model_id: str) -> Path | None:
    """The cached snapshot folder of `model_id` if config + safetensors are there.

    `try_to_load_from_cache` only looks at the cache folder (no network call), and the models
    load with `local_files_only=True`; offline mode is not switched on for the process
    (HF_HUB_OFFLINE=1 would cut a notebook that imports emoprep off the Hub).
    A model absent from the cache is answered from the cache's folder layout alone
    (`models--<org>--<name>`): importing `try_to_load_from_cache` costs ~0.3 s of an
    up-to-date run's planning (bench/RESULTS.md, issue 18)."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return None
    if not (Path(constants.HF_HUB_CACHE) / ("models--" + model_id.replace("/", "--"))).is_dir():
        return None
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(model_id, "config.json")
    weights = try_to_load_from_cache(model_id, "model.safetensors")
    if isinstance(config, str) and isinstance(weights, str):
        return Path(weights).parent
    return None


def checkpoint_model_type(folder: str | Path) -> str | None:
    """`model_type` of a checkpoint folder's config.json (None when unreadable)."""
    try:
        return str(json.loads((Path(folder).expanduser() / "config.json").read_text(encoding="utf-8"))["model_type"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---- identity --------------------------------------------------------------------------

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path, hasher: FileHasher | None = None) -> str:
    if hasher is not None:
        return hasher.hash(path)
    from emoprep.pipeline.filehash import hash_file

    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = hash_file(path)
    return _SHA_CACHE[key]


def weights_sha256(folder: Path, hasher: FileHasher | None = None) -> str:
    """Checksum of a checkpoint's safetensors files.

    One file (the usual case): its own SHA-256, which equals the Hub's LFS object id, so it
    can be checked against the model page. Several files: SHA-256 over "name sha256" lines.
    """
    shas = [(f.name, _file_sha256(f, hasher)) for f in safetensors_files(folder)]
    if len(shas) == 1:
        return shas[0][1]
    return hashlib.sha256("".join(f"{n} {s}\n" for n, s in shas).encode()).hexdigest()


def weight_identity(source: WeightsSource, seed: int, hasher: FileHasher | None = None) -> dict[str, Any]:
    """{"name", "sha256" (or "random-init"), "seed"}: enters the fingerprint and every row."""
    if not source.pretrained:
        sha = RANDOM_INIT
    elif source.path is None:
        raise ValueError(f"weights {source.name}: a {source.kind} source without a folder")
    else:
        sha = weights_sha256(source.path, hasher)
    return {"name": source.name, "sha256": sha, "seed": int(seed)}


_WARNED: set[tuple[str, int, str]] = set()


def warn_random_init(tokenizer: str, seed: int, wanted: str) -> None:
    """Say loudly (a WARNING log record, once per process and setup) that the tokens are not
    pretrained; `wanted` tells the user how to get the weights. The CLI shows emoprep's
    warnings on stderr and in the run log; a library user sees them through Python logging."""
    if (tokenizer, seed, wanted) in _WARNED:
        return
    _WARNED.add((tokenizer, seed, wanted))
    log.warning(f"NO PRETRAINED WEIGHTS for {tokenizer}: using a RANDOM INIT (seed {seed}). "
                f"Tokens will be recorded as weights='random-init' and `emoprep validate "
                f"--require-pretrained` will fail. {wanted}.")


def check_arch(tokenizer: str, config: Any, want: Any, fields: tuple[str, ...], model_type: str,
               source: WeightsSource) -> None:
    """Refuse a checkpoint whose architecture is not the tokenizer's (it would load with
    silently re-initialised or mismatched tensors, or change the token layout)."""
    bad = {f: (getattr(config, f, None), getattr(want, f)) for f in fields
           if _norm(getattr(config, f, None)) != _norm(getattr(want, f))}
    if bad or getattr(config, "model_type", "") != model_type:
        raise ConfigError(f"weights {source.path}: not a {tokenizer} checkpoint "
                          f"(model_type={getattr(config, 'model_type', '?')}, differs in {bad})")


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


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


def autocast_context(compute: Compute) -> Any:
    """`torch.autocast` for the resolved compute, or a no-op context for float32."""
    import contextlib

    import torch

    if compute.autocast:
        return torch.autocast(compute.device, dtype=getattr(torch, compute.autocast))
    return contextlib.nullcontext()


def set_threads(threads: int = 0) -> int:
    """Use `threads` intra-op threads, or every core this process may run on (0)."""
    import torch

    n = (threads if threads > 0
         else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def seeded(seed: int, build: Callable[[], Any]) -> Any:
    """Run `build` under `torch.manual_seed(seed)` without disturbing the caller's RNG stream."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


# ---- one model per process -----------------------------------------------------------

_MODELS: dict[tuple[object, ...], Any] = {}


def cached_model(key: tuple[object, ...], build: Callable[[], T]) -> T:
    """Build (once per process) and keep the model for `key`; a new key replaces the old
    model, so a stage that switches tokenizers never holds two large models at once."""
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = build()
    model: T = _MODELS[key]
    return model
