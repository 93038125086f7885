"""Tiny random-init Hugging Face encoder checkpoints, saved with `save_pretrained` (model +
processor) into a folder, for the `hf:` tokenizer tests: one per architecture family the
issue names. Each entry also says how to load the part that encodes, as a user would."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

TINY: dict[str, Any] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def _vit() -> tuple[Any, Any]:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    return (ViTModel(ViTConfig(**TINY, image_size=32, patch_size=8)),
            ViTImageProcessor(size={"height": 32, "width": 32}))


def _dinov2() -> tuple[Any, Any]:
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2,
                       image_size=32, patch_size=8)
    return Dinov2Model(cfg), BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                                               image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


def _clip_vision() -> tuple[Any, Any]:
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    return (CLIPVisionModel(CLIPVisionConfig(**TINY, image_size=32, patch_size=8)),
            CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}))


def _siglip_vision() -> tuple[Any, Any]:
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    return (SiglipVisionModel(SiglipVisionConfig(**TINY, image_size=32, patch_size=8)),
            SiglipImageProcessor(size={"height": 32, "width": 32}))


AST_FRAMES = 100  # 1.015 s of 16 kHz audio per window


def _ast() -> tuple[Any, Any]:
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    cfg = ASTConfig(**TINY, max_length=AST_FRAMES, num_mel_bins=128)
    return ASTModel(cfg), ASTFeatureExtractor(max_length=AST_FRAMES, num_mel_bins=128)


def _wav2vec2() -> tuple[Any, Any]:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    cfg = Wav2Vec2Config(**TINY, conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4),
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    return Wav2Vec2Model(cfg), Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True)


def _hubert() -> tuple[Any, Any]:
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    cfg = HubertConfig(**TINY, conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4),
                       num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    return HubertModel(cfg), Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True)


def _whisper() -> tuple[Any, Any]:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    cfg = WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2, decoder_layers=1,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                        vocab_size=64, max_target_positions=16, pad_token_id=0, bos_token_id=1,
                        eos_token_id=2, decoder_start_token_id=1, suppress_tokens=None,
                        begin_suppress_tokens=None)
    return WhisperModel(cfg), WhisperFeatureExtractor()


def _own_encoder(model: Any) -> Any:
    """The part a user runs for hidden states: Whisper's encoder, else the model itself."""
    return model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) else model


BUILDERS: dict[str, tuple[Callable[[], tuple[Any, Any]], str]] = {
    "vit": (_vit, "image"), "dinov2": (_dinov2, "image"), "clip_vision": (_clip_vision, "image"),
    "siglip_vision": (_siglip_vision, "image"), "ast": (_ast, "audio"), "wav2vec2": (_wav2vec2, "audio"),
    "hubert": (_hubert, "audio"), "whisper": (_whisper, "audio"),
}


def save_checkpoint(folder: Path, arch: str, seed: int = 0, weights: bool = True) -> Path:
    """A tiny `arch` checkpoint (config, safetensors unless `weights=False`, processor config)."""
    build = BUILDERS[arch][0]
    torch.manual_seed(seed)
    model, processor = build()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    if not weights:
        for f in folder.glob("*.safetensors"):
            f.unlink()
    return folder


def load_own(folder: Path) -> tuple[Any, Any]:
    """The checkpoint's own model (the encoding part) and processor, loaded as a user would."""
    from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoModel

    model = _own_encoder(AutoModel.from_pretrained(folder)).eval()
    try:
        proc = AutoImageProcessor.from_pretrained(folder, backend="pil")
    except (OSError, ValueError):
        proc = AutoFeatureExtractor.from_pretrained(folder)
    return model, proc


def place_in_cache(cache: Path, model_id: str, folder: Path, revision: str = "0" * 40) -> Path:
    """Lay `folder`'s files out as the Hugging Face cache holds a download of `model_id`."""
    import shutil

    repo = cache / ("models--" + model_id.replace("/", "--"))
    snap = repo / "snapshots" / revision
    shutil.copytree(folder, snap)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snap
