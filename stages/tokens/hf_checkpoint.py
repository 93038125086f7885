"""Any Hugging Face encoder as a tokenizer: naming, finding and describing its checkpoint.

A tokenizer name `hf:<model id>` is looked up in the local Hugging Face cache, offline;
`hf:<folder>` (anything with a `/` that exists as a folder, or starts with `/`, `.` or `~`)
names a checkpoint folder: `config.json` + weights (`*.safetensors`) + the preprocessor
config of its processor (`preprocessor_config.json`). The architecture comes from the
config, the input preparation from the processor: nothing model-specific is a constant here.

A folder with a config and a processor but no weights builds the architecture with a seeded
random init (the weights policy of `weights.py`: allowed on the demo data or with
`--allow-random-init`). A config that needs remote code (`auto_map`) is refused unless
`tokens.trust_remote_code = true`, and then the code files that will run are named.

Everything in this module reads JSON files only (no torch, no transformers).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoprep.pipeline.errors import ConfigError
from emoprep.stages.tokens.family_api import FamilyParams
from emoprep.stages.tokens.weights import WeightsSource, safetensors_files

log = logging.getLogger(__name__)

PREFIX = "hf:"
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
POOLINGS = ("none", "mean", "cls")
# Config keys that do not decide the model's outputs (they differ between saves of one model).
_VOLATILE_CONFIG = ("transformers_version", "_name_or_path", "architectures", "torch_dtype", "dtype")
# Architectures whose first token is a classification token (`pooling = "cls"`).
CLS_MODEL_TYPES = frozenset({"vit", "dinov2", "clip_vision_model", "clip", "audio-spectrogram-transformer",
                             "deit", "beit", "data2vec-vision"})


def is_hf(tokenizer: str) -> bool:
    return tokenizer.startswith(PREFIX)


def target(tokenizer: str) -> str:
    return tokenizer[len(PREFIX):]


def is_folder_name(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or Path(name).expanduser().is_dir()


@dataclass(frozen=True)
class Checkpoint:
    """A resolved `hf:` tokenizer: where its files are and what they say."""

    tokenizer: str
    folder: Path
    config: dict[str, Any]
    processor: dict[str, Any]
    revision: str | None          # HF cache snapshot (commit hash); None for a plain folder
    has_weights: bool

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))

    @property
    def modality(self) -> str:
        """"image" when the processor is an image processor, else "audio"."""
        if self.processor.get("image_processor_type") or "image_mean" in self.processor:
            return "image"
        return "audio"

    @property
    def sampling_rate(self) -> int:
        return int(self.processor.get("sampling_rate") or 16000)

    def source(self) -> WeightsSource:
        """The weights policy's view: a checkpoint folder, or random init wanting this one."""
        if self.has_weights:
            return WeightsSource("dir" if self.revision is None else "hf-cache", target(self.tokenizer), self.folder)
        return WeightsSource("random", self.tokenizer, wanted=target(self.tokenizer))

    def arch(self) -> dict[str, Any]:
        """The config without the keys that vary between saves of one model."""
        return {k: self.config[k] for k in sorted(self.config) if k not in _VOLATILE_CONFIG}

    def preprocessing(self) -> dict[str, Any]:
        return {k: self.processor[k] for k in sorted(self.processor) if k != "processor_class"}


def resolve(tokenizer: str, cache_dir: str | Path | None = None) -> Checkpoint:
    """The checkpoint a `hf:` name stands for; ConfigError (exit 2) saying what is missing."""
    name = target(tokenizer)
    if not name:
        raise ConfigError(f"tokenizer {tokenizer!r}: name a model id or a folder after 'hf:'")
    if is_folder_name(name):
        folder, revision = Path(name).expanduser().resolve(), None
        if not folder.is_dir():
            raise ConfigError(f"tokenizer {tokenizer}: no folder {folder}")
    else:
        folder, revision = _cached_snapshot(name, cache_dir)
    config = _read_json(folder / CONFIG_FILE, tokenizer, "config.json (the model's architecture)")
    processor = _read_json(folder / PREPROCESSOR_FILE, tokenizer,
                           "preprocessor_config.json (how its processor prepares inputs)")
    has_weights = bool(safetensors_files(folder))
    if not has_weights and any(folder.glob("*.bin")):
        raise ConfigError(f"tokenizer {tokenizer}: {folder} holds pickle .bin weights only; emoprep loads "
                          "*.safetensors (SPEC §6). Convert them, or remove the .bin to use a random init")
    return Checkpoint(tokenizer, folder, config, processor, revision, has_weights)


def cache_folder(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _cached_snapshot(model_id: str, cache_dir: str | Path | None) -> tuple[Path, str]:
    """The snapshot folder and revision of `model_id` in the HF cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    cache = cache_folder(cache_dir)
    repo = cache / ("models--" + model_id.replace("/", "--"))
    found = try_to_load_from_cache(model_id, CONFIG_FILE, cache_dir=str(cache)) if repo.is_dir() else None
    if not isinstance(found, str):
        raise ConfigError(f"tokenizer hf:{model_id}: {model_id} is not in the Hugging Face cache "
                          f"(looked in {repo}). On a machine with internet: `hf download {model_id}`, then copy "
                          f"that folder into this machine's cache (HF_HUB_CACHE), or name a checkpoint folder: "
                          f"hf:/path/to/folder")
    snapshot = Path(found).parent
    return snapshot, snapshot.name


def _read_json(path: Path, tokenizer: str, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"tokenizer {tokenizer}: {path.parent} has no {what}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"tokenizer {tokenizer}: {path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"tokenizer {tokenizer}: {path} is not a JSON object")
    return data


# ---- checks of the parameters against the checkpoint (before any item runs) ------------

def n_hidden_states(ckpt: Checkpoint) -> int:
    """How many hidden states `output_hidden_states` gives: embeddings + one per layer."""
    cfg = _encoder_config(ckpt.config)
    layers = cfg.get("encoder_layers", cfg.get("num_hidden_layers"))
    if layers is None:
        raise ConfigError(f"tokenizer {ckpt.tokenizer}: its config names no num_hidden_layers")
    return int(layers) + 1


def layer_indices(ckpt: Checkpoint, layers: Any) -> list[int]:
    """`tokens.layers` as hidden-state indices: "last", "all" or a list (0 = embeddings)."""
    n = n_hidden_states(ckpt)
    if layers == "last":
        return [n - 1]
    if layers == "all":
        return list(range(n))
    if isinstance(layers, (list, tuple)) and layers and all(isinstance(i, int) and not isinstance(i, bool)
                                                            for i in layers):
        bad = [i for i in layers if not 0 <= i < n]
        if bad:
            raise ConfigError(f"tokens.layers {list(layers)}: {bad} out of range; {ckpt.tokenizer} has hidden "
                              f"states 0..{n - 1} (0 = embeddings, {n - 1} = last layer)")
        if len(set(layers)) != len(layers):
            raise ConfigError(f"tokens.layers {list(layers)}: an index is repeated")
        return [int(i) for i in layers]
    raise ConfigError(f"tokens.layers {layers!r}: expected \"last\", \"all\" or a list of hidden-state indices")


def check(tokenizer: str, p: FamilyParams, modality: str | None = None) -> Checkpoint:
    """Refuse what cannot work with this checkpoint (exit 2): the files, remote code, the
    layers, the pooling, and the input modality of the source it is given."""
    ckpt = resolve(tokenizer)
    remote = ckpt.config.get("auto_map")
    if remote and not p.trust_remote_code:
        raise ConfigError(f"tokenizer {tokenizer}: its config needs remote code ({_code_files(ckpt)}); "
                          "set tokens.trust_remote_code = true to run it")
    if remote:
        log.warning(f"{tokenizer}: tokens.trust_remote_code = true runs the checkpoint's own code: "
                    f"{_code_files(ckpt)}")
    layer_indices(ckpt, p.layers)
    if p.pooling not in POOLINGS:
        raise ConfigError(f"tokens.pooling {p.pooling!r}: expected one of {', '.join(POOLINGS)}")
    if p.pooling == "cls" and ckpt.model_type not in CLS_MODEL_TYPES:
        raise ConfigError(f"tokens.pooling = \"cls\": {tokenizer} ({ckpt.model_type}) has no classification "
                          "token; use \"mean\" or \"none\"")
    if float(p.window_s) < 0:
        raise ConfigError(f"tokens.window_s must be ≥ 0 (0 = the model's input limit), got {p.window_s}")
    if modality is not None and modality != ckpt.modality:
        raise ConfigError(f"tokenizer {tokenizer} is an {ckpt.modality} encoder but is given {modality} inputs")
    return ckpt


def _code_files(ckpt: Checkpoint) -> str:
    files = sorted(str(p.name) for p in ckpt.folder.glob("*.py"))
    return ", ".join(files) or f"auto_map {ckpt.config.get('auto_map')}"


def _encoder_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config of the part that encodes (a CLIP/SigLIP vision tower, CLAP's audio tower)."""
    for key in ("vision_config", "audio_config"):
        if isinstance(config.get(key), dict):
            sub: dict[str, Any] = config[key]
            return sub
    return config
