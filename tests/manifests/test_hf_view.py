"""The Hugging Face Parquet view: loads with `datasets`, follows the store's content."""
from __future__ import annotations

import shutil

import numpy as np

from emoprep.manifests.hf_view import hf_parquet_view
from tests.helpers.token_fixtures import expected_tokens

TOK = "vit-tiny-test"


def test_hf_parquet_view_loads_with_datasets(store, tmp_path):
    import datasets

    root, index = store
    files = hf_parquet_view(root, tokenizer=TOK)
    assert set(files) == set(index["split"])
    stamp = {f: (root / f).stat().st_mtime_ns for fs in files.values() for f in fs}
    assert hf_parquet_view(root, tokenizer=TOK) == files  # an unchanged store is not rewritten
    assert {f: (root / f).stat().st_mtime_ns for fs in files.values() for f in fs} == stamp
    dsd = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf-cache"))
    for split, part in dsd.items():
        assert len(part) == (index["split"] == split).sum()
        part = part.with_format("numpy")
        by_id = index.set_index("sample_id")
        for i in (0, len(part) - 1):
            row = part[i]
            r = by_id.loc[row["sample_id"]]
            want = expected_tokens(root, r)
            np.testing.assert_array_equal(np.asarray(row["cls"], np.float32), want[0])
            np.testing.assert_array_equal(np.asarray(row["patches"], np.float32), want[1:])
            assert row["emotion"] == r.emotion and row["modality"] == r.modality


def test_hf_view_follows_a_changed_split_and_labels(store, tmp_path):
    """The view is keyed on what it writes: new split or labels with the same shards → a new view."""
    import pandas as pd
    import pyarrow.parquet as pq

    root = tmp_path / "out"
    shutil.copytree(store[0], root)
    first = hf_parquet_view(root, tokenizer=TOK)
    index = pd.read_parquet(root / "manifests/tokens.parquet")
    moved = index["source_id"].isin(["deam:3", "deam:5", "foodpics:0004"])
    index.loc[moved, "split"] = np.where(index.loc[moved, "split"] == "train", "test", "train")
    index.loc[index["sample_id"] == "deam:2:0", "valence"] = 0.125
    index.to_parquet(root / "manifests/tokens.parquet", index=False)
    second = hf_parquet_view(root, tokenizer=TOK)
    assert second != first
    got = {}
    for split, files in second.items():
        for f in files:
            got.update({r["sample_id"]: (split, r["split"], r["valence"])
                        for r in pq.read_table(f, columns=["sample_id", "split", "valence"]).to_pylist()})
    want = index.set_index("sample_id")
    assert {sid: (a, b) for sid, (a, b, _v) in got.items()} == {sid: (s, s) for sid, s in want["split"].items()}
    assert got["deam:2:0"][2] == 0.125
    # an explicit folder is rewritten in place, without parts of the old view left behind
    dest = tmp_path / "view"
    hf_parquet_view(store[0], tokenizer=TOK, dest=dest)
    again = hf_parquet_view(root, tokenizer=TOK, dest=dest)
    listed = {f for fs in again.values() for f in fs}
    assert {str(p) for p in dest.rglob("*.parquet")} == listed
