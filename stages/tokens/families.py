"""Tokenizer families for the `tokens` stage: what differs between a ViT and EnCodec.

The stage (`stage.py`) plans shards, keys and re-uses shard objects (`encode.py`), links them
into store folders and writes the index; it asks a *family* for everything model-specific:

- `layout(tok)` / `store_dtype(tok, p)`: the per-sample arrays and their stored dtype
  (ViT: `cls` [D] + `patches` [P, D] in `tokens.dtype`; EnCodec: `codes` [K, T] int16);
- `arch(tok)`: what besides the weights and device decides an object's bytes;
- `model(tok, weights_dir, p, device)`: the loaded model (weights policy in `weights.py`);
- `load` / `preparer` / `forward`: decode one input file and stack a batch (both in
  DataLoader workers: module-level functions, picklable; the shared part is `decode.py`),
  run the model, split its output into the arrays.

`family_of(name)` finds a tokenizer's family; `TOKENIZERS` lists every known name.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emoprep.manifests.reasons import NON_FINITE_TOKENS
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import np
from emoprep.pipeline.reasons import ReasonCode
from emoprep.stages.tokens import encodec, vit, weights
from emoprep.stages.tokens.decode import Decoded, decode_image
from emoprep.stages.tokens.encodec import LoadedEncodec
from emoprep.stages.tokens.family_api import FamilyParams as TokensParams
from emoprep.stages.tokens.hf_family import HFFamily, audio_key_digest
from emoprep.stages.tokens.hf_model import LoadedHF
from emoprep.stages.tokens.vit import LoadedViT
from emoprep.stages.tokens.weights import Compute, WeightsSource

# A model as a family loads it, and a sample the model failed on: (position in the batch,
# reason, detail).
LoadedModel = LoadedViT | LoadedEncodec | LoadedHF
Failure = tuple[int, ReasonCode, str]
INPUT_COLUMNS = ("image_path", "audio_path")  # the index column naming a sample's input, by modality


class ViTFamily:
    """Images and spectrograms (224-px PNGs) → CLS + patch tokens (`vit.py`)."""

    name = "vit"
    model_type = "vit"
    input_column = "image_path"
    main_array = "patches"
    # Their versions key the shard objects; unchanged since objects were introduced, so the
    # ViT-base objects of earlier runs stay valid.
    libraries = ("torch", "transformers", "numpy", "pillow", "safetensors")
    object_code = "1"  # bump when the arrays for the same setup and inputs change: it keys every object
    names = vit.ARCHS

    def check(self, tok: str, p: TokensParams) -> None:
        vit.check_tokenizer(tok)

    def input_column_of(self, tok: str) -> str:
        return self.input_column

    def layout(self, tok: str, p: TokensParams) -> dict[str, tuple[int, ...]]:
        return vit.token_layout(tok)

    def store_dtype(self, tok: str, p: TokensParams) -> str:
        return p.dtype

    def arch(self, tok: str, p: TokensParams) -> dict[str, Any]:
        return dict(sorted(vit.ARCHS[tok].items()))

    def locate(self, tok: str, weights_dir: str | None, p: TokensParams) -> WeightsSource:
        return vit.locate_weights(tok, weights_dir, p.hf_model_id)

    def warn(self, tok: str, p: TokensParams) -> None:
        vit.warn_random_init(tok, p.seed, p.hf_model_id)

    def compute(self, device: str, autocast: str) -> Compute:
        return weights.resolve_compute(device, autocast)

    def model(self, tok: str, weights_dir: str | None, p: TokensParams, device: str) -> LoadedModel:
        return vit.get_vit(tok, weights_dir, p.hf_model_id, p.seed, device, p.autocast)

    def batch_size(self, p: TokensParams, device: str) -> int:
        return int(p.batch_size)

    def store_extra(self, tok: str, p: TokensParams) -> dict[str, Any]:
        return {}

    def load(self, tok: str) -> Callable[..., Decoded]:
        return functools.partial(decode_image, size=vit.image_size(tok))

    def load_args(self, sample: dict[str, Any]) -> tuple[Any, ...]:
        return ()

    def key_digest(self, sample: dict[str, Any], digest: str) -> str:
        """What keys one input in a shard object: the file's bytes decide the pixels."""
        return digest

    def preprocessing(self, tok: str, source: WeightsSource) -> dict[str, Any] | None:
        """The checkpoint's preprocessor_config.json constants, or ViT's defaults (recorded)."""
        return vit.read_preprocessing(source).record()

    def preparer(self, loaded: LoadedModel) -> Callable[[list[np.ndarray]], Any]:
        prep = loaded.preprocessing if isinstance(loaded, LoadedViT) else vit.DEFAULT_PREPROCESSING
        return functools.partial(_prepare_pixels, lut=vit.pixel_lut(prep))

    def forward(self, loaded: LoadedModel, batch: Any, tok: str, p: TokensParams
                ) -> tuple[dict[str, np.ndarray], list[Failure]]:
        """Pixels → {"cls", "patches"} in the stored dtype; non-finite outputs are failures."""
        hidden = vit.forward_tokens(loaded.model, batch, loaded.compute).astype(p.dtype)
        finite = np.isfinite(hidden).all(axis=(1, 2))
        bad = [(j, NON_FINITE_TOKENS, f"model output has NaN/inf in {p.dtype}")
               for j in np.flatnonzero(~finite).tolist()]
        return {"cls": hidden[:, 0], "patches": hidden[:, 1:]}, bad


class EncodecFamily:
    """46 s audio clips (FLAC) → EnCodec codes (`encodec.py`)."""

    name = "encodec"
    model_type = "encodec"
    input_column = "audio_path"
    main_array = "codes"
    libraries = ("torch", "transformers", "numpy", "safetensors", "soundfile", "soxr")
    object_code = "1"  # bump when the arrays for the same setup and inputs change: it keys every object
    names = encodec.ARCHS

    def check(self, tok: str, p: TokensParams) -> None:
        encodec.check_tokenizer(tok)

    def input_column_of(self, tok: str) -> str:
        return self.input_column

    def layout(self, tok: str, p: TokensParams) -> dict[str, tuple[int, ...]]:
        return encodec.token_layout(tok)

    def store_dtype(self, tok: str, p: TokensParams) -> str:
        return "int16"

    def arch(self, tok: str, p: TokensParams) -> dict[str, Any]:
        spec = encodec.ARCHS[tok]
        return {"config": dict(sorted(spec["config"].items())), "bandwidth": spec["bandwidth"],
                "clip_s": spec["clip_s"], "resampler": encodec.RESAMPLER}

    def locate(self, tok: str, weights_dir: str | None, p: TokensParams) -> WeightsSource:
        return encodec.locate_weights(tok, weights_dir)

    def warn(self, tok: str, p: TokensParams) -> None:
        encodec.warn_random_init(tok, p.seed)

    def compute(self, device: str, autocast: str) -> Compute:
        return encodec.resolve_compute(device, autocast)

    def model(self, tok: str, weights_dir: str | None, p: TokensParams, device: str) -> LoadedModel:
        return encodec.get_encodec(tok, weights_dir, p.seed, device, p.autocast)

    def batch_size(self, p: TokensParams, device: str) -> int:
        """`tokens.audio_batch_size`, or 0 = 1 clip on CPU (batches are no faster there and
        cost ~0.7 GB of activations per 46 s clip), 8 on CUDA."""
        n = int(p.audio_batch_size)
        return n if n > 0 else (8 if device == "cuda" else 1)

    def store_extra(self, tok: str, p: TokensParams) -> dict[str, Any]:
        return {"codebook_size": encodec.codebook_size(tok), "sample_rate": encodec.sample_rate(tok),
                "bandwidth_kbps": encodec.bandwidth(tok), "clip_s": encodec.ARCHS[tok]["clip_s"]}

    def load(self, tok: str) -> Callable[..., Decoded]:
        return functools.partial(_load_clip, tokenizer=tok)

    def load_args(self, sample: dict[str, Any]) -> tuple[Any, ...]:
        return (sample.get("sample_rate"),)

    def key_digest(self, sample: dict[str, Any], digest: str) -> str:
        return audio_key_digest(sample, digest)

    def preprocessing(self, tok: str, source: WeightsSource) -> dict[str, Any] | None:
        return None  # the clip's rate and length are the architecture's (`arch`)

    def preparer(self, loaded: LoadedModel) -> Callable[[list[np.ndarray]], Any]:
        return _prepare_audio

    def forward(self, loaded: LoadedModel, batch: Any, tok: str, p: TokensParams
                ) -> tuple[dict[str, np.ndarray], list[Failure]]:
        return {"codes": encodec.encode(loaded.model, batch, tok, loaded.compute)}, []


Family = ViTFamily | EncodecFamily | HFFamily
HF_FAMILY = HFFamily()
FAMILIES: tuple[Family, ...] = (ViTFamily(), EncodecFamily(), HF_FAMILY)
TOKENIZERS: dict[str, Family] = {name: fam for fam in FAMILIES for name in fam.names}


def family_of(tokenizer: str) -> Family:
    """The family of a tokenizer name: a fixed name (ViT, EnCodec), or `hf:<id or folder>`."""
    if tokenizer.startswith("hf:"):
        return HF_FAMILY
    try:
        return TOKENIZERS[tokenizer]
    except KeyError:
        raise ConfigError(f"unknown tokenizer {tokenizer!r}; known: {', '.join(sorted(TOKENIZERS))}, "
                          "or hf:<model id> / hf:<checkpoint folder>") from None


# ---- model-specific loading and batching (runs in DataLoader workers) ----------------

def _load_clip(path: Path | tuple[str, dict[str, Any]], source_rate: int | None, tokenizer: str) -> Decoded:
    if isinstance(path, tuple):  # a view: (dataset root, view columns)
        return encodec.load_view_clip(path[0], path[1], tokenizer)
    return encodec.load_clip(path, tokenizer, source_rate)


def _prepare_pixels(arrays: list[np.ndarray], lut: np.ndarray) -> Any:
    """Decoded images of a batch → one normalised float32 [b, 3, H, W] tensor (in the worker)."""
    import torch

    return torch.from_numpy(np.stack([vit.pixel_values(a[None], lut)[0] for a in arrays]))


def _prepare_audio(arrays: list[np.ndarray]) -> Any:
    """Equal-length clips of a batch → float32 [b, n] tensor (never padded: a tokenizer's
    clips all have its exact length, or they were rejected while loading)."""
    import torch

    return torch.from_numpy(np.stack(arrays).astype(np.float32, copy=False))
