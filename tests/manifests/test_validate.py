"""`validate`: passes a good store; each kind of damage fails and names the shard or id."""
from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from tests.helpers.token_fixtures import build_store
from emoprep.manifests.validate import FAIL, PASS, WARN, render_table, validate

STORE = "tokens/vit-tiny-test/fp0"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    build_store(root, n_songs=4, chunks=3, n_images=5)  # 17 samples, shards of 5
    return root


@pytest.fixture()
def out(pristine, tmp_path):
    root = tmp_path / "out"
    shutil.copytree(pristine, root)
    return root


def index_of(root) -> pd.DataFrame:
    return pd.read_parquet(root / "manifests/tokens.parquet")


def save_index(root, df: pd.DataFrame) -> None:
    df.to_parquet(root / "manifests/tokens.parquet", index=False)


def rewrite_array(root, rel: str, arr: np.ndarray) -> None:
    """Replace a shard file and record its new checksum, so only the content is wrong."""
    np.save(root / rel, arr, allow_pickle=False)
    df = index_of(root)
    col = "cls_sha256" if "/cls-" in rel else "patches_sha256"
    df.loc[df[col.replace("sha256", "path")] == rel, col] = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    save_index(root, df)


def check(report, name):
    """The one check called `name` (for unique-ids: the token-index one)."""
    return next(c for c in report.checks if c.name == name)


def failed(report) -> dict[str, list[str]]:
    return {c.name: c.offenders for c in report.checks if c.status == FAIL}


def test_a_good_store_passes(out):
    report = validate(out)
    assert report.ok, failed(report)
    assert check(report, "weights").status == WARN  # random init is allowed but flagged
    assert {c.name for c in report.checks} >= {
        "token-index", "unique-ids", "index-shapes", "shard-files", "shard-checksums", "token-shapes",
        "ids-have-tokens", "finite-values", "va-range", "modality-flags", "manifest-coverage",
        "split-disjoint", "weights"}


def test_require_pretrained_fails_on_random_init(out):
    report = validate(out, require_pretrained=True)
    assert failed(report) == {"weights": ["vit-tiny-test: 17 rows random-init"]}


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
    df.at[4, "shape"] = [196, 32]
    save_index(out, df)
    bad = failed(validate(out))
    assert set(bad) == {"index-shapes"} and bad["index-shapes"][0].startswith(df.at[4, "sample_id"] + " ")


def test_nan_names_the_sample(out):
    df = index_of(out)
    r = df.iloc[7]
    arr = np.load(out / r.patches_path)
    arr[r.row, 100, 3] = np.nan
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


@pytest.mark.parametrize("where", ["tokens", "split"])
def test_valence_out_of_range_names_the_id(out, where):
    path = out / f"manifests/{where}.parquet"
    df = pd.read_parquet(path)
    sid = df.at[2, "sample_id"]
    df.at[2, "valence"] = 1.2
    df.to_parquet(path, index=False)
    bad = failed(validate(out))
    assert set(bad) == {"va-range"} and bad["va-range"] == [f"{sid} (valence 1.2 in {where})"]


def test_flipped_modality_flag_names_the_id(out):
    df = index_of(out)
    i = df.index[df.sample_id.str.startswith("deam:")][0]
    df.at[i, "modality"] = 0
    save_index(out, df)
    bad = failed(validate(out))
    assert set(bad) == {"modality-flags"}
    assert all(o.startswith(df.at[i, "sample_id"] + " ") for o in bad["modality-flags"])


def test_index_row_without_tokens_names_the_id(out):
    df = index_of(out)
    ghost = df.iloc[[0]].assign(sample_id="deam:99:0", source_id="deam:99", row=42)
    save_index(out, pd.concat([df, ghost], ignore_index=True))
    split = pd.read_parquet(out / "manifests/split.parquet")
    split = pd.concat([split, split.iloc[[0]].assign(sample_id="deam:99:0", source_id="deam:99")])
    split.to_parquet(out / "manifests/split.parquet", index=False)
    bad = failed(validate(out))
    assert set(bad) == {"ids-have-tokens"} and bad["ids-have-tokens"][0].startswith("deam:99:0 (row 42 of")


def test_song_in_two_splits_names_the_song(out):
    for name in ("tokens", "split"):
        path = out / f"manifests/{name}.parquet"
        df = pd.read_parquet(path)
        i = df.index[df.sample_id == "deam:3:1"][0]
        df.at[i, "split"] = "train" if df.at[i, "split"] == "test" else "test"
        df.to_parquet(path, index=False)
    bad = failed(validate(out))
    assert set(bad) == {"split-disjoint"} and all(o.startswith("deam:3 (") for o in bad["split-disjoint"])


def test_duplicate_id_in_index(out):
    df = index_of(out)
    save_index(out, pd.concat([df, df.iloc[[3]]], ignore_index=True))
    bad = failed(validate(out))
    assert bad["unique-ids"] == [df.at[3, "sample_id"]]


def _write_rejects(root, *rows) -> None:
    pd.DataFrame([{"sample_id": sid, "stage": stage, "reason": reason, "message": "x"} for sid, stage, reason in rows],
                 columns=["sample_id", "stage", "reason", "message"]).to_parquet(root / "manifests/rejects.parquet", index=False)


def test_labelled_id_without_tokens_fails_unless_tokens_rejected_it(out):
    df = index_of(out)
    gone = df.at[5, "sample_id"]
    save_index(out, df.drop(index=5))
    bad = failed(validate(out))
    assert bad == {"manifest-coverage": [f"{gone} (in split manifest, no tokens)"]}
    # a reject by a stage before `split` does not explain it: such an id should not be labelled
    _write_rejects(out, (gone, "spectrogram", "silent"), (gone, "images", "image-too-large"))
    assert failed(validate(out)) == {"manifest-coverage": [f"{gone} (in split manifest, no tokens)"]}
    _write_rejects(out, (gone, "spectrogram", "silent"), (gone, "tokens", "unreadable-image"))
    report = validate(out)
    assert report.ok and "1 labelled ids without tokens were rejected by tokens" in check(report, "manifest-coverage").detail


def test_a_stage_downstream_of_split_may_also_explain_a_missing_token(out):
    """Read from the run's `_current.json` and each stage's `_DONE.json` inputs."""
    import json

    df = index_of(out)
    gone = df.at[5, "sample_id"]
    save_index(out, df.drop(index=5))
    dirs = {"labels": ("labels/fp0", {}), "split": ("split/fp0", {"labels": "labels/fp0"}),
            "filter": ("filter/fp0", {"split": "split/fp0"}), "late": ("late/fp0", {"filter": "filter/fp0"}),
            "images": ("images/fp0", {}), "tokens": ("tokens/t/fp0", {"split": "split/fp0"})}
    for stage, (rel, inputs) in dirs.items():
        (out / rel).mkdir(parents=True, exist_ok=True)
        (out / rel / "_DONE.json").write_text(json.dumps({"stage": stage, "inputs": inputs}))
    (out / "manifests/_current.json").write_text(json.dumps({k: {"dir": v[0], "fingerprint": "fp0"} for k, v in dirs.items()}))
    for stage, ok in (("late", True), ("filter", True), ("images", False), ("labels", False), ("split", False)):
        _write_rejects(out, (gone, stage, "some-reason"))
        # (these synthetic stage folders hold no manifests, so only the coverage check is asked)
        assert (check(validate(out), "manifest-coverage").status == "pass") is ok, stage


def test_missing_store_is_one_clear_failure(tmp_path):
    report = validate(tmp_path)
    assert [(c.name, c.status) for c in report.checks] == [("token-index", FAIL)]
    assert "manifests/tokens.parquet" in report.checks[0].detail


def test_table_shows_offenders(out):
    df = index_of(out)
    df["valence"] = 2.0
    save_index(out, df)
    console = Console(record=True, width=200)
    render_table(validate(out), console=console)
    text = console.export_text()
    assert "va-range" in text and "fail" in text and "+12 more" in text and "FAILED" in text
    assert validate(out).to_dict()["ok"] is False
    assert check(validate(out), "token-index").status == PASS


def test_index_without_required_columns_is_reported_not_raised(out):
    good = index_of(out)
    save_index(out, good.drop(columns=["patches_sha256", "split"]))
    report = validate(out)
    assert failed(report) == {"token-index": []} and "split" in report.checks[0].detail
    # an array column the tokenizer needs: reported per tokenizer, naming the ids and the column
    save_index(out, good.drop(columns=["patches_sha256"]))
    bad = failed(validate(out))
    assert list(bad) == ["index-shapes"] and all("(no patches_sha256)" in o for o in bad["index-shapes"])
