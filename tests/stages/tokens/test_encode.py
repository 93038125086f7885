"""Computing shards: batching cannot change the bytes, and the content-addressed shard objects
are re-linked for a new split, recomputed only for changed inputs, never used half-written."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
from PIL import Image

from emoprep.manifests.token_store.objects import OBJECT_FILE, object_key, read_object
from emoprep.stages.tokens import vit, weights
from emoprep.stages.tokens.stage import Tokens, objects_dir
from tests.helpers.token_fixtures import (
    build_store,
    label_rows,
    resplit,
    run_tokens,
    sha,
    split_rows,
    tokens_ctx,
    write_pngs,
)

TOK = "vit-tiny-test"


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
    build_store(tmp_path / "a")
    build_store(tmp_path / "b")
    for name in ("cls-00000.npy", "patches-00003.npy", "index.parquet", "store.json"):
        a, b = tmp_path / "a/tokens/vit-tiny-test/fp0" / name, tmp_path / "b/tokens/vit-tiny-test/fp0" / name
        assert sha(a) == sha(b)


def test_bfloat16_autocast_on_cpu_is_recorded_and_close(small_run):
    out_root, manifests = small_run
    ref, _ = run_tokens(tokens_ctx(out_root, manifests, out_dir=out_root / "f32"), publish=False)
    ctx = tokens_ctx(out_root, manifests, out_dir=out_root / "bf16", autocast="bfloat16")
    assert Tokens().fingerprint_extra(ctx)["compute_dtype"] == "bfloat16"
    got, _ = run_tokens(ctx, publish=False)
    a = np.load(out_root / ref["patches_path"].iloc[0]).astype(np.float32)
    b = np.load(out_root / got["patches_path"].iloc[0]).astype(np.float32)
    assert not np.array_equal(a, b) and np.abs(a - b).max() < 0.1 * np.abs(a).max()

# ---- content-addressed shards ---------------------------------------------------------

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
    assert len(list(objects.iterdir())) == 4
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
    model = vit.build_model(TOK, weights.WeightsSource("random", TOK), seed=0)
    want = vit.forward_tokens(model, vit.pixel_values(img[None]), weights.Compute("cpu", None))[0]
    r = b.iloc[-1]
    np.testing.assert_array_equal(np.load(out_root / r.cls_path)[r.row], want[0].astype(np.float16))


def test_object_key_covers_the_setup_and_the_images_and_nothing_else():
    import dataclasses

    from emoprep.stages.tokens.encode import object_config

    base = Tokens.Params(tokenizer=TOK)
    rnd = {"name": TOK, "sha256": "random-init", "seed": 0}
    inputs = [("deam:2:0", "a" * 64), ("deam:2:1", "b" * 64)]
    key = object_key(object_config(base, "cpu", rnd), inputs)
    runtime_only = dataclasses.replace(base, batch_size=3, num_workers=2, shard_size=99, threads=1)
    assert object_key(object_config(runtime_only, "cpu", rnd), inputs) == key
    setups = [object_config(dataclasses.replace(base, dtype="float32"), "cpu", rnd),
              object_config(dataclasses.replace(base, autocast="bfloat16"), "cpu", rnd),
              object_config(base, "cpu", {**rnd, "seed": 1}),
              object_config(base, "cpu", {**rnd, "sha256": "f" * 64}),
              object_config(dataclasses.replace(base, tokenizer="vit-base-patch16-224"), "cpu", rnd)]
    images = [inputs[::-1], [("deam:2:0", "c" * 64), inputs[1]], [("deam:9:0", "a" * 64), inputs[1]], inputs[:1]]
    keys = [object_key(c, inputs) for c in setups] + [object_key(object_config(base, "cpu", rnd), i) for i in images]
    assert key not in keys and len(set(keys)) == len(keys)
    # pretrained weights: the init seed means nothing, so it does not split the objects
    pre = {"name": "ckpt", "sha256": "e" * 64, "seed": 0}
    seeded = object_config(dataclasses.replace(base, seed=5), "cpu", {**pre, "seed": 5})
    assert seeded == object_config(base, "cpu", pre)


def test_half_written_or_damaged_objects_are_never_used(small_run, forward_calls):
    out_root, manifests = small_run
    run_tokens(tokens_ctx(out_root, manifests, out_dir=_store(out_root, "fpA"), shard_size=5), publish=False)
    objects = objects_dir(out_root, tokens_ctx(out_root, manifests).params)
    keys = sorted(p for p in objects.iterdir())
    n_damaged = 0
    for k in keys[1:3]:
        meta = read_object(objects, k.name)
        assert meta is not None
        n_damaged += len(meta["inputs"])
    # a killed writer's temp folder, an object whose file lost its tail (a new inode, so the
    # fpA link keeps the good bytes), an object without its record
    orphan = objects / ".tmp-0123456789ab-0123456789abcdef"
    orphan.mkdir()
    (orphan / "cls.npy").write_bytes(b"\x93NUMPY")
    data = (keys[1] / "patches.npy").read_bytes()
    (keys[1] / "patches.npy").unlink()
    (keys[1] / "patches.npy").write_bytes(data[:-100])
    (keys[2] / OBJECT_FILE).unlink()
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
