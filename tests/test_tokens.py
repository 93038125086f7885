"""The tokens stage and the ViT builder: preprocessing, sharding, batching, weights, rejects."""
from __future__ import annotations

import hashlib
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from _token_fixtures import build_store, label_rows, run_tokens, split_rows, tokens_ctx, write_pngs
from emoprep.errors import ConfigError
from emoprep.manifests import token_store as ts
from emoprep.stages import vit
from emoprep.stages.tokens import UNMATCHED_KEY, Tokens
from emoprep.store import natural_key


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def small_run(tmp_path):
    """Labels, split and PNGs of 4 songs × 3 chunks + 5 images, ready for the tokens stage."""
    labels = label_rows(n_songs=4, chunks=3, n_images=5)
    split = split_rows(labels, tmp_path)
    sources = write_pngs(tmp_path, labels)
    return tmp_path, {**sources, "split": split}


# ---- preprocessing ----------------------------------------------------------------------

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
    with pytest.raises(ValueError):
        vit.pixel_values(np.zeros((1, 224, 224, 4), np.uint8))


# ---- plan ---------------------------------------------------------------------------

def test_plan_shards_sorted_ids_deterministically(small_run):
    out_root, manifests = small_run
    ctx = tokens_ctx(out_root, manifests, shard_size=4)
    items = Tokens().plan(ctx)
    ids = [s["sample_id"] for it in items for s in it.payload["samples"]]
    assert ids == sorted(manifests["split"]["sample_id"], key=natural_key)  # the manifest order
    assert [it.key for it in items] == [f"shard-{k:05d}" for k in range(5)]  # 17 ids / 4
    assert [len(it.payload["samples"]) for it in items] == [4, 4, 4, 4, 1]
    shuffled = {k: v.sample(frac=1, random_state=1) for k, v in manifests.items()}
    assert Tokens().plan(tokens_ctx(out_root, shuffled, shard_size=4)) == items
    assert Tokens().inputs(ctx.params) == ["spectrogram", "images", "split"]
    assert Tokens().output_subdir(ctx.params) == "tokens/vit-tiny-test"


def test_unlabelled_and_mismatched_items_are_rejected(small_run):
    out_root, manifests = small_run
    split = manifests["split"]
    dropped = split["sample_id"].iloc[0]
    images = manifests["images"].copy()
    images.loc[0, "modality"] = 1  # says audio, label says image
    ctx = tokens_ctx(out_root, {**manifests, "images": images, "split": split.iloc[1:]})
    items = Tokens().plan(ctx)
    assert items[-1].key == UNMATCHED_KEY
    out = Tokens().process(items[-1], ctx.item_context())
    got = {r.sample_id: r.reason for r in out.rejects}
    assert got == {dropped: "unlabelled", images.loc[0, "sample_id"]: "modality-mismatch"}
    assert all(r.message.startswith(("spectrogram/", "images/")) for r in out.rejects)  # names the file


# ---- process -----------------------------------------------------------------------

def test_shards_hold_the_model_outputs_for_each_labelled_image(small_run):
    out_root, manifests = small_run
    index, rejects = run_tokens(tokens_ctx(out_root, manifests, shard_size=5))
    assert rejects == [] and len(index) == 17
    # reference: the same seeded model run directly on the PNGs, one image at a time
    model = vit.build_model("vit-tiny-test", vit.WeightsSource("random", "vit-tiny-test"), seed=0)
    for r in index.itertuples():
        img = np.asarray(Image.open(out_root / r.image_path))
        hidden = vit.forward_tokens(model, vit.pixel_values(img[None]), vit.Compute("cpu", None))[0]
        cls = np.load(out_root / r.cls_path, allow_pickle=False)
        patches = np.load(out_root / r.patches_path, allow_pickle=False)
        assert cls.dtype == np.float16 and cls.shape[1:] == (32,) and patches.shape[1:] == (196, 32)
        np.testing.assert_array_equal(cls[r.row], hidden[0].astype(np.float16))
        np.testing.assert_array_equal(patches[r.row], hidden[1:].astype(np.float16))
    # rows carry the label columns of the split manifest and the checksums of the files
    lab = manifests["split"].set_index("sample_id")
    for col in ("source_id", "modality", "valence", "arousal", "emotion", "split"):
        assert index.set_index("sample_id")[col].to_dict() == lab[col].to_dict()
    assert (index["shape"].map(list) == pd.Series([[197, 32]] * 17)).all()
    assert set(index["dtype"]) == {"float16"} and set(index["weights"]) == {"random-init"}
    for r in index.drop_duplicates("shard").itertuples():
        assert sha(out_root / r.patches_path) == r.patches_sha256 and sha(out_root / r.cls_path) == r.cls_sha256
    meta = ts.read_store_json(out_root / "tokens/vit-tiny-test/fp0")
    assert meta["n_samples"] == 17 and meta["shape"] == [197, 32] and meta["weights"]["sha256"] == "random-init"


def test_batch_size_and_workers_do_not_change_stored_bytes(tmp_path):
    labels = label_rows(n_songs=3, chunks=4, n_images=6)
    split = split_rows(labels, tmp_path)
    manifests = {**write_pngs(tmp_path, labels), "split": split}
    digests = {}
    for bs, workers in ((1, 0), (7, 0), (16, 0), (7, 2)):
        ctx = tokens_ctx(tmp_path, manifests, out_dir=tmp_path / f"tok-{bs}-{workers}", shard_size=10,
                         batch_size=bs, num_workers=workers)
        index, _ = run_tokens(ctx, publish=False)
        digests[(bs, workers)] = tuple(index["patches_sha256"]) + tuple(index["cls_sha256"])
    assert len(set(digests.values())) == 1, digests


def test_rerun_gives_byte_identical_store(tmp_path):
    a, _ = build_store(tmp_path / "a")
    b, _ = build_store(tmp_path / "b")
    for name in ("cls-00000.npy", "patches-00003.npy", "index.parquet", "store.json"):
        assert sha(tmp_path / "a/tokens/vit-tiny-test/fp0" / name) == sha(tmp_path / "b/tokens/vit-tiny-test/fp0" / name)


def test_bad_images_are_rejected_with_reasons_and_rows_stay_contiguous(small_run):
    out_root, manifests = small_run
    spec = manifests["spectrogram"]
    paths = dict(zip(spec["sample_id"], spec["path"]))
    bad = {"deam:2:0": "unreadable-image", "deam:2:1": "bad-image-size", "deam:3:0": "bad-image-mode",
           "deam:3:1": "missing-file"}
    raw = (out_root / paths["deam:2:0"]).read_bytes()
    (out_root / paths["deam:2:0"]).write_bytes(raw[: len(raw) // 2])           # truncated PNG
    Image.new("L", (224, 200)).save(out_root / paths["deam:2:1"])              # wrong size
    Image.new("RGBA", (224, 224)).save(out_root / paths["deam:3:0"])           # wrong mode
    (out_root / paths["deam:3:1"]).unlink()                                    # gone
    index, rejects = run_tokens(tokens_ctx(out_root, manifests, shard_size=6))
    assert {r.sample_id: r.reason for r in rejects} == bad
    assert all(paths[r.sample_id] in r.message for r in rejects)
    assert len(index) == 17 - 4 and not set(bad) & set(index["sample_id"])
    for shard, grp in index.groupby("shard"):
        assert sorted(grp["row"]) == list(range(len(grp)))
        assert len(np.load(out_root / grp["cls_path"].iloc[0])) == len(grp)


def test_a_shard_with_only_bad_images_writes_nothing(small_run):
    out_root, manifests = small_run
    for p in manifests["images"]["path"]:
        (out_root / p).write_bytes(b"not a png")
    ctx = tokens_ctx(out_root, {**manifests, "spectrogram": manifests["spectrogram"].iloc[:0]}, shard_size=10)
    index, rejects = run_tokens(ctx, publish=False)
    assert index.empty and len(rejects) == 5 and {r.reason for r in rejects} == {"unreadable-image"}
    assert not list(ctx.out_dir.glob("*.npy"))


# ---- weights and compute -------------------------------------------------------------

def test_random_init_is_loud_and_recorded(small_run, caplog):
    out_root, manifests = small_run
    vit._WARNED.clear()
    ctx = tokens_ctx(out_root, manifests, seed=3)
    with caplog.at_level(logging.WARNING):
        extra = Tokens().fingerprint_extra(ctx)
    assert "RANDOM INIT" in caplog.text
    assert extra == {"weights": {"name": "vit-tiny-test", "sha256": "random-init", "seed": 3},
                     "device": "cpu", "compute_dtype": "float32"}


def test_seed_decides_random_init_weights():
    def first_weight(seed):
        m = vit.build_model("vit-tiny-test", vit.WeightsSource("random", "vit-tiny-test"), seed=seed)
        return next(m.parameters()).detach().clone()

    import torch

    torch.manual_seed(123)
    before = torch.rand(1)
    assert torch.equal(first_weight(0), first_weight(0)) and not torch.equal(first_weight(0), first_weight(1))
    torch.manual_seed(123)
    first_weight(0)
    assert torch.equal(torch.rand(1), before)  # the caller's RNG stream is left alone


def _save_tiny_checkpoint(folder, seed, **overrides):
    import torch
    from transformers import ViTModel

    torch.manual_seed(seed)
    cfg = vit.arch_config("vit-tiny-test")
    for k, v in overrides.items():
        setattr(cfg, k, v)
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(folder, safe_serialization=True)
    return folder


def test_weights_folder_is_loaded_checksummed_and_recorded(small_run):
    out_root, manifests = small_run
    folder = _save_tiny_checkpoint(out_root.parent / "ckpt", seed=42)
    ctx = tokens_ctx(out_root, manifests, weights=str(folder), shard_size=20)
    want = sha(folder / "model.safetensors")
    assert Tokens().fingerprint_extra(ctx)["weights"] == {"name": "ckpt", "sha256": want, "seed": 0}
    index, _ = run_tokens(ctx, publish=False)
    assert set(index["weights"]) == {want}
    # the tokens are the checkpoint's, not a random init's
    from transformers import ViTModel

    model = ViTModel.from_pretrained(folder, add_pooling_layer=False).eval()
    r = index.iloc[0]
    img = np.asarray(Image.open(out_root / r.image_path))
    ref = vit.forward_tokens(model, vit.pixel_values(img[None]), vit.Compute("cpu", None))[0]
    np.testing.assert_array_equal(np.load(out_root / r.cls_path)[r.row], ref[0].astype(np.float16))


def test_bad_weights_folders_are_configuration_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="safetensors"):
        vit.locate_weights("vit-tiny-test", str(tmp_path / "empty"))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text("{}")
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ConfigError, match="pickle"):
        vit.locate_weights("vit-tiny-test", str(tmp_path / "bin"))
    wrong = _save_tiny_checkpoint(tmp_path / "wide", seed=0, hidden_size=64, intermediate_size=128)
    with pytest.raises(ConfigError, match="hidden_size"):
        vit.build_model("vit-tiny-test", vit.locate_weights("vit-tiny-test", str(wrong)), seed=0)


def test_compute_resolution():
    assert vit.resolve_compute("cpu", "auto") == vit.Compute("cpu", None)
    assert vit.resolve_compute("cpu", "bf16").dtype_name == "bfloat16"
    assert vit.resolve_compute("auto", "none").device in ("cpu", "cuda")
    for device, autocast in (("cpu", "float16"), ("tpu", "auto"), ("cpu", "int8")):
        with pytest.raises(ConfigError):
            vit.resolve_compute(device, autocast)


def test_bfloat16_autocast_on_cpu_is_recorded_and_close(small_run):
    out_root, manifests = small_run
    ref, _ = run_tokens(tokens_ctx(out_root, manifests, out_dir=out_root / "f32"), publish=False)
    ctx = tokens_ctx(out_root, manifests, out_dir=out_root / "bf16", autocast="bfloat16")
    assert Tokens().fingerprint_extra(ctx)["compute_dtype"] == "bfloat16"
    got, _ = run_tokens(ctx, publish=False)
    a = np.load(out_root / ref["patches_path"].iloc[0]).astype(np.float32)
    b = np.load(out_root / got["patches_path"].iloc[0]).astype(np.float32)
    assert not np.array_equal(a, b) and np.abs(a - b).max() < 0.1 * np.abs(a).max()


@pytest.mark.parametrize("bad", [{"dtype": "bfloat16"}, {"shard_size": 0}, {"batch_size": 0},
                                 {"tokenizer": "vit-huge"}, {"sources": ()}])
def test_impossible_parameters_are_configuration_errors(small_run, bad):
    out_root, manifests = small_run
    with pytest.raises(ConfigError):
        Tokens().plan(tokens_ctx(out_root, manifests, **bad))


def test_float32_store(small_run):
    out_root, manifests = small_run
    index, _ = run_tokens(tokens_ctx(out_root, manifests, dtype="float32"), publish=False)
    assert np.load(out_root / index["cls_path"].iloc[0]).dtype == np.float32 and set(index["dtype"]) == {"float32"}


def test_vit_base_gives_197_by_768_tokens(tmp_path):
    """The real architecture (random init): one image → CLS [768] + patches [196, 768]."""
    labels = label_rows(n_songs=1, chunks=1, n_images=1)
    manifests = {**write_pngs(tmp_path, labels), "split": split_rows(labels, tmp_path)}
    ctx = tokens_ctx(tmp_path, manifests, tokenizer="vit-base-patch16-224", hf_model_id="", batch_size=2)
    index, rejects = run_tokens(ctx, publish=False)
    assert not rejects and len(index) == 2 and index["shape"].map(list).tolist() == [[197, 768]] * 2
    assert np.load(tmp_path / index["cls_path"][0]).shape == (2, 768)
    assert np.load(tmp_path / index["patches_path"][0]).shape == (2, 196, 768)
    assert vit.token_layout("vit-base-patch16-224") == ts.KNOWN_LAYOUTS["vit-base-patch16-224"]
    cfg = vit.arch_config("vit-base-patch16-224")
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.patch_size, cfg.image_size) == (768, 12, 16, 224)
    shutil.rmtree(tmp_path / "tokens")


def test_layout_table_agrees_with_the_architectures():
    for name in vit.ARCHS:
        assert vit.token_layout(name) == ts.KNOWN_LAYOUTS[name]


# ---- through the real runner -------------------------------------------------------------

def _fake_upstream(monkeypatch):
    """Stand-ins for `labels` and an image-producing stage, only inside one test."""
    from dataclasses import dataclass as _dc

    from emoprep import stage as stage_mod
    from emoprep.atomic import atomic_path
    from emoprep.stage import Outcome, Stage, WorkItem

    class FakeLabels(Stage):
        name = "labels"

        def run(self, ctx):
            return Outcome(rows=label_rows(n_songs=11, chunks=2, n_images=4).to_dict("records"))

    class FakePngs(Stage):
        name = "fake-pngs"
        default_inputs = ("labels",)

        @_dc(frozen=True)
        class Params:
            pass

        def plan(self, ctx):
            return [WorkItem(r.sample_id, {"modality": int(r.modality), "source_id": r.source_id})
                    for r in ctx.input_manifest("labels").itertuples()]

        def process(self, item, ctx):
            rng = np.random.default_rng(sum(map(ord, item.key)))
            shape = (224, 224) if item.payload["modality"] else (224, 224, 3)
            out = ctx.out_dir / f"{item.key.replace(':', '_')}.png"
            with atomic_path(out) as tmp:
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(tmp, format="PNG")
            return Outcome(rows=[{"sample_id": item.key, **item.payload, "path": ctx.rel(out)}])

    stage_mod.load_builtin_stages()  # the real ones first, so the patch is what stays visible
    monkeypatch.setitem(stage_mod._REGISTRY, "labels", FakeLabels())
    monkeypatch.setitem(stage_mod._REGISTRY, "fake-pngs", FakePngs())


def test_runner_builds_a_valid_store_and_skips_it_next_time(tmp_path, monkeypatch):
    import json

    from emoprep.executors import InlineExecutor
    from emoprep.manifests.reader import TokenDataset
    from emoprep.manifests.validate import validate
    from emoprep.recipe import Recipe
    from emoprep.runner import Runner

    _fake_upstream(monkeypatch)
    recipe = Recipe(name="t", targets=["tokens"], sections={
        "tokens": {"tokenizer": "vit-tiny-test", "sources": ["fake-pngs"], "shard_size": 8, "num_workers": 0}})
    outs = {}
    for name in ("a", "b"):
        out = tmp_path / name
        summary = Runner(recipe, out, None, "cpu").run("tokens", InlineExecutor())
        assert [s.status for s in summary] == ["ran"] * 4 and summary[-1].rows == 26
        outs[name] = out
    out = outs["a"]
    report = validate(out)
    assert report.ok, [(c.name, c.offenders) for c in report.failures]
    again = Runner(recipe, out, None, "cpu").run("tokens", InlineExecutor())
    assert [s.status for s in again] == ["up-to-date"] * 4
    done = json.loads(next((out / "tokens/vit-tiny-test").glob("*/_DONE.json")).read_text())
    assert done["components"]["extra"] == {"weights": {"name": "vit-tiny-test", "sha256": "random-init", "seed": 0},
                                           "device": "cpu", "compute_dtype": "float32"}
    index = pd.read_parquet(out / "manifests/tokens.parquet")
    assert index["sample_id"].tolist()[:3] == ["deam:2:0", "deam:2:1", "deam:3:0"]  # natural order
    assert len(TokenDataset(out, tokenizer="vit-tiny-test", enhanced=True)[0]["tokens"][0]) == 35
    # same inputs, same recipe → the same bytes in a second output folder
    for rel in [*index["cls_path"].unique(), *index["patches_path"].unique(), "manifests/tokens.parquet",
                "manifests/split.parquet"]:
        assert sha(outs["a"] / rel) == sha(outs["b"] / rel), rel
