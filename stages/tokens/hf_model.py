"""Running a Hugging Face encoder checkpoint (`hf_checkpoint.py`) as a tokenizer: the model
and its processor from the checkpoint (`AutoModel` / `AutoImageProcessor` /
`AutoFeatureExtractor`), the inputs (224-px PNGs; audio decoded once per song, resampled with
soxr to the processor's `sampling_rate`), audio windows, and every asked layer's hidden
states (`output_hidden_states`), whole or pooled.

Audio windows: a segment longer than the window (`tokens.window_s`, default the model's
input limit: Whisper's `chunk_length`, AST's `max_length` frames of 10 ms, CLAP's
`max_length_s`; models without a limit, such as HuBERT and wav2vec2, take the whole segment)
is cut into windows starting at 0, w, 2w, …; the last, partial window is kept when it holds
at least half a window and dropped otherwise (a segment shorter than one window is one
window). The processor pads or truncates each window to the model's input as it would any
clip. So 46 s at a 10 s window gives 5 windows ([0,10) … [40,46): 6 s ≥ 5 s), and 44 s
gives 4 (the 4 s rest is dropped).

Stored per sample, in `tokens.dtype`: pooling "none" → images [layers, tokens, dim], audio
[layers, windows, tokens, dim]; "mean" → [layers, dim] (mean over tokens, then windows);
"cls" → [layers, dim] (the first token, mean over windows).

Torch and transformers are imported inside functions (the stage catalog imports this module).
"""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoprep.manifests.reasons import NON_FINITE_AUDIO, NON_FINITE_TOKENS, UNREADABLE_AUDIO
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import np
from emoprep.pipeline.reasons import ReasonCode
from emoprep.stages.common.audio_source import read_samples
from emoprep.stages.tokens import weights
from emoprep.stages.tokens.decode import Decoded, decode_image, read_input
from emoprep.stages.tokens.hf_checkpoint import Checkpoint
from emoprep.stages.tokens.weights import Compute

log = logging.getLogger(__name__)
IMAGE_SIZE = 224  # the PNGs the image sources write (spectrograms, FoodPics)
AST_FRAME_SHIFT_S, AST_FRAME_S = 0.010, 0.025  # AST's Kaldi fbank frames (ASTFeatureExtractor)


@dataclass
class LoadedHF:
    """The encoder part of a checkpoint, ready to run, and what its forward needs."""

    model: Any
    identity: dict[str, Any]
    compute: Compute
    processor: Any
    ckpt: Checkpoint
    layers: list[int]
    pooling: str
    window: int | None      # samples per audio window (None: the whole segment)
    accepts: frozenset[str] = field(default_factory=frozenset)  # the forward's argument names
    max_batch: int | None = None  # windows per forward after an out-of-memory error (None: any)


def build_encoder(ckpt: Checkpoint, seed: int, trust_remote_code: bool, device: str) -> Any:
    """The checkpoint's model (`AutoModel`), or its architecture with a seeded random init
    when the checkpoint has no weights; reduced to the part that encodes the modality (a
    CLIP/SigLIP vision tower, CLAP's audio tower, an encoder-decoder's encoder)."""
    from transformers import AutoConfig, AutoModel

    folder = str(ckpt.folder)
    if ckpt.has_weights:
        model = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                          trust_remote_code=trust_remote_code)
    else:
        config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=trust_remote_code)
        weights.warn_random_init(ckpt.tokenizer, seed, f"{ckpt.folder} has no *.safetensors weights")
        model = weights.seeded(seed, lambda: AutoModel.from_config(  # type: ignore[no-untyped-call]
            config, trust_remote_code=trust_remote_code))
    return encoder_part(model, ckpt.modality).to(device).eval()


def encoder_part(model: Any, modality: str) -> Any:
    tower = "vision_model" if modality == "image" else "audio_model"
    if hasattr(model, tower) and type(model).__name__ not in ("CLIPVisionModel", "SiglipVisionModel"):
        return getattr(model, tower)
    if getattr(model.config, "is_encoder_decoder", False):
        return model.get_encoder()
    return model


def build_processor(ckpt: Checkpoint) -> Any:
    if ckpt.modality == "image":
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(str(ckpt.folder), local_files_only=True, backend="pil",
                                                  trust_remote_code=False)
    from transformers import AutoFeatureExtractor

    return AutoFeatureExtractor.from_pretrained(str(ckpt.folder), local_files_only=True, trust_remote_code=False)


def input_limit(ckpt: Checkpoint) -> int | None:
    """Samples one forward pass takes at most, from the processor config (None: no limit)."""
    proc, rate = ckpt.processor, ckpt.sampling_rate
    if proc.get("n_samples"):
        return int(proc["n_samples"])
    if proc.get("chunk_length"):
        return int(proc["chunk_length"]) * rate
    if ckpt.model_type == "audio-spectrogram-transformer":
        frames = int(proc.get("max_length", 1024))
        return round(((frames - 1) * AST_FRAME_SHIFT_S + AST_FRAME_S) * rate)
    if proc.get("max_length_s"):
        return round(float(proc["max_length_s"]) * rate)
    return None


def window_samples(ckpt: Checkpoint, window_s: float) -> int | None:
    """`tokens.window_s` in samples at the model's rate, or the model's input limit (0)."""
    if ckpt.modality != "audio":
        return None
    limit = input_limit(ckpt)
    if float(window_s) > 0:
        want = round(float(window_s) * ckpt.sampling_rate)
        if limit is not None and want > limit:
            raise ConfigError(f"tokens.window_s {window_s}: {ckpt.tokenizer} takes at most "
                              f"{limit / ckpt.sampling_rate:g} s per pass")
        return want
    return limit


def cut_windows(x: np.ndarray, window: int | None) -> list[np.ndarray]:
    """The rule of the module docstring: windows at 0, w, 2w, …; a partial last window kept
    when it holds at least half a window (or is the only one)."""
    if window is None or len(x) <= window:
        return [x]
    out = [x[i:i + window] for i in range(0, len(x), window)]
    if len(out) > 1 and 2 * len(out[-1]) < window:
        out.pop()
    return out


# ---- the model, once per process ---------------------------------------------------

def get_hf(ckpt: Checkpoint, layers: list[int], pooling: str, window_s: float, seed: int,
           trust_remote_code: bool, device: str, autocast: str) -> LoadedHF:
    compute = weights.resolve_compute(device, autocast)
    source = ckpt.source()
    identity = weights.weight_identity(source, seed)
    key = ("hf", ckpt.tokenizer, str(ckpt.folder), identity["sha256"],
           seed if not source.pretrained else None, compute, trust_remote_code)
    loaded: LoadedHF = weights.cached_model(key, lambda: _load(ckpt, seed, trust_remote_code, identity, compute))
    loaded.layers, loaded.pooling, loaded.window = layers, pooling, window_samples(ckpt, window_s)
    return loaded


def _load(ckpt: Checkpoint, seed: int, trust_remote_code: bool, identity: dict[str, Any],
          compute: Compute) -> LoadedHF:
    model = build_encoder(ckpt, seed, trust_remote_code, compute.device)
    accepts = frozenset(inspect.signature(model.forward).parameters)
    return LoadedHF(model, identity, compute, build_processor(ckpt), ckpt, [], "none", None, accepts)


# ---- inputs (in DataLoader workers) ----------------------------------------------------

def load_image(path: Path) -> Decoded:
    return decode_image(path, IMAGE_SIZE)


def load_audio(path: Path | tuple[str, dict[str, Any]], source_rate: int | None, rate: int) -> Decoded:
    """A file or a `chunks`/`clips` view → (float32 mono at `rate`, None, digest) or a reject."""
    import soxr

    if isinstance(path, tuple):
        got, rate_in, sha = _view_samples(*path)
    else:
        got, rate_in, sha = _file_samples(path, source_rate)
    if isinstance(got, tuple):
        return None, got, sha
    if not np.isfinite(got).all():
        return None, (NON_FINITE_AUDIO, "samples that are NaN or infinite"), sha
    if rate_in != rate:
        got = soxr.resample(got, rate_in, rate, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(got, dtype=np.float32), None, sha


def _file_samples(path: Path, source_rate: int | None) -> tuple[Any, int, str]:
    data, unread = read_input(path, UNREADABLE_AUDIO)
    if data is None:
        return unread[1], 0, unread[2]
    sha = unread[2]
    try:
        samples, rate = read_samples(data, Path(path).suffix, source_rate)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's fault
        return (UNREADABLE_AUDIO, f"not decodable audio ({str(exc)[:120]})"), 0, sha
    return samples.mean(axis=1, dtype=np.float32), int(rate), sha


def _view_samples(root: str, view: dict[str, Any]) -> tuple[Any, int, str]:
    from emoprep.stages.common.audio_io import AudioError
    from emoprep.stages.common.audio_source import read_views, song_sha256, view_dataset

    if not root:
        return (UNREADABLE_AUDIO, f"the {view_dataset(view)} root is unknown"), 0, "missing"
    try:
        sha = song_sha256(Path(root), view)
    except AudioError as exc:
        return (exc.reason, exc.message), 0, "unreadable"
    got = read_views([view], {view_dataset(view): root})[0]
    if isinstance(got, AudioError):
        return (got.reason, got.message), 0, sha
    return got, int(view["sample_rate"]), sha


@dataclass
class Prepared:
    """A batch as model input: per sample its number of windows (1 for an image), and the
    windows in groups of equal length, each group already through the processor."""

    counts: list[int]
    groups: list[dict[str, Any]]


def prepare_images(arrays: list[np.ndarray], processor: Any) -> Prepared:
    rgb = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    feats = processor(images=rgb, return_tensors="pt")
    return Prepared([1] * len(arrays), [dict(feats)])


def prepare_audio(arrays: list[np.ndarray], processor: Any, window: int | None) -> Prepared:
    per_sample = [cut_windows(a, window) for a in arrays]
    flat = [w for ws in per_sample for w in ws]
    groups, start = [], 0
    while start < len(flat):  # consecutive windows of one length share a processor call
        end = start + 1
        while end < len(flat) and len(flat[end]) == len(flat[start]):
            end += 1
        feats = processor(flat[start:end], sampling_rate=processor.sampling_rate, return_tensors="pt")
        groups.append(dict(feats))
        start = end
    return Prepared([len(ws) for ws in per_sample], groups)


# ---- forward ---------------------------------------------------------------------------

def hidden_states(loaded: LoadedHF, features: dict[str, Any]) -> np.ndarray:
    """One processor output through the model → float32 [n, layers, tokens, dim] of the asked
    hidden-state indices."""
    import torch

    args = {k: v.to(loaded.compute.device) for k, v in features.items()
            if k in loaded.accepts and isinstance(v, torch.Tensor)}
    with torch.inference_mode(), weights.autocast_context(loaded.compute):
        out = loaded.model(**args, output_hidden_states=True)
    states = [out.hidden_states[i] for i in loaded.layers]
    widths = {tuple(s.shape[1:]) for s in states}
    if len(widths) > 1:
        raise ConfigError(f"tokenizer {loaded.ckpt.tokenizer}: its layers' hidden states differ in shape "
                          f"({sorted(widths)}); pick layers of one shape with tokens.layers")
    arr: np.ndarray = torch.stack(states, dim=1).float().cpu().numpy()
    return arr


def run_group(loaded: LoadedHF, features: dict[str, Any]) -> np.ndarray:
    """`hidden_states` of one processor output, in slices of at most `loaded.max_batch`
    inputs; on an out-of-memory error the slice is halved and retried, and the smaller size
    kept for the rest of the process (one input that does not fit is the error itself)."""
    import torch

    n = next(len(v) for v in features.values() if isinstance(v, torch.Tensor))
    while True:
        size = min(loaded.max_batch or n, n)
        try:
            parts = [hidden_states(loaded, {k: v[i:i + size] if isinstance(v, torch.Tensor) else v
                                            for k, v in features.items()}) for i in range(0, n, size)]
            return np.concatenate(parts)
        except torch.OutOfMemoryError:
            if size <= 1:
                raise
            loaded.max_batch = size // 2
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log.warning(f"{loaded.ckpt.tokenizer}: out of memory with {size} inputs per forward; "
                        f"retrying with {loaded.max_batch}")


def forward(loaded: LoadedHF, batch: Prepared, dtype: str
            ) -> tuple[list[np.ndarray], list[tuple[int, ReasonCode, str]]]:
    """A prepared batch → per sample its stored array (module docstring), and the samples
    whose output is not finite."""
    windows = np.concatenate([run_group(loaded, g) for g in batch.groups]) if batch.groups else None
    out, bad, at = [], [], 0
    for j, n in enumerate(batch.counts):
        w = windows[at:at + n] if windows is not None else np.empty(0)
        at += n
        arr = pool(w, loaded.pooling, loaded.ckpt.modality).astype(dtype)
        if not np.isfinite(arr).all():
            bad.append((j, NON_FINITE_TOKENS, f"model output has NaN/inf in {dtype}"))
        out.append(arr)
    return out, bad


def pool(windows: np.ndarray, pooling: str, modality: str) -> np.ndarray:
    """[windows, layers, tokens, dim] of one sample → what is stored (module docstring)."""
    if pooling == "mean":
        pooled: np.ndarray = windows.mean(axis=2).mean(axis=0)
        return pooled
    if pooling == "cls":
        first: np.ndarray = windows[:, :, 0].mean(axis=0)
        return first
    if modality == "image":
        whole: np.ndarray = windows[0]
        return whole
    layered: np.ndarray = windows.transpose(1, 0, 2, 3)
    return layered
