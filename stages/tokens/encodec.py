"""EnCodec 24 kHz as an audio tokenizer (thesis Versions 1-2, seed 000 §2.1.4 / §3.2.1).

`encodec-24khz`: Meta's EnCodec 24 kHz model (`transformers.EncodecModel`; checkpoint
`facebook/encodec_24khz`, whose config is `EncodecConfig()`'s defaults) at 24 kbps on the
46.0 s clips of the `clips` stage. Input: the clip (44.1 kHz mono FLAC, 2,028,600 samples)
resampled to 24 kHz with soxr HQ (1,104,000 samples, mono by channel mean). Output: the
residual-vector-quantizer codes, 32 codebooks × 3450 frames, stored as int16 (codes are
< 1024). The arithmetic, all from the config: hop = prod(upsampling_ratios) = 8·5·4·2 = 320
samples, so 75 frames/s and ceil(1,104,000 / 320) = 3450 frames; 24 kbps / (75 frames/s ×
log2(1024) bits) = 32 codebooks.

Weights (SPEC §6, shared code in `weights.py`): `--weights DIR` (an EnCodec checkpoint
folder with safetensors), else the HF cache snapshot of `facebook/encodec_24khz`, else the
same architecture with a seeded random init and a loud warning. A plain `EncodecModel(config)`
has all-zero codebooks (transformers leaves them for k-means to fill), which would make every
code 0; our random init therefore also draws each level's 1024 codebook vectors from a
Gaussian fitted to that level's residuals of the random encoder on a seeded noise probe,
shrunk by sqrt(2 ln 1024 / 128) so each level reduces the residual, as a trained RVQ does.
Random-init codes are deterministic and spread over the codebook, and mean nothing.

Batching does not change the codes. Every clip of a tokenizer has the same length (others are
rejected `bad-audio-length`), so a batch is never padded. The convolutions gave the same
values for a clip alone or in a batch of 4; the LSTM did not (its float32 sums depend on the
batch shape, ~2e-8 here, enough to flip an argmin among 1024 codes now and then), so the LSTM
runs one clip at a time inside a batch, and so does the quantizer, whose distance matrix
product has no guarantee of row-wise batch independence either (tests/stages/tokens/test_encodec.py checks
batch sizes 1, 2, 3, 5 and 7 against `EncodecModel.encode` on one clip, byte for byte). On CPU
a batch is no faster than one clip (bench/encodec_bench.py), so the default audio batch there
is 1; on CUDA it is 8 (`tokens.audio_batch_size`).

Torch and transformers are imported inside functions (the registry imports every stage module).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoprep.manifests.reasons import BAD_AUDIO_LENGTH, NON_FINITE_AUDIO, UNREADABLE_AUDIO
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import np
from emoprep.stages.common.audio_source import read_samples
from emoprep.stages.tokens import weights
from emoprep.stages.tokens.decode import Decoded, read_input
from emoprep.stages.tokens.weights import Compute, WeightsSource

if TYPE_CHECKING:
    import torch

HF_MODEL_ID = "facebook/encodec_24khz"
RESAMPLER = "soxr-HQ"

# Tokenizer name → EncodecConfig overrides, bandwidth (kbps) and clip length (s). The layout
# ([codebooks, frames]) follows from these; the tiny entry lets tests run the real code path.
ARCHS: dict[str, dict[str, Any]] = {
    "encodec-24khz": {"config": {}, "bandwidth": 24.0, "clip_s": 46.0},
    "encodec-tiny-test": {"config": {"num_filters": 4, "hidden_size": 8, "codebook_dim": 8, "codebook_size": 16,
                                     "upsampling_ratios": [4, 4], "num_lstm_layers": 1,
                                     "target_bandwidths": [6.0, 24.0]},
                          "bandwidth": 24.0, "clip_s": 0.5},
}
# Checkpoints that exist for a tokenizer (looked up in the local HF cache).
HUB_IDS = {"encodec-24khz": HF_MODEL_ID}
# Architecture fields a checkpoint must match to be used under a tokenizer name.
_ARCH_FIELDS = ("sampling_rate", "audio_channels", "normalize", "chunk_length_s", "overlap", "hidden_size",
                "num_filters", "num_residual_layers", "upsampling_ratios", "norm_type", "kernel_size",
                "last_kernel_size", "residual_kernel_size", "dilation_growth_rate", "use_causal_conv",
                "pad_mode", "compress", "num_lstm_layers", "codebook_size", "codebook_dim",
                "use_conv_shortcut", "target_bandwidths")
PROBE_FRAMES = 512   # frames of seeded noise the random codebooks are fitted to


def check_tokenizer(tokenizer: str) -> None:
    if tokenizer not in ARCHS:
        raise ConfigError(f"unknown EnCodec tokenizer {tokenizer!r}; known: {', '.join(sorted(ARCHS))}")


def arch_config(tokenizer: str) -> Any:
    """The `transformers.EncodecConfig` of a tokenizer name."""
    from transformers import EncodecConfig

    check_tokenizer(tokenizer)
    return EncodecConfig(**ARCHS[tokenizer]["config"])


def bandwidth(tokenizer: str) -> float:
    check_tokenizer(tokenizer)
    return float(ARCHS[tokenizer]["bandwidth"])


def sample_rate(tokenizer: str) -> int:
    return int(arch_config(tokenizer).sampling_rate)


def clip_samples(tokenizer: str) -> int:
    """Samples of one clip at the model's rate (46.0 s × 24 kHz = 1,104,000)."""
    return round(float(ARCHS[tokenizer]["clip_s"]) * sample_rate(tokenizer))


def codebook_size(tokenizer: str) -> int:
    return int(arch_config(tokenizer).codebook_size)


def token_layout(tokenizer: str) -> dict[str, tuple[int, ...]]:
    """Per-sample array shape {"codes": (codebooks, frames)}, from the config alone (the
    same arithmetic as `EncodecResidualVectorQuantizer` and the causal convolutions)."""
    cfg = arch_config(tokenizer)
    bw = bandwidth(tokenizer)
    if bw not in cfg.target_bandwidths:
        raise ConfigError(f"{tokenizer}: bandwidth {bw} kbps is not one of the model's {cfg.target_bandwidths}")
    per_codebook = math.log2(cfg.codebook_size) * cfg.frame_rate  # bits/s of one codebook
    n_codebooks = int(max(1, math.floor(bw * 1000 / per_codebook)))
    n_frames = math.ceil(clip_samples(tokenizer) / cfg.hop_length)
    return {"codes": (n_codebooks, n_frames)}


# ---- weights -------------------------------------------------------------------------

def locate_weights(tokenizer: str, weights_dir: str | None) -> WeightsSource:
    """An explicit folder wins, then the HF cache (`facebook/encodec_24khz`), else random init."""
    check_tokenizer(tokenizer)
    return weights.locate(tokenizer, weights_dir, HUB_IDS.get(tokenizer), "EnCodec")


def warn_random_init(tokenizer: str, seed: int) -> None:
    hub = HUB_IDS.get(tokenizer)
    wanted = (f"Put {hub} in the HF cache or pass --weights DIR" if hub
              else f"Pass --weights DIR with a {tokenizer} checkpoint")
    weights.warn_random_init(tokenizer, seed, wanted)


def build_model(tokenizer: str, source: WeightsSource, seed: int, device: str = "cpu") -> Any:
    """An `EncodecModel` in eval mode on `device`, from `source` or a seeded random init
    (codebooks included, see the module docstring)."""
    from transformers import EncodecModel

    if source.pretrained:
        model = EncodecModel.from_pretrained(str(source.path), local_files_only=True, use_safetensors=True,
                                             trust_remote_code=False)
        weights.check_arch(tokenizer, model.config, arch_config(tokenizer), _ARCH_FIELDS, "encodec", source)
    else:
        warn_random_init(tokenizer, seed)
        model = weights.seeded(seed, lambda: EncodecModel(arch_config(tokenizer)))
        init_random_codebooks(model.eval(), seed)
    return model.to(device).eval()  # type: ignore[arg-type]  # transformers types .to() as an unbound wrapper


def init_random_codebooks(model: Any, seed: int) -> None:
    """Fill every quantizer level with 1024 vectors drawn from a Gaussian fitted (per
    dimension) to the residuals that level sees on a seeded noise probe, shrunk by
    sqrt(2 ln K / D): the expected best match among K random directions then removes energy
    from the residual instead of adding it. Runs on CPU, so the init does not depend on the
    device the model later runs on."""
    import torch

    cfg = model.config
    gen = torch.Generator().manual_seed(int(seed) + 1)
    n = PROBE_FRAMES * cfg.hop_length
    envelope = torch.exp(torch.linspace(math.log(0.01), math.log(0.5), n))  # quiet to loud
    probe = (torch.randn(n, generator=gen) * envelope)[None, None]
    shrink = math.sqrt(2 * math.log(cfg.codebook_size) / cfg.codebook_dim)
    with torch.inference_mode():
        residual = model.encoder(probe)[0].T.clone()  # [frames, D]
    with torch.no_grad():
        for layer in model.quantizer.layers:
            book = layer.codebook
            mean, std = residual.mean(0), residual.std(0)
            vectors = mean + shrink * std * torch.randn(tuple(book.embed.shape), generator=gen)
            book.embed.copy_(vectors)
            book.embed_avg.copy_(vectors)
            residual = residual - vectors[book.quantize(residual)]


# ---- encode / decode -------------------------------------------------------------------

def encoder_forward(model: Any, x: Any) -> Any:
    """`model.encoder(x)` for a batch [B, 1, n], run one clip at a time so a clip's
    embedding cannot depend on its batch neighbours (SPEC §6: batching must not change
    results). oneDNN and cuDNN pick conv kernels by batch shape — on an Intel Xeon the
    tiny test model's codes changed between batch 1 and 3 while an AMD EPYC's did not —
    and the LSTM mixes nothing across clips only when fed alone. A 46 s clip is already a
    large conv workload: 4 clips took 13.3 s one by one vs 14.8 s batched on 2 cores, so
    batches still pay off where they help (decode, weights, writes) at no cost here."""
    import torch

    return torch.cat([model.encoder(x[i:i + 1]) for i in range(len(x))]) if len(x) else model.encoder(x)


def encode(model: Any, audio: np.ndarray | torch.Tensor, tokenizer: str, compute: Compute) -> np.ndarray:
    """float32 audio [B, n] (NumPy or torch) at the model's rate → int16 codes [B, codebooks, frames]."""
    import torch

    x = audio if isinstance(audio, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(audio, dtype=np.float32))
    x = x.float()[:, None].to(compute.device)
    bw = bandwidth(tokenizer)
    with torch.inference_mode(), weights.autocast_context(compute):
        emb = encoder_forward(model, x)
        codes = [model.quantizer.encode(emb[i:i + 1].float(), bw)[:, 0] for i in range(len(emb))]
    out = torch.stack(codes).cpu().numpy()
    if out.size and (out.min() < 0 or out.max() >= np.iinfo(np.int16).max):
        raise RuntimeError(f"{tokenizer}: codes outside int16 ({out.min()}..{out.max()})")
    return out.astype(np.int16)


def decode(model: Any, codes: np.ndarray) -> np.ndarray:
    """int codes [B, codebooks, frames] → float32 audio [B, frames × hop] (for round trips)."""
    import torch

    c = torch.as_tensor(np.asarray(codes, dtype=np.int64))[None].to(next(model.parameters()).device)
    with torch.inference_mode():
        audio = model.decode(c, [None]).audio_values
    out: np.ndarray = audio[:, 0].float().cpu().numpy()
    return out


@dataclass
class LoadedEncodec:
    model: Any
    identity: dict[str, Any]
    compute: Compute


def resolve_compute(device: str, autocast: str = "auto") -> Compute:
    """As for the ViT, except that `auto` stays float32 on CUDA too: codes are argmins of
    distances, which half-precision activations would flip."""
    return weights.resolve_compute(device, "none" if autocast == "auto" else autocast)


def get_encodec(tokenizer: str, weights_dir: str | None, seed: int, device: str, autocast: str) -> LoadedEncodec:
    """Build (once per process) and cache the model for this config + weights + compute."""
    source = locate_weights(tokenizer, weights_dir)
    compute = resolve_compute(device, autocast)
    identity = weights.weight_identity(source, seed)
    key = ("encodec", tokenizer, source, identity["sha256"], seed if not source.pretrained else None, compute)
    return weights.cached_model(key, lambda: LoadedEncodec(
        build_model(tokenizer, source, seed, compute.device), identity, compute))


# ---- input audio -----------------------------------------------------------------------

def load_clip(path: Path, tokenizer: str, source_rate: int | None = None) -> Decoded:
    """A clip file → (float32 mono at the model's rate, None, SHA-256 of the bytes decoded), or
    (None, (reason, detail), digest) for a reject. `detail` names no path (the caller prefixes
    the manifest path). FLAC/WAV carry their rate; a float32 `.npy` clip needs `source_rate`
    (the manifest's `sample_rate`). The clip must be exactly the tokenizer's length."""
    data, unread = read_input(path, UNREADABLE_AUDIO)
    if data is None:
        return unread
    sha = unread[2]
    suffix = Path(path).suffix
    if suffix.lower() == ".npy" and source_rate is None:
        return None, (UNREADABLE_AUDIO, "an .npy clip without a sample_rate in its manifest row"), sha
    try:
        samples, rate = read_samples(data, suffix, source_rate)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's fault
        return None, (UNREADABLE_AUDIO, f"not decodable audio ({str(exc)[:120]})"), sha
    return _model_input(samples.mean(axis=1, dtype=np.float32), rate, tokenizer, sha)


def load_view_clip(root: str, view: Mapping[Any, Any], tokenizer: str) -> Decoded:
    """A `clips` view → as `load_clip` gives for the materialised file: the song decoded
    once, cut and padded as the clips stage cut it, then resampled to the model's rate.
    `root` is the song's dataset root ("" when unknown). The digest is the song file's
    SHA-256 (what `encode.view_digest` keyed the shard with)."""
    from emoprep.stages.common.audio_io import AudioError
    from emoprep.stages.common.audio_source import read_views, song_sha256, view_dataset

    if not root:
        return None, (UNREADABLE_AUDIO, f"the {view_dataset(view)} root is unknown"), "missing"
    try:
        sha = song_sha256(Path(root), view)
    except AudioError as exc:
        return None, (exc.reason, exc.message), "unreadable"
    got = read_views([view], {view_dataset(view): root})[0]
    if isinstance(got, AudioError):
        return None, (got.reason, got.message), sha
    return _model_input(got, int(view["sample_rate"]), tokenizer, sha)


def _model_input(mono: np.ndarray, rate: int, tokenizer: str, sha: str) -> Decoded:
    """A clip's mono samples → the model's input: exactly the tokenizer's length, finite,
    resampled to its rate (soxr HQ); or the reject."""
    import soxr

    want_s = ARCHS[tokenizer]["clip_s"]
    if len(mono) != round(want_s * rate):
        return None, (BAD_AUDIO_LENGTH, (f"{len(mono)} samples at {rate} Hz ({len(mono) / rate:.3f} s), "
                                         f"{tokenizer} needs clips of exactly {want_s} s")), sha
    if not np.isfinite(mono).all():
        return None, (NON_FINITE_AUDIO, "samples that are NaN or infinite"), sha
    target = sample_rate(tokenizer)
    if rate != target:
        mono = soxr.resample(mono, rate, target, quality="HQ")
    return _fit(mono, clip_samples(tokenizer)), None, sha


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """Resampler output cut or zero-padded to the exact clip length (soxr may differ by one)."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) >= n:
        return np.ascontiguousarray(x[:n])
    return np.concatenate([x, np.zeros(n - len(x), np.float32)])
