"""The ViT tokenizers: preprocessing, seeded random init, checkpoints, the architectures' layouts."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from emoprep.manifests.token_store.layout import KNOWN_LAYOUTS
from emoprep.pipeline.errors import ConfigError
from emoprep.stages.tokens import vit, weights
from tests.helpers.token_fixtures import (
    label_rows,
    run_tokens,
    save_tiny_vit_checkpoint,
    split_rows,
    tokens_ctx,
    write_pngs,
)


def test_preprocessing_equals_vit_image_processor():
    from transformers import ViTImageProcessor

    proc = ViTImageProcessor(do_resize=False)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (2, 224, 224), dtype=np.uint8)
    rgb[0, :4, :4] = [[0, 255, 128]]  # the extremes are in there
    ref_rgb = proc(images=[Image.fromarray(a) for a in rgb], return_tensors="np")["pixel_values"]
    ref_gray = proc(images=[Image.fromarray(a).convert("RGB") for a in gray], return_tensors="np")["pixel_values"]
    assert np.array_equal(vit.pixel_values(rgb), ref_rgb)
    assert np.array_equal(vit.pixel_values(gray), ref_gray)
    assert vit.pixel_values(gray).dtype == np.float32 and vit.pixel_values(gray).shape == (2, 3, 224, 224)


def test_preprocessing_refuses_other_inputs():
    with pytest.raises(TypeError):
        vit.pixel_values(np.zeros((1, 224, 224), np.float32))
    with pytest.raises(ValueError, match="got shape"):
        vit.pixel_values(np.zeros((1, 224, 224, 4), np.uint8))


def test_seed_decides_random_init_weights():
    def first_weight(seed):
        m = vit.build_model("vit-tiny-test", weights.WeightsSource("random", "vit-tiny-test"), seed=seed)
        return next(m.parameters()).detach().clone()

    import torch

    torch.manual_seed(123)
    before = torch.rand(1)
    assert torch.equal(first_weight(0), first_weight(0)) and not torch.equal(first_weight(0), first_weight(1))
    torch.manual_seed(123)
    first_weight(0)
    assert torch.equal(torch.rand(1), before)  # the caller's RNG stream is left alone


def test_bad_weights_folders_are_configuration_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="safetensors"):
        vit.locate_weights("vit-tiny-test", str(tmp_path / "empty"))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text("{}")
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ConfigError, match="pickle"):
        vit.locate_weights("vit-tiny-test", str(tmp_path / "bin"))
    wrong = save_tiny_vit_checkpoint(tmp_path / "wide", seed=0, hidden_size=64, intermediate_size=128)
    with pytest.raises(ConfigError, match="hidden_size"):
        vit.build_model("vit-tiny-test", vit.locate_weights("vit-tiny-test", str(wrong)), seed=0)


def test_vit_base_gives_197_by_768_tokens(tmp_path):
    """The real architecture (random init): one image → CLS [768] + patches [196, 768]."""
    labels = label_rows(n_songs=1, chunks=1, n_images=1)
    manifests = {**write_pngs(tmp_path, labels), "split": split_rows(labels, tmp_path)}
    ctx = tokens_ctx(tmp_path, manifests, tokenizer="vit-base-patch16-224", hf_model_id="", batch_size=2)
    index, rejects = run_tokens(ctx, publish=False)
    assert not rejects and len(index) == 2 and index["shape"].map(list).tolist() == [[197, 768]] * 2
    assert np.load(tmp_path / index["cls_path"][0]).shape == (2, 768)
    assert np.load(tmp_path / index["patches_path"][0]).shape == (2, 196, 768)
    assert vit.token_layout("vit-base-patch16-224") == KNOWN_LAYOUTS["vit-base-patch16-224"]
    cfg = vit.arch_config("vit-base-patch16-224")
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.patch_size, cfg.image_size) == (768, 12, 16, 224)
    shutil.rmtree(tmp_path / "tokens")


def test_layout_table_agrees_with_the_architectures():
    for name in vit.ARCHS:
        assert vit.token_layout(name) == KNOWN_LAYOUTS[name]
