"""`validate` per tokenizer: each kind of damage to a token store fails and names the
shard or id."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emoprep.manifests.validate import validate
from tests.helpers.token_fixtures import failed, index_of, rewrite_array, save_index

STORE = "tokens/vit-tiny-test/fp0"


def test_truncated_shard_names_the_shard_and_its_ids(out):
    rel = f"{STORE}/patches-00001.npy"
    data = (out / rel).read_bytes()
    (out / rel).write_bytes(data[: len(data) - 1000])
    bad = failed(validate(out))
    assert [o.split(":")[0] for o in bad["shard-files"]] == [rel]
    ids = index_of(out).query("shard == 1")["sample_id"]
    assert sorted(o.split(" ")[0] for o in bad["ids-have-tokens"]) == sorted(ids)


def test_wrong_shape_names_the_shard(out):
    rel = f"{STORE}/cls-00002.npy"
    arr = np.load(out / rel)
    rewrite_array(out, rel, arr[:, :31])
    bad = failed(validate(out))
    assert set(bad) == {"token-shapes"} and bad["token-shapes"][0].startswith(rel)


def test_wrong_recorded_shape_names_the_id(out):
    df = index_of(out)
    df.at[4, "shape"] = [196, 32]  # type: ignore[assignment]  # pandas-stubs: a cell holds a scalar
    save_index(out, df)
    bad = failed(validate(out))
    assert set(bad) == {"index-shapes"} and bad["index-shapes"][0].startswith(str(df.at[4, "sample_id"]) + " ")


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_names_the_sample(out, bad_value):
    df = index_of(out)
    r = df.iloc[7]
    arr = np.load(out / r.patches_path)
    assert arr.dtype == np.float16  # the stores' patch dtype, checked through its exponent bits
    arr[r.row, 100, 3] = bad_value
    rewrite_array(out, r.patches_path, arr)
    bad = failed(validate(out))
    assert set(bad) == {"finite-values"} and bad["finite-values"] == [f"{r.sample_id} (patches in {r.patches_path})"]


def test_changed_bytes_fail_the_checksum(out):
    rel = f"{STORE}/patches-00000.npy"
    data = bytearray((out / rel).read_bytes())
    data[-5] ^= 0x01  # one bit of one float16
    (out / rel).write_bytes(bytes(data))
    bad = failed(validate(out))
    assert set(bad) == {"shard-checksums"} and bad["shard-checksums"][0].startswith(rel)


def test_index_row_without_tokens_names_the_id(out):
    df = index_of(out)
    ghost = df.iloc[[0]].assign(sample_id="deam:99:0", source_id="deam:99", row=42)
    save_index(out, pd.concat([df, ghost], ignore_index=True))
    split = pd.read_parquet(out / "manifests/split.parquet")
    split = pd.concat([split, split.iloc[[0]].assign(sample_id="deam:99:0", source_id="deam:99")])
    split.to_parquet(out / "manifests/split.parquet", index=False)
    bad = failed(validate(out))
    assert set(bad) == {"ids-have-tokens"} and bad["ids-have-tokens"][0].startswith("deam:99:0 (row 42 of")


def test_duplicate_id_in_index(out):
    df = index_of(out)
    save_index(out, pd.concat([df, df.iloc[[3]]], ignore_index=True))
    bad = failed(validate(out))
    assert bad["unique-ids"] == [df.at[3, "sample_id"]]
