"""Tokenizer families for the `tokens` stage: what differs between a ViT and EnCodec.

The stage (stages/tokens.py) plans shards, keys and re-uses shard objects, links them into
store folders and writes the index; it asks a *family* for everything model-specific:

- `layout(tok)` / `store_dtype(tok, p)`: the per-sample arrays and their stored dtype
  (ViT: `cls` [D] + `patches` [P, D] in `tokens.dtype`; EnCodec: `codes` [K, T] int16);
- `object_setup(tok, p)`: what besides the weights and device decides an object's bytes;
- `model(tok, weights_dir, p, device)`: the loaded model (weights policy in stages/weights.py);
- `load` / `preparer` / `forward`: decode one input file and stack a batch (both in
  DataLoader workers: module-level functions, picklable), run the model, split its output
  into the arrays.

`family_of(name)` finds a tokenizer's family; `TOKENIZERS` lists every known name.
"""
from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path
from typing import Any, Callable

import numpy as np
from emoprep.pipeline.errors import ConfigError
from emoprep.stages.tokens import encodec, vit

MISSING, UNREADABLE = "missing", "unreadable"


class ViTFamily:
    """Images and spectrograms (224-px PNGs) → CLS + patch tokens (stages/vit.py)."""

    name = "vit"
    model_type = "vit"
    input_column = "image_path"
    main_array = "patches"
    # Their versions key the shard objects; unchanged since objects were introduced, so the
    # ViT-base objects of earlier runs stay valid.
    libraries = ("torch", "transformers", "numpy", "pillow", "safetensors")
    object_code = "1"
    names = vit.ARCHS

    def check(self, tok: str) -> None:
        vit.check_tokenizer(tok)

    def layout(self, tok: str) -> dict[str, tuple[int, ...]]:
        return vit.token_layout(tok)

    def store_dtype(self, tok: str, p: Any) -> str:
        return p.dtype

    def arch(self, tok: str) -> dict[str, Any]:
        return dict(sorted(vit.ARCHS[tok].items()))

    def locate(self, tok: str, weights_dir: str | None, p: Any) -> Any:
        return vit.locate_weights(tok, weights_dir, p.hf_model_id)

    def warn(self, tok: str, p: Any) -> None:
        vit.warn_random_init(tok, p.seed, p.hf_model_id)

    def compute(self, device: str, autocast: str) -> Any:
        return vit.resolve_compute(device, autocast)

    def model(self, tok: str, weights_dir: str | None, p: Any, device: str) -> Any:
        return vit.get_vit(tok, weights_dir, p.hf_model_id, p.seed, device, p.autocast)

    def batch_size(self, p: Any, device: str) -> int:
        return int(p.batch_size)

    def store_extra(self, tok: str) -> dict[str, Any]:
        return {}

    def load(self, tok: str) -> Callable[..., tuple]:
        return functools.partial(decode_image, size=vit.image_size(tok))

    def load_args(self, sample: dict[str, Any]) -> tuple:
        return ()

    def key_digest(self, sample: dict[str, Any], digest: str) -> str:
        """What keys one input in a shard object: the file's bytes decide the pixels."""
        return digest

    def preparer(self) -> Callable[[list[np.ndarray]], Any]:
        return _prepare_pixels

    def forward(self, loaded: Any, batch: Any, tok: str, p: Any) -> tuple[dict[str, np.ndarray], list[tuple]]:
        """Pixels → {"cls", "patches"} in the stored dtype; non-finite outputs are failures."""
        hidden = vit.forward_tokens(loaded.model, batch, loaded.compute).astype(p.dtype)
        finite = np.isfinite(hidden).all(axis=(1, 2))
        bad = [(j, "non-finite-tokens", f"model output has NaN/inf in {p.dtype}")
               for j in np.flatnonzero(~finite).tolist()]
        return {"cls": hidden[:, 0], "patches": hidden[:, 1:]}, bad


class EncodecFamily:
    """46 s audio clips (FLAC) → EnCodec codes (stages/encodec.py)."""

    name = "encodec"
    model_type = "encodec"
    input_column = "audio_path"
    main_array = "codes"
    libraries = ("torch", "transformers", "numpy", "safetensors", "soundfile", "soxr")
    object_code = "1"
    names = encodec.ARCHS

    def check(self, tok: str) -> None:
        encodec.check_tokenizer(tok)

    def layout(self, tok: str) -> dict[str, tuple[int, ...]]:
        return encodec.token_layout(tok)

    def store_dtype(self, tok: str, p: Any) -> str:
        return "int16"

    def arch(self, tok: str) -> dict[str, Any]:
        spec = encodec.ARCHS[tok]
        return {"config": dict(sorted(spec["config"].items())), "bandwidth": spec["bandwidth"],
                "clip_s": spec["clip_s"], "resampler": encodec.RESAMPLER}

    def locate(self, tok: str, weights_dir: str | None, p: Any) -> Any:
        return encodec.locate_weights(tok, weights_dir)

    def warn(self, tok: str, p: Any) -> None:
        encodec.warn_random_init(tok, p.seed)

    def compute(self, device: str, autocast: str) -> Any:
        return encodec.resolve_compute(device, autocast)

    def model(self, tok: str, weights_dir: str | None, p: Any, device: str) -> Any:
        return encodec.get_encodec(tok, weights_dir, p.seed, device, p.autocast)

    def batch_size(self, p: Any, device: str) -> int:
        """`tokens.audio_batch_size`, or 0 = 1 clip on CPU (batches are no faster there and
        cost ~0.7 GB of activations per 46 s clip), 8 on CUDA."""
        n = int(p.audio_batch_size)
        return n if n > 0 else (8 if device == "cuda" else 1)

    def store_extra(self, tok: str) -> dict[str, Any]:
        return {"codebook_size": encodec.codebook_size(tok), "sample_rate": encodec.sample_rate(tok),
                "bandwidth_kbps": encodec.bandwidth(tok), "clip_s": encodec.ARCHS[tok]["clip_s"]}

    def load(self, tok: str) -> Callable[..., tuple]:
        return functools.partial(_load_clip, tokenizer=tok)

    def load_args(self, sample: dict[str, Any]) -> tuple:
        return (sample.get("sample_rate"),)

    def key_digest(self, sample: dict[str, Any], digest: str) -> str:
        """The file's bytes, and for a float32 `.npy` clip (no rate in the file) the manifest's
        sample rate, which then decides the resampling."""
        if str(sample["input_path"]).lower().endswith(".npy"):
            return f"{digest}@{sample.get('sample_rate')}Hz"
        return digest

    def preparer(self) -> Callable[[list[np.ndarray]], Any]:
        return _prepare_audio

    def forward(self, loaded: Any, batch: Any, tok: str, p: Any) -> tuple[dict[str, np.ndarray], list[tuple]]:
        return {"codes": encodec.encode(loaded.model, batch, tok, loaded.compute)}, []


FAMILIES = (ViTFamily(), EncodecFamily())
TOKENIZERS = {name: fam for fam in FAMILIES for name in fam.names}
ARRAY_ORDER = ("cls", "patches", "codes")  # token order when a reader concatenates arrays


def family_of(tokenizer: str) -> Any:
    try:
        return TOKENIZERS[tokenizer]
    except KeyError:
        raise ConfigError(f"unknown tokenizer {tokenizer!r}; known: {', '.join(sorted(TOKENIZERS))}") from None


# ---- decoding (runs in DataLoader workers) --------------------------------------------

def decode_image(path: Path, size: int) -> tuple[np.ndarray | None, tuple[str, str] | None, str]:
    """A 224-px PNG → (uint8 [H, W] gray or [H, W, 3] RGB, None, SHA-256 of the bytes decoded),
    or (None, (reason, detail), digest) for a reject. `detail` names no path (the caller
    prefixes the manifest path). The size is checked from the header before pixels are
    decoded, so a huge file is refused without being decompressed."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None, ("missing-file", "file not found"), MISSING
    except OSError as exc:
        return None, ("unreadable-image", f"cannot read ({exc.strerror or type(exc).__name__})"), UNREADABLE
    sha = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size != (size, size):
                return None, ("bad-image-size", f"{im.size[0]}x{im.size[1]} px, expected {size}x{size}"), sha
            if im.mode not in ("L", "RGB"):
                return None, ("bad-image-mode", f"mode {im.mode}, expected L (spectrogram) or RGB (image)"), sha
            return np.asarray(im), None, sha
    except UnidentifiedImageError:
        return None, ("unreadable-image", "cannot decode (not an image format Pillow knows)"), sha
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return None, ("unreadable-image", f"cannot decode ({exc})"), sha


def _load_clip(path: Path, source_rate: int | None, tokenizer: str) -> tuple:
    return encodec.load_clip(path, tokenizer, source_rate)


def _prepare_pixels(arrays: list[np.ndarray]) -> Any:
    """Decoded images of a batch → one normalised float32 [b, 3, H, W] tensor (in the worker)."""
    import torch

    return torch.from_numpy(np.stack([vit.pixel_values(a[None])[0] for a in arrays]))


def _prepare_audio(arrays: list[np.ndarray]) -> Any:
    """Equal-length clips of a batch → float32 [b, n] tensor (never padded: a tokenizer's
    clips all have its exact length, or they were rejected while loading)."""
    import torch

    return torch.from_numpy(np.stack(arrays).astype(np.float32, copy=False))


class InputShard:
    """Map-style dataset over one shard's input files (DataLoader needs only these two)."""

    def __init__(self, paths: list[Path], load: Callable[..., tuple], args: list[tuple]):
        self.paths, self.load, self.args = paths, load, args

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, tuple[str, str] | None, str]:
        arr, err, sha = self.load(self.paths[i], *self.args[i])
        return i, arr, err, sha


def collate_inputs(prepare: Callable[[list[np.ndarray]], Any], batch: list
                   ) -> tuple[list[int], Any, list[tuple[int, str, str]], list[tuple[int, str]]]:
    """One batch of decoded inputs → (kept positions, model input, [(position, reason, detail)],
    [(position, sha256)])."""
    ok = [(i, a) for i, a, e, _s in batch if e is None]
    errors = [(i, *e) for i, _a, e, _s in batch if e is not None]
    inputs = prepare([a for _i, a in ok]) if ok else None
    return [i for i, _a in ok], inputs, errors, [(i, s) for i, _a, _e, s in batch]
