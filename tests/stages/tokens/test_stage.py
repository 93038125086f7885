"""The tokens stage: plan, process and finalize, its weights and parameters, and runs through
the real runner (GPU slots, a new split seed, accounting, SIGKILL and resume)."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from emoprep.manifests.token_store.objects import OBJECTS_DIR
from emoprep.manifests.token_store.reader import read_store_json
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.values import natural_key
from emoprep.stages.tokens import vit, weights
from emoprep.stages.tokens.stage import Tokens
from tests.helpers.paths import REPO
from tests.helpers.token_fixtures import (
    resplit,
    run_tokens,
    save_tiny_vit_checkpoint,
    sha,
    tiny_recipe,
    tokens_ctx,
)

TOK = "vit-tiny-test"

# ---- plan -----------------------------------------------------------------------------

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

# ---- process --------------------------------------------------------------------------

def test_shards_hold_the_model_outputs_for_each_labelled_image(small_run):
    out_root, manifests = small_run
    index, rejects = run_tokens(tokens_ctx(out_root, manifests, shard_size=5))
    assert rejects == [] and len(index) == 17
    # reference: the same seeded model run directly on the PNGs, one image at a time
    model = vit.build_model("vit-tiny-test", weights.WeightsSource("random", "vit-tiny-test"), seed=0)
    for r in index.itertuples():
        img = np.asarray(Image.open(out_root / r.image_path))
        hidden = vit.forward_tokens(model, vit.pixel_values(img[None]), weights.Compute("cpu", None))[0]
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
    meta = read_store_json(out_root / "tokens/vit-tiny-test/fp0")
    assert meta["n_samples"] == 17 and meta["shape"] == [197, 32] and meta["weights"]["sha256"] == "random-init"


def test_float32_store(small_run):
    out_root, manifests = small_run
    index, _ = run_tokens(tokens_ctx(out_root, manifests, dtype="float32"), publish=False)
    assert np.load(out_root / index["cls_path"].iloc[0]).dtype == np.float32 and set(index["dtype"]) == {"float32"}

# ---- weights and parameters -----------------------------------------------------------

def test_random_init_is_loud_and_recorded(small_run, caplog):
    out_root, manifests = small_run
    weights._WARNED.clear()
    ctx = tokens_ctx(out_root, manifests, seed=3)
    with caplog.at_level(logging.WARNING):
        extra = Tokens().fingerprint_extra(ctx)
    assert "RANDOM INIT" in caplog.text
    assert extra == {"weights": {"name": "vit-tiny-test", "sha256": "random-init", "seed": 3},
                     "device": "cpu", "compute_dtype": "float32",
                     "preprocessing": vit.DEFAULT_PREPROCESSING.record()}


def test_weights_folder_is_loaded_checksummed_and_recorded(small_run):
    out_root, manifests = small_run
    folder = save_tiny_vit_checkpoint(out_root.parent / "ckpt", seed=42)
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
    ref = vit.forward_tokens(model, vit.pixel_values(img[None]), weights.Compute("cpu", None))[0]
    np.testing.assert_array_equal(np.load(out_root / r.cls_path)[r.row], ref[0].astype(np.float16))


def test_random_init_warning_names_the_configured_checkpoint(small_run, caplog):
    out_root, manifests = small_run
    weights._WARNED.clear()
    ctx = tokens_ctx(out_root, manifests, tokenizer="vit-base-patch16-224", hf_model_id="acme/my-vit-base")
    with caplog.at_level(logging.WARNING):
        Tokens().fingerprint_extra(ctx)
    assert "acme/my-vit-base" in caplog.text and vit.HF_MODEL_ID not in caplog.text
    assert Tokens.Params().hf_model_id == vit.HF_MODEL_ID == "google/vit-base-patch16-224"


@pytest.mark.parametrize("bad", [{"dtype": "bfloat16"}, {"shard_size": 0}, {"batch_size": 0},
                                 {"tokenizer": "vit-huge"}, {"sources": ()}])
def test_impossible_parameters_are_configuration_errors(small_run, bad):
    out_root, manifests = small_run
    with pytest.raises(ConfigError):
        Tokens().plan(tokens_ctx(out_root, manifests, **bad))

# ---- through the real runner ----------------------------------------------------------

def test_runner_builds_a_valid_store_and_skips_it_next_time(tmp_path, monkeypatch):
    import json

    from emoprep.manifests.reader import TokenDataset
    from emoprep.manifests.validate import validate
    from emoprep.pipeline.executors.inline import InlineExecutor
    from emoprep.pipeline.runner import Runner

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
                                           "device": "cpu", "compute_dtype": "float32",
                                           "preprocessing": vit.DEFAULT_PREPROCESSING.record()}
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
    from emoprep.stages.tokens import encode

    recipe = tiny_recipe()
    Runner(recipe, tmp_path / "inline", None, "cpu").run("tokens", InlineExecutor())

    def not_here(*a, **k):
        raise AssertionError("a shard was computed in the main process")

    monkeypatch.setattr(encode, "compute_object", not_here)
    summary = Runner(recipe, tmp_path / "gpus", None, "cpu", device_slots=["", ""]).run("tokens", InlineExecutor())
    assert summary[-1].status == "ran" and summary[-1].rows == 26 and summary[-1].rejects == 0
    index = pd.read_parquet(tmp_path / "inline" / "manifests/tokens.parquet")
    assert len(index["cls_path"].unique()) > 2  # several shards to deal out
    for rel in [*index["cls_path"].unique(), *index["patches_path"].unique(), "manifests/tokens.parquet"]:
        assert sha(tmp_path / "inline" / rel) == sha(tmp_path / "gpus" / rel), rel


def _run(recipe, out):
    from emoprep.pipeline.executors.inline import InlineExecutor
    from emoprep.pipeline.runner import Runner

    return {s.name: s for s in Runner(recipe, out, None, "cpu").run("tokens", InlineExecutor())}


def _view_splits(files) -> dict[str, str]:
    import pyarrow.parquet as pq

    got: dict[str, str] = {}
    for split, paths in files.items():
        for f in paths:
            t = pq.read_table(f, columns=["sample_id", "split"]).to_pydict()
            assert set(t["split"]) == {split}
            got.update(zip(t["sample_id"], t["split"], strict=True))
    return got


def test_runner_new_split_seed_relinks_tokens_and_the_hf_view_follows(tmp_path, monkeypatch, forward_calls):
    from emoprep.manifests.hf_view import hf_parquet_view
    from emoprep.manifests.validate import validate

    out = tmp_path / "out"
    first = _run(tiny_recipe(split_seed=0), out)
    assert first["tokens"].status == "ran" and sum(forward_calls) == 26
    index0 = pd.read_parquet(out / "manifests/tokens.parquet")
    view0 = hf_parquet_view(out, tokenizer=TOK)
    assert _view_splits(view0) == index0.set_index("sample_id")["split"].to_dict()
    shards0 = {rel: (out / rel).read_bytes()
               for rel in [*index0["cls_path"].unique(), *index0["patches_path"].unique()]}

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
    out = tmp_path / "out"
    # labels here do not read fake-pngs, so the two ids are labelled and split but have no image
    summary = _run(tiny_recipe(no_png=no_png), out)
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
from tests.helpers.token_fixtures import tiny_recipe
from emoprep.pipeline.executors.inline import InlineExecutor
from emoprep.pipeline.runner import Runner
from emoprep.stages.tokens import vit

real = vit.forward_tokens

def slow(*args, **kw):  # time to be killed in the middle of the tokens stage
    time.sleep(0.3)
    return real(*args, **kw)

vit.forward_tokens = slow
Runner(tiny_recipe(shard_size=4, batch_size=2), Path(sys.argv[1]), None, "cpu").run("tokens", InlineExecutor())
"""


def _objects_done(out) -> int:
    objects = out / "tokens" / TOK / OBJECTS_DIR
    return sum(1 for p in objects.iterdir() if not p.name.startswith(".")) if objects.is_dir() else 0


def test_sigkill_during_tokens_then_resume_is_byte_identical(tmp_path, monkeypatch, forward_calls):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers.treecmp import diff, snapshot, temp_files

    recipe = tiny_recipe(shard_size=4, batch_size=2)
    _run(recipe, tmp_path / "clean")
    assert sum(forward_calls) == 26
    expected = snapshot(tmp_path / "clean")
    tests = str(REPO)
    for i, (after, extra) in enumerate([(1, 0.0), (3, 0.35)]):  # objects committed, then a bit more
        out = tmp_path / f"killed{i}"
        proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(out), tests], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stderr is not None
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
