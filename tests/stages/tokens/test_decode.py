"""Decoding the inputs in DataLoader workers: bad PNGs become rejects with their reasons."""
from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from tests.helpers.token_fixtures import run_tokens, tokens_ctx


def test_bad_images_are_rejected_with_reasons_and_rows_stay_contiguous(small_run):
    out_root, manifests = small_run
    spec = manifests["spectrogram"]
    paths = dict(zip(spec["sample_id"], spec["path"], strict=True))
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
    for _shard, grp in index.groupby("shard"):
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
