"""The tokenizer family of any Hugging Face encoder checkpoint (`hf:<model id>` or
`hf:<folder>`): what the `tokens` stage asks of a family (see `families.py`), answered from
the checkpoint (`hf_checkpoint.py`) and its model and processor (`hf_model.py`).

One array per sample, `hidden`: every asked layer's hidden states, whole or pooled (shapes in
`hf_model.py`). Its per-sample shape is known once the model has run (audio token counts
follow the segment length), so `layout` is None and the shape comes from the shard files.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from emoprep.manifests.token_store.layout import HIDDEN
from emoprep.pipeline.lazy import np
from emoprep.stages.tokens import hf_checkpoint, hf_model, weights
from emoprep.stages.tokens.decode import Decoded
from emoprep.stages.tokens.family_api import FamilyParams
from emoprep.stages.tokens.hf_checkpoint import Checkpoint
from emoprep.stages.tokens.hf_model import LoadedHF, Prepared
from emoprep.stages.tokens.weights import Compute, WeightsSource


def audio_key_digest(sample: dict[str, Any], digest: str) -> str:
    """What keys one audio input in a shard object: the file's bytes, and for a float32
    `.npy` clip (no rate in the file) the manifest's sample rate, which then decides the
    resampling; for a view, the song's bytes and the samples the view takes of it."""
    view = sample.get("view")
    if view is not None:
        return (f"{digest}[{view['offset_samples']}:+{view['n_audio']}→{view['n_samples']}"
                f"@{view['sample_rate']}Hz]")
    if str(sample["input_path"]).lower().endswith(".npy"):
        return f"{digest}@{sample.get('sample_rate')}Hz"
    return digest


@functools.lru_cache(maxsize=64)
def checkpoint(tokenizer: str) -> Checkpoint:
    """The resolved checkpoint of a tokenizer, read once per process."""
    return hf_checkpoint.resolve(tokenizer)


class HFFamily:
    """Any Hugging Face encoder: images (224-px PNGs) or audio → hidden states by layer."""

    name = "hf"
    model_type = "hf"  # never a `--weights` folder's model_type: the checkpoint is in the name
    input_column = "image_path"  # of an image encoder; `input_column_of` says per tokenizer
    main_array = HIDDEN
    libraries = ("torch", "transformers", "numpy", "pillow", "safetensors", "soundfile", "soxr")
    object_code = "1"  # bump when the arrays for the same setup and inputs change: it keys every object
    names: tuple[str, ...] = ()  # no fixed names: any `hf:<id or folder>`

    def check(self, tok: str, p: FamilyParams) -> None:
        checkpoint.cache_clear()
        hf_checkpoint.check(tok, p)

    def input_column_of(self, tok: str) -> str:
        return "image_path" if checkpoint(tok).modality == "image" else "audio_path"

    def layout(self, tok: str, p: FamilyParams) -> dict[str, tuple[int, ...]] | None:
        return None

    def store_dtype(self, tok: str, p: FamilyParams) -> str:
        return p.dtype

    def setup(self, tok: str, p: FamilyParams) -> dict[str, Any]:
        """Layers, pooling and window as they decide the arrays."""
        ckpt = checkpoint(tok)
        return {"layers": hf_checkpoint.layer_indices(ckpt, p.layers), "pooling": p.pooling,
                "window_samples": hf_model.window_samples(ckpt, p.window_s), "modality": ckpt.modality}

    def arch(self, tok: str, p: FamilyParams) -> dict[str, Any]:
        ckpt = checkpoint(tok)
        return {"config": ckpt.arch(), "revision": ckpt.revision, **self.setup(tok, p)}

    def locate(self, tok: str, weights_dir: str | None, p: FamilyParams) -> WeightsSource:
        return checkpoint(tok).source()

    def warn(self, tok: str, p: FamilyParams) -> None:
        weights.warn_random_init(tok, p.seed, f"{checkpoint(tok).folder} has no *.safetensors weights")

    def compute(self, device: str, autocast: str) -> Compute:
        return weights.resolve_compute(device, autocast)

    def model(self, tok: str, weights_dir: str | None, p: FamilyParams, device: str) -> LoadedHF:
        s = self.setup(tok, p)
        return hf_model.get_hf(checkpoint(tok), s["layers"], p.pooling, p.window_s, p.seed,
                               bool(p.trust_remote_code), device, p.autocast)

    def batch_size(self, p: FamilyParams, device: str) -> int:
        return int(p.batch_size)

    def store_extra(self, tok: str, p: FamilyParams) -> dict[str, Any]:
        ckpt = checkpoint(tok)
        s = self.setup(tok, p)
        extra = {"layers": s["layers"], "pooling": p.pooling, "modality": ckpt.modality,
                 "hidden_states": hf_checkpoint.n_hidden_states(ckpt), "model_type": ckpt.model_type,
                 "revision": ckpt.revision}
        if ckpt.modality == "audio":
            extra |= {"sample_rate": ckpt.sampling_rate, "window_samples": s["window_samples"]}
        return extra

    def load(self, tok: str) -> Callable[..., Decoded]:
        ckpt = checkpoint(tok)
        if ckpt.modality == "image":
            return _load_image
        return functools.partial(hf_model.load_audio, rate=ckpt.sampling_rate)

    def load_args(self, sample: dict[str, Any]) -> tuple[Any, ...]:
        return (sample.get("sample_rate"),)

    def key_digest(self, sample: dict[str, Any], digest: str) -> str:
        return audio_key_digest(sample, digest)

    def preprocessing(self, tok: str, source: WeightsSource) -> dict[str, Any] | None:
        return checkpoint(tok).preprocessing()

    def preparer(self, loaded: Any) -> Callable[[list[np.ndarray]], Prepared]:
        if loaded.ckpt.modality == "image":
            return functools.partial(hf_model.prepare_images, processor=loaded.processor)
        return functools.partial(hf_model.prepare_audio, processor=loaded.processor, window=loaded.window)

    def forward(self, loaded: Any, batch: Prepared, tok: str, p: FamilyParams
                ) -> tuple[dict[str, list[np.ndarray]], list[tuple[int, Any, str]]]:
        out, bad = hf_model.forward(loaded, batch, p.dtype)
        return {HIDDEN: out}, bad


def _load_image(path: Any, source_rate: int | None = None) -> Decoded:
    return hf_model.load_image(path)
