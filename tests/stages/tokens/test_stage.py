"""The tokens stage and the ViT builder: preprocessing, sharding, batching, weights, rejects."""
from __future__ import annotations

import hashlib
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.helpers.paths import REPO
from tests.helpers.token_fixtures import (build_store, install_fake_upstream, label_rows, run_tokens, split_rows,
                             tiny_recipe, tokens_ctx, write_pngs)
from emoprep.pipeline.errors import ConfigError
from emoprep.manifests.token_store import layout as ts
from emoprep.stages.tokens import vit
from emoprep.stages.tokens.stage import UNMATCHED_KEY, Tokens, objects_dir
from emoprep.pipeline.values import natural_key

TOK = "vit-tiny-test"


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def forward_calls(monkeypatch):
    """Count the model's forward passes (the expensive part the object store saves)."""
    calls = []
    real = vit.forward_tokens

    def counting(model, pixels, compute):
        calls.append(len(pixels))
        return real(model, pixels, compute)

    monkeypatch.setattr(vit, "forward_tokens", counting)
    return calls


def resplit(split: pd.DataFrame) -> pd.DataFrame:
    """The same split manifest with two sources moved to the other split (as a new seed would)."""
    out = split.copy()
    moved = out["source_id"].isin(["deam:3", "foodpics:0002"])
    out.loc[moved, "split"] = np.where(out.loc[moved, "split"] == "test", "train", "test")
    return out


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
    # the split decides no shard's membership, only the label columns the items carry
    other = resplit(manifests["split"])
    again = Tokens().plan(tokens_ctx(out_root, {**manifests, "split": other}, shard_size=4))
    assert [[s["sample_id"] for s in it.payload["samples"]] for it in again] == \
           [[s["sample_id"] for s in it.payload["samples"]] for it in items]
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


def test_batch_size_and_workers_do_not_change_stored_bytes(tmp_path, forward_calls):
    labels = label_rows(n_songs=3, chunks=4, n_images=6)
    split = split_rows(labels, tmp_path)
    manifests = {**write_pngs(tmp_path, labels), "split": split}
    digests = {}
    for bs, workers in ((1, 0), (7, 0), (16, 0), (7, 2)):
        ctx = tokens_ctx(tmp_path, manifests, out_dir=tmp_path / f"tok-{bs}-{workers}", shard_size=10,
                         batch_size=bs, num_workers=workers)
        shutil.rmtree(objects_dir(tmp_path, ctx.params), ignore_errors=True)  # compute, do not re-use
        forward_calls.clear()
        index, _ = run_tokens(ctx, publish=False)
        assert sum(forward_calls) == 18 and max(forward_calls) <= bs  # the model really ran, in batches of bs
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
    reasons = pd.Series([r.reason for r in rejects]).value_counts().to_dict()
    assert index.empty and reasons == {"unreadable-image": 5, "no-image": 12}  # 12 spectrograms gone
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

def test_runner_builds_a_valid_store_and_skips_it_next_time(tmp_path, monkeypatch):
    import json

    from emoprep.pipeline.executors.inline import InlineExecutor
    from emoprep.manifests.reader import TokenDataset
    from emoprep.manifests.validate import validate
    from emoprep.pipeline.runner import Runner

    install_fake_upstream(monkeypatch.setitem)
    recipe = tiny_recipe()
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


def test_one_process_per_gpu_slot_gives_the_inline_bytes(tmp_path, monkeypatch):
    """Several GPUs: each slot is its own spawned process that builds its own model and
    takes whole shards. Two CPU stand-in slots ('' hides CUDA) must write exactly what one
    in-process model writes, and the main process must not compute a single shard."""
    from emoprep.pipeline.executors.inline import InlineExecutor
    from emoprep.pipeline.runner import Runner
    from emoprep.stages.tokens import stage as tokens_mod

    install_fake_upstream(monkeypatch.setitem)
    recipe = tiny_recipe()
    Runner(recipe, tmp_path / "inline", None, "cpu").run("tokens", InlineExecutor())

    def not_here(*a, **k):
        raise AssertionError("a shard was computed in the main process")

    monkeypatch.setattr(tokens_mod, "compute_object", not_here)
    summary = Runner(recipe, tmp_path / "gpus", None, "cpu", device_slots=["", ""]).run("tokens", InlineExecutor())
    assert summary[-1].status == "ran" and summary[-1].rows == 26 and summary[-1].rejects == 0
    index = pd.read_parquet(tmp_path / "inline" / "manifests/tokens.parquet")
    assert len(index["cls_path"].unique()) > 2  # several shards to deal out
    for rel in [*index["cls_path"].unique(), *index["patches_path"].unique(), "manifests/tokens.parquet"]:
        assert sha(tmp_path / "inline" / rel) == sha(tmp_path / "gpus" / rel), rel


# ---- accounting: every labelled id ends as a token row or a tokens reject ----------------

def test_labelled_ids_without_an_image_are_rejected_and_accounted_for(small_run):
    out_root, manifests = small_run
    spec = manifests["spectrogram"]
    gone = spec["sample_id"].iloc[[1, 4, 5]].tolist()
    ctx = tokens_ctx(out_root, {**manifests, "spectrogram": spec[~spec["sample_id"].isin(gone)]}, shard_size=4)
    index, rejects = run_tokens(ctx, publish=False)
    assert {r.sample_id: r.reason for r in rejects} == dict.fromkeys(gone, "no-image")
    assert all(r.message.startswith(r.sample_id + ":") and "spectrogram" in r.message for r in rejects)
    split_ids = manifests["split"]["sample_id"].tolist()
    assert sorted([*index["sample_id"], *(r.sample_id for r in rejects)]) == sorted(split_ids)


# ---- content-addressed shards --------------------------------------------------------------

def _npy_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.npy"))}


def _store(out_root, name):
    return out_root / "tokens" / TOK / name


def test_a_new_split_relinks_the_same_shards_without_the_model(small_run, forward_calls):
    out_root, manifests = small_run
    a, _ = run_tokens(tokens_ctx(out_root, manifests, out_dir=_store(out_root, "fpA"), shard_size=5), publish=False)
    assert sum(forward_calls) == 17
    forward_calls.clear()
    other = resplit(manifests["split"])
    other["valence"] = -other["valence"]  # and other labels: still no reason to run the model
    b, rejects = run_tokens(tokens_ctx(out_root, {**manifests, "split": other}, out_dir=_store(out_root, "fpB"),
                                       shard_size=5), publish=False)
    assert forward_calls == [] and rejects == []
    new = other.set_index("sample_id")
    assert b.set_index("sample_id")[["split", "valence"]].to_dict() == new[["split", "valence"]].to_dict()
    assert (a["split"] != b["split"]).any()
    cols = ["sample_id", "shard", "row", "cls_sha256", "patches_sha256"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    fa, fb = _npy_bytes(_store(out_root, "fpA")), _npy_bytes(_store(out_root, "fpB"))
    assert fa == fb and len(fa) == 8  # 17 ids in shards of 5: 4 × (cls, patches)
    objects = objects_dir(out_root, tokens_ctx(out_root, manifests).params)
    assert len([p for p in objects.iterdir()]) == 4
    for name in fa:  # one copy of the bytes: both folders hard-link the object's file
        sa, sb = (_store(out_root, "fpA") / name).stat(), (_store(out_root, "fpB") / name).stat()
        assert sa.st_ino == sb.st_ino and sa.st_nlink == 3


def test_a_changed_png_recomputes_only_its_shard(small_run, forward_calls):
    out_root, manifests = small_run
    a, _ = run_tokens(tokens_ctx(out_root, manifests, out_dir=_store(out_root, "fpA"), shard_size=5), publish=False)
    rel = manifests["images"]["path"].iloc[-1]  # foodpics:0005, the last id: shard 3 (2 ids)
    Image.fromarray(np.full((224, 224, 3), 7, np.uint8)).save(out_root / rel)
    forward_calls.clear()
    b, _ = run_tokens(tokens_ctx(out_root, manifests, out_dir=_store(out_root, "fpB"), shard_size=5), publish=False)
    assert sum(forward_calls) == 2
    changed = a.loc[a["patches_sha256"] != b["patches_sha256"], "shard"]
    assert set(changed) == {3}
    img = np.asarray(Image.open(out_root / rel))
    model = vit.build_model(TOK, vit.WeightsSource("random", TOK), seed=0)
    want = vit.forward_tokens(model, vit.pixel_values(img[None]), vit.Compute("cpu", None))[0]
    r = b.iloc[-1]
    np.testing.assert_array_equal(np.load(out_root / r.cls_path)[r.row], want[0].astype(np.float16))


def test_object_key_covers_the_setup_and_the_images_and_nothing_else():
    import dataclasses

    from emoprep.stages.tokens.stage import object_config

    base = Tokens.Params(tokenizer=TOK)
    rnd = {"name": TOK, "sha256": "random-init", "seed": 0}
    inputs = [("deam:2:0", "a" * 64), ("deam:2:1", "b" * 64)]
    key = ts.object_key(object_config(base, "cpu", rnd), inputs)
    runtime_only = dataclasses.replace(base, batch_size=3, num_workers=2, shard_size=99, threads=1)
    assert ts.object_key(object_config(runtime_only, "cpu", rnd), inputs) == key
    setups = [object_config(dataclasses.replace(base, dtype="float32"), "cpu", rnd),
              object_config(dataclasses.replace(base, autocast="bfloat16"), "cpu", rnd),
              object_config(base, "cpu", {**rnd, "seed": 1}),
              object_config(base, "cpu", {**rnd, "sha256": "f" * 64}),
              object_config(dataclasses.replace(base, tokenizer="vit-base-patch16-224"), "cpu", rnd)]
    images = [inputs[::-1], [("deam:2:0", "c" * 64), inputs[1]], [("deam:9:0", "a" * 64), inputs[1]], inputs[:1]]
    keys = [ts.object_key(c, inputs) for c in setups] + [ts.object_key(object_config(base, "cpu", rnd), i) for i in images]
    assert key not in keys and len(set(keys)) == len(keys)
    # pretrained weights: the init seed means nothing, so it does not split the objects
    pre = {"name": "ckpt", "sha256": "e" * 64, "seed": 0}
    assert object_config(dataclasses.replace(base, seed=5), "cpu", {**pre, "seed": 5}) == object_config(base, "cpu", pre)


def test_half_written_or_damaged_objects_are_never_used(small_run, forward_calls):
    out_root, manifests = small_run
    run_tokens(tokens_ctx(out_root, manifests, out_dir=_store(out_root, "fpA"), shard_size=5), publish=False)
    objects = objects_dir(out_root, tokens_ctx(out_root, manifests).params)
    keys = sorted(p for p in objects.iterdir())
    n_damaged = sum(len(ts.read_object(objects, k.name)["inputs"]) for k in keys[1:3])
    # a killed writer's temp folder, an object whose file lost its tail (a new inode, so the
    # fpA link keeps the good bytes), an object without its record
    orphan = objects / ".tmp-0123456789ab-0123456789abcdef"
    orphan.mkdir()
    (orphan / "cls.npy").write_bytes(b"\x93NUMPY")
    data = (keys[1] / "patches.npy").read_bytes()
    (keys[1] / "patches.npy").unlink()
    (keys[1] / "patches.npy").write_bytes(data[:-100])
    (keys[2] / ts.OBJECT_FILE).unlink()
    forward_calls.clear()
    run_tokens(tokens_ctx(out_root, manifests, out_dir=_store(out_root, "fpB"), shard_size=5), publish=False)
    assert sum(forward_calls) == n_damaged  # the two damaged objects recomputed, the others linked
    assert _npy_bytes(_store(out_root, "fpA")) == _npy_bytes(_store(out_root, "fpB"))
    assert not orphan.exists() and sorted(p for p in objects.iterdir()) == keys
    assert not list(out_root.rglob(".tmp-*"))


def test_shards_are_copied_where_hard_links_fail(small_run, monkeypatch):
    import errno
    import os

    out_root, manifests = small_run
    run_tokens(tokens_ctx(out_root, manifests, out_dir=_store(out_root, "fpA"), shard_size=5), publish=False)

    def no_links(src, dst, *a, **kw):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    b, _ = run_tokens(tokens_ctx(out_root, manifests, out_dir=_store(out_root, "fpB"), shard_size=5), publish=False)
    assert _npy_bytes(_store(out_root, "fpA")) == _npy_bytes(_store(out_root, "fpB"))
    assert all(p.stat().st_nlink == 1 for p in _store(out_root, "fpB").glob("*.npy"))
    assert all(sha(out_root / r.patches_path) == r.patches_sha256 for r in b.itertuples())


# ---- warnings and the default checkpoint ------------------------------------------------------

def test_random_init_warning_names_the_configured_checkpoint(small_run, caplog):
    out_root, manifests = small_run
    vit._WARNED.clear()
    ctx = tokens_ctx(out_root, manifests, tokenizer="vit-base-patch16-224", hf_model_id="acme/my-vit-base")
    with caplog.at_level(logging.WARNING):
        Tokens().fingerprint_extra(ctx)
    assert "acme/my-vit-base" in caplog.text and vit.HF_MODEL_ID not in caplog.text
    assert Tokens.Params().hf_model_id == vit.HF_MODEL_ID == "google/vit-base-patch16-224"


# ---- through the real runner: a new split seed, D2 accounting, SIGKILL -----------------------

def _run(recipe, out):
    from emoprep.pipeline.executors.inline import InlineExecutor
    from emoprep.pipeline.runner import Runner

    return {s.name: s for s in Runner(recipe, out, None, "cpu").run("tokens", InlineExecutor())}


def _view_splits(files) -> dict[str, str]:
    import pyarrow.parquet as pq

    got = {}
    for split, paths in files.items():
        for f in paths:
            t = pq.read_table(f, columns=["sample_id", "split"]).to_pydict()
            assert set(t["split"]) == {split}
            got.update(zip(t["sample_id"], t["split"]))
    return got


def test_runner_new_split_seed_relinks_tokens_and_the_hf_view_follows(tmp_path, monkeypatch, forward_calls):
    from emoprep.manifests.reader import hf_parquet_view
    from emoprep.manifests.validate import validate

    install_fake_upstream(monkeypatch.setitem)
    out = tmp_path / "out"
    first = _run(tiny_recipe(split_seed=0), out)
    assert first["tokens"].status == "ran" and sum(forward_calls) == 26
    index0 = pd.read_parquet(out / "manifests/tokens.parquet")
    view0 = hf_parquet_view(out, tokenizer=TOK)
    assert _view_splits(view0) == index0.set_index("sample_id")["split"].to_dict()
    shards0 = {rel: (out / rel).read_bytes() for rel in [*index0["cls_path"].unique(), *index0["patches_path"].unique()]}

    forward_calls.clear()
    second = _run(tiny_recipe(split_seed=7), out)
    assert {k: s.status for k, s in second.items()} == {"labels": "up-to-date", "fake-pngs": "up-to-date",
                                                          "split": "ran", "tokens": "ran"}
    assert forward_calls == []  # re-linked, the model never ran
    index = pd.read_parquet(out / "manifests/tokens.parquet")
    split = pd.read_parquet(out / "manifests/split.parquet")
    assert (index0.set_index("sample_id")["split"] != index.set_index("sample_id")["split"]).any()
    assert index.set_index("sample_id")["split"].to_dict() == split.set_index("sample_id")["split"].to_dict()
    assert second["tokens"].rows + second["tokens"].rejects == len(split)
    assert index["fingerprint"].iloc[0] != index0["fingerprint"].iloc[0]  # a new folder, the same bytes
    shards = {rel: (out / rel).read_bytes() for rel in [*index["cls_path"].unique(), *index["patches_path"].unique()]}
    assert {r.split("/")[-1]: b for r, b in shards.items()} == {r.split("/")[-1]: b for r, b in shards0.items()}
    # the HF view is keyed on what it writes: a new split gives a new view with the new split
    view = hf_parquet_view(out, tokenizer=TOK)
    assert view != view0
    assert _view_splits(view) == index.set_index("sample_id")["split"].to_dict()
    assert validate(out).ok


def test_runner_labelled_ids_without_images_are_tokens_rejects(tmp_path, monkeypatch):
    from emoprep.manifests.validate import validate

    no_png = ("deam:4:1", "foodpics:0003")
    install_fake_upstream(monkeypatch.setitem, no_png=no_png)
    out = tmp_path / "out"
    # labels here do not read fake-pngs, so the two ids are labelled and split but have no image
    summary = _run(tiny_recipe(), out)
    split = pd.read_parquet(out / "manifests/split.parquet")
    assert len(split) == 26 and summary["tokens"].rows == 24 and summary["tokens"].rejects == 2
    assert summary["tokens"].rows + summary["tokens"].rejects == len(split)
    rejects = pd.read_parquet(out / "manifests/rejects.parquet")
    tok = rejects[rejects["stage"] == "tokens"]
    assert sorted(tok["sample_id"]) == sorted(no_png) and set(tok["reason"]) == {"no-image"}
    report = validate(out)
    cov = next(c for c in report.checks if c.name == "manifest-coverage")
    assert report.ok and "2 labelled ids without tokens were rejected by tokens" in cov.detail
    # the upstream rejects alone do not excuse them
    rejects[rejects["stage"] != "tokens"].to_parquet(out / "manifests/rejects.parquet", index=False)
    cov = next(c for c in validate(out).checks if c.name == "manifest-coverage")
    assert cov.status == "fail" and sorted(o.split(" ")[0] for o in cov.offenders) == sorted(no_png)


_KILLABLE = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from tests.helpers.token_fixtures import install_fake_upstream, tiny_recipe
from emoprep.pipeline.executors.inline import InlineExecutor
from emoprep.pipeline.runner import Runner
from emoprep.stages.tokens import vit

install_fake_upstream(lambda registry, name, stage: registry.__setitem__(name, stage))
real = vit.forward_tokens

def slow(*args, **kw):  # time to be killed in the middle of the tokens stage
    time.sleep(0.3)
    return real(*args, **kw)

vit.forward_tokens = slow
Runner(tiny_recipe(shard_size=4, batch_size=2), Path(sys.argv[1]), None, "cpu").run("tokens", InlineExecutor())
"""


def _objects_done(out) -> int:
    objects = out / "tokens" / TOK / ts.OBJECTS_DIR
    return sum(1 for p in objects.iterdir() if not p.name.startswith(".")) if objects.is_dir() else 0


def test_sigkill_during_tokens_then_resume_is_byte_identical(tmp_path, monkeypatch, forward_calls):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.helpers.treecmp import diff, snapshot, temp_files

    install_fake_upstream(monkeypatch.setitem)
    recipe = tiny_recipe(shard_size=4, batch_size=2)
    _run(recipe, tmp_path / "clean")
    assert sum(forward_calls) == 26
    expected = snapshot(tmp_path / "clean")
    tests = str(REPO)
    for i, (after, extra) in enumerate([(1, 0.0), (3, 0.35)]):  # objects committed, then a bit more
        out = tmp_path / f"killed{i}"
        proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(out), tests], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while _objects_done(out) < after and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(extra)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # still running: killed mid-stage
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        done_before = _objects_done(out)
        assert after <= done_before < 7  # 26 ids in shards of 4
        forward_calls.clear()
        summary = _run(recipe, out)
        assert summary["tokens"].status == "ran"
        assert 0 < sum(forward_calls) <= 26 - 4 * done_before  # committed objects were not recomputed
        assert diff(expected, snapshot(out)) == [], f"killed after {after} objects"
        assert temp_files(out) == []
