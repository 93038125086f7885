"""The ViT tokenizers: preprocessing, seeded random init, checkpoints, the architectures' layouts."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from emoprep.manifests.token_store.layout import KNOWN_LAYOUTS
from emoprep.pipeline.errors import ConfigError
from emoprep.stages.tokens import vit, weights
from emoprep.stages.tokens.encode import object_config
from emoprep.stages.tokens.stage import Tokens
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


IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def test_a_checkpoints_preprocessor_config_decides_the_pixels_and_the_tokens(tmp_path):
    """Another ViT checkpoint (ImageNet mean/std) is preprocessed with its own constants, bit for
    bit as its ViTImageProcessor; the tokens equal its model on those pixels, the constants are
    recorded in the fingerprint, and they key the shard objects apart from the defaults'."""
    from transformers import ViTImageProcessor

    folder = save_tiny_vit_checkpoint(tmp_path / "ckpt", seed=3)
    ViTImageProcessor(do_resize=False, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD).save_pretrained(folder)
    prep = vit.read_preprocessing(vit.locate_weights("vit-tiny-test", str(folder)))
    assert prep.values() == {"image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD, "rescale_factor": 1 / 255}
    assert prep.source.endswith("preprocessor_config.json")
    proc = ViTImageProcessor.from_pretrained(folder)
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (2, 224, 224), dtype=np.uint8)
    lut = vit.pixel_lut(prep)
    assert np.array_equal(vit.pixel_values(rgb, lut), proc(images=list(rgb), return_tensors="np")["pixel_values"])
    ref_gray = proc(images=[Image.fromarray(a).convert("RGB") for a in gray], return_tensors="np")["pixel_values"]
    assert np.array_equal(vit.pixel_values(gray, lut), ref_gray)

    labels = label_rows(n_songs=1, chunks=2, n_images=2)
    manifests = {**write_pngs(tmp_path / "out", labels), "split": split_rows(labels, tmp_path / "out")}
    ctx = tokens_ctx(tmp_path / "out", manifests, weights=str(folder))
    index, rejects = run_tokens(ctx, publish=False)
    assert not rejects and len(index) == 4
    model = vit.build_model("vit-tiny-test", vit.locate_weights("vit-tiny-test", str(folder)), seed=0)
    for r in index.itertuples():
        img = np.asarray(Image.open(tmp_path / "out" / r.image_path))
        pixels = proc(images=[Image.fromarray(img).convert("RGB")], return_tensors="np")["pixel_values"]
        want = vit.forward_tokens(model, pixels, weights.Compute("cpu", None))[0].astype(np.float16)
        np.testing.assert_array_equal(np.load(tmp_path / "out" / r.patches_path)[r.row], want[1:])
    extra = Tokens().fingerprint_extra(ctx)
    assert extra["preprocessing"] == prep.record()
    config = object_config(ctx.params, "cpu", extra["weights"], "vit-tiny-test", extra["preprocessing"])
    default = object_config(ctx.params, "cpu", extra["weights"], "vit-tiny-test", vit.DEFAULT_PREPROCESSING.record())
    assert config["preprocessing"] == prep.values() and "preprocessing" not in default


def test_a_broken_preprocessor_config_is_a_configuration_error(tmp_path):
    folder = save_tiny_vit_checkpoint(tmp_path / "ckpt", seed=3)
    (folder / "preprocessor_config.json").write_text('{"image_mean": [0.5, 0.5], "image_std": 0.5}')
    with pytest.raises(ConfigError, match="preprocessor"):
        vit.read_preprocessing(vit.locate_weights("vit-tiny-test", str(folder)))
    (folder / "preprocessor_config.json").write_text('{"image_std": [0.5, 0, 0.5]}')
    with pytest.raises(ConfigError, match="positive"):
        vit.read_preprocessing(vit.locate_weights("vit-tiny-test", str(folder)))
    (folder / "preprocessor_config.json").unlink()  # none: ViT's defaults, said so
    assert vit.read_preprocessing(vit.locate_weights("vit-tiny-test", str(folder))) == vit.DEFAULT_PREPROCESSING


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
