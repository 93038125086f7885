"""`emoprep export`: the Hugging Face and WebDataset exports read back (with `datasets` and
`webdataset`) equal to the stores, for thesis-v3 and thesis-v12 outputs (tiny models); the
export behaves as a step (up to date, resumes after SIGKILL to the same bytes, never touches
files it did not write)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from emoprep.manifests.export import hub
from emoprep.manifests.export.source import open_sources
from emoprep.manifests.export.step import EXPORT_FILE, WORK_DIR, export
from emoprep.manifests.reader import TokenDataset
from emoprep.manifests.token_store.reader import load_index
from emoprep.pipeline.errors import ConfigError
from tests.helpers.cli import invoke, said


@pytest.fixture(params=["v3", "v12"])
def output(request):
    """A finished output: thesis-v3 (one ViT store, audio + image) or thesis-v12 (two stores)."""
    return request.getfixturevalue(request.param)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".emoprep.lock")}


def _mtimes(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and not p.name.startswith(".emoprep.lock")}


def _stored(out: Path, tokenizer: str, split: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The store's rows of `split` in TokenDataset order and their arrays as stored."""
    (src,) = open_sources(out, [tokenizer], [split])
    return src.rows, src.read(src.rows)


def _leaf(arrow_type: pa.DataType) -> pa.DataType:
    """The element type under extension and list types."""
    while isinstance(arrow_type, pa.ExtensionType) or hasattr(arrow_type, "value_type"):
        arrow_type = arrow_type.storage_type if isinstance(arrow_type, pa.ExtensionType) else arrow_type.value_type
    return arrow_type


def test_hf_export_loads_with_datasets_as_the_store(output, tmp_path):
    import datasets

    dest = tmp_path / "hf"
    result = export(output, dest, "hf", shard_size=7)
    configs = sorted(set(load_index(output).df["tokenizer"]))
    assert sorted(result.samples) == configs
    for config in configs:
        for split, n in result.samples[config].items():
            ds = datasets.load_dataset(str(dest), name=config, split=split, cache_dir=str(tmp_path / "cache"))
            rows, arrays = _stored(output, config, split)
            assert len(ds) == n == len(rows)
            assert len(list((dest / config).glob(f"{split}-*.parquet"))) == -(-n // 7)
            feats = ds.features
            for name, values in arrays.items():  # Array2D / List of the stored shape and dtype
                feat = feats[name]
                shape = feat.shape if isinstance(feat, datasets.Array2D) else (feat.length,)
                dtype = feat.dtype if isinstance(feat, datasets.Array2D) else feat.feature.dtype
                assert (tuple(shape), dtype) == (values.shape[1:], str(values.dtype))
            assert feats["modality"].names == ["image", "audio"]
            assert isinstance(feats["emotion"], datasets.ClassLabel)
            as_np = ds.with_format("numpy")
            every = as_np[:]
            assert every["sample_id"].tolist() == rows["sample_id"].tolist()
            for name, values in arrays.items():
                got = every[name]
                assert got.shape == values.shape and np.array_equal(got, values.astype(got.dtype))
            schema = ds.with_format("arrow")[:].schema  # Arrow keeps the stored dtype, float16 included
            assert {name: _leaf(schema.field(name).type) for name in arrays} == {
                name: pa.from_numpy_dtype(values.dtype) for name, values in arrays.items()}
            labels = ds[:]  # plain Python values: the float64 VA exactly (NumPy format gives float32)
            assert labels["valence"] == rows["valence"].tolist() and labels["arousal"] == rows["arousal"].tolist()
            assert labels["modality"] == rows["modality"].tolist()
            names = feats["emotion"].names
            assert [names[i] for i in labels["emotion"]] == rows["emotion"].tolist()
            td = TokenDataset(output, tokenizer=config, split=split)  # the reader trainers use
            toks = [np.concatenate([as_np[i]["cls"][None], as_np[i]["patches"]]) if "cls" in arrays
                    else as_np[i]["codes"] for i in (0, len(td) - 1)]
            assert np.array_equal(toks[0], td.tokens(0)) and np.array_equal(toks[1], td.tokens(len(td) - 1))


def test_webdataset_export_reads_back_with_webdataset(output, tmp_path):
    import webdataset as wds

    dest = tmp_path / "wds"
    result = export(output, dest, "webdataset", shard_size=5, with_images=True)
    for config, splits in result.samples.items():
        for split, n in splits.items():
            names = (dest / config / f"{split}.txt").read_text().split()
            assert len(names) == -(-n // 5)
            samples = list(wds.WebDataset([str(dest / config / name) for name in names], shardshuffle=False).decode())
            rows, arrays = _stored(output, config, split)
            assert [s["json"]["sample_id"] for s in samples] == rows["sample_id"].tolist()
            for i, (sample, row) in enumerate(zip(samples, rows.itertuples(), strict=True)):
                parts = [a[i].reshape(-1, a.shape[-1]) for a in arrays.values()]
                expect = np.concatenate(parts) if len(parts) > 1 else parts[0]
                tokens = sample["tokens.npy"]
                assert tokens.dtype == expect.dtype and np.array_equal(tokens, expect)
                meta = sample["json"]
                assert (meta["valence"], meta["arousal"], meta["modality"], meta["emotion"], meta["split"]) == (
                    row.valence, row.arousal, row.modality, row.emotion, split)
                image = getattr(row, "image_path", None)
                if isinstance(image, str):
                    assert sample["png"] == (output / image).read_bytes()
                else:
                    assert "png" not in sample


def test_an_export_is_a_step(v12, tmp_path):
    dest = tmp_path / "wds"
    first = export(v12, dest, "webdataset", shard_size=4)
    assert first.written and not first.up_to_date
    files, times = _files(dest), _mtimes(dest)
    again = export(v12, dest, "webdataset", shard_size=4)
    assert again.up_to_date and not again.written and again.key == first.key
    assert _mtimes(dest) == times
    assert not (dest / WORK_DIR).exists()

    other = export(v12, dest, "webdataset", shard_size=100)  # fewer, larger shards: old ones removed
    assert other.key != first.key and other.removed
    assert _files(dest) == _files(export(v12, tmp_path / "fresh", "webdataset", shard_size=100).dest)
    assert not any(rel in _files(dest) for rel in other.removed)

    (dest / next(iter(json.loads((dest / EXPORT_FILE).read_text())["files"]))).unlink()  # damaged: rebuilt
    assert not export(v12, dest, "webdataset", shard_size=100).up_to_date
    assert _files(dest) == _files(tmp_path / "fresh")
    assert files != _files(dest)


def test_export_refuses_what_it_did_not_write(v12, tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(ConfigError, match="did not write"):
        export(v12, foreign, "hf")
    assert (foreign / "holiday.jpg").read_bytes() == b"not ours"
    with pytest.raises(ConfigError, match="must not be the output folder"):
        export(v12, v12, "webdataset")
    with pytest.raises(ConfigError, match="no token store"):
        export(v12, tmp_path / "x", "webdataset", tokenizers=["vit-base-patch16-224"])
    with pytest.raises(ConfigError, match="no split"):
        export(v12, tmp_path / "x", "webdataset", splits=["validation"])
    with pytest.raises(ConfigError, match="format"):
        export(v12, tmp_path / "x", "tfrecord")
    one = export(v12, tmp_path / "one", "webdataset", tokenizers=["vit-tiny-test"], splits=["test"])
    assert one.samples == {"vit-tiny-test": {"test": 6}} and (tmp_path / "one" / "vit-tiny-test" / "test.txt").is_file()


KILLER = """
import os, signal, sys
from emoprep.manifests.export import hf_dataset, webdataset
from emoprep.manifests.export.step import export
mod = {"hf": hf_dataset, "webdataset": webdataset}[sys.argv[3]]
real, calls = mod.write_part, [0]
def write_part(path, source, rows, with_images):
    calls[0] += 1
    if calls[0] == int(sys.argv[4]):   # die halfway through this part: a temp file is left behind
        real(path, source, rows.iloc[: max(1, len(rows) // 2)], with_images)
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, source, rows, with_images)
mod.write_part = write_part
export(sys.argv[1], sys.argv[2], sys.argv[3], shard_size=3, with_images=sys.argv[3] == "webdataset")
"""


@pytest.mark.parametrize("fmt", ["hf", "webdataset"])
def test_a_killed_export_resumes_to_the_bytes_of_a_clean_one(v12, tmp_path, fmt):
    clean = export(v12, tmp_path / "clean", fmt, shard_size=3, with_images=fmt == "webdataset").dest
    dest = tmp_path / "killed"
    for kill_at in (3, 2):  # the second kill lands in a resumed run
        done = subprocess.run([sys.executable, "-c", KILLER, str(v12), str(dest), fmt, str(kill_at)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert not (dest / EXPORT_FILE).exists() and any(p.name.startswith(".tmp-") for p in dest.rglob("*"))
    resumed = export(v12, dest, fmt, shard_size=3, with_images=fmt == "webdataset")
    assert len(resumed.reused) == 3  # two parts before the first kill, one before the second
    assert _files(dest) == _files(clean)


def test_the_command_line_export(v12, tmp_path):
    dest = tmp_path / "hf"
    cmd = ["export", str(dest), "--format", "hf", "--out", str(v12), "--tokenizer", "vit-tiny-test"]
    first = invoke(*cmd)
    assert first.exit_code == 0, said(first)
    assert "vit-tiny-test" in first.stdout and "part file(s) written" in first.stdout
    again = invoke(*cmd)
    assert again.exit_code == 0 and "up to date" in again.stdout, said(again)
    bad = invoke(*cmd, "--with-images")
    assert bad.exit_code == 2 and "--with-images" in bad.stderr, said(bad)


def test_push_to_hub_asks_for_a_private_dataset_repo_and_skips_the_bookkeeping(monkeypatch, tmp_path):
    """Not a network test (none is possible here): what the thin wrapper asks huggingface_hub for."""
    import huggingface_hub

    calls: list[tuple[str, dict[str, object]]] = []

    class FakeApi:
        def __init__(self, token: str | None = None):
            calls.append(("init", {"token": token}))

        def create_repo(self, repo_id: str, **kw: object) -> None:
            calls.append(("create_repo", {"repo_id": repo_id, **kw}))

        def upload_folder(self, **kw: object) -> str:
            calls.append(("upload_folder", kw))
            return "https://huggingface.co/datasets/me/emo/commit/0"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert hub.push_to_hub(tmp_path, "me/emo").endswith("/commit/0")
    create, upload = calls[1][1], calls[2][1]
    assert create == {"repo_id": "me/emo", "repo_type": "dataset", "private": True, "exist_ok": True}
    assert upload["folder_path"] == str(tmp_path) and upload["repo_type"] == "dataset"
    assert f"{WORK_DIR}/*" in upload["ignore_patterns"]  # type: ignore[operator]
    hub.push_to_hub(tmp_path, "me/emo", private=False)
    assert calls[4][1]["private"] is False
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # the suite never reaches the network
