"""`emoprep probe` end to end on a small real run (tiny ViT), and its errors with the exit
codes the README's table gives (1: the data, 2: the command)."""
from __future__ import annotations

import json
import shutil
from typing import Any

import numpy as np
import pandas as pd
import pytest

import emoprep
from emoprep.stages.probe.schema import probe_problems
from emoprep.stages.probe.synthetic import chunk_items, planted_layers, write_pooled_store
from tests.helpers.cli import invoke as emoprep_cli

RECORD_KEYS = {"tokenizer", "layer", "modality", "target", "model", "level", "n_train", "n_test", "r2", "ccc",
               "rmse", "r2_ci95", "f1_macro", "accuracy"}


def invoke(*args):
    return emoprep_cli("probe", *map(str, args))


def test_probe_command_on_a_run(tiny_run, tmp_path):
    root, index = tiny_run
    out = tmp_path / "out"
    shutil.copytree(root, out)
    done = invoke("--out", out, "--folds", "3", "--target", "both", "--pooling", "mean", "--pooling", "cls")
    assert done.exit_code == 0, done.output
    assert "probe.json (written)" in done.output and "vit-tiny-test" in done.output
    (path,) = (out / "probe").glob("*/probe.json")
    doc = json.loads(path.read_text())
    assert not probe_problems(doc)
    table = pd.DataFrame(doc["results"])
    assert set(table.columns) >= RECORD_KEYS
    assert set(table["modality"]) == {"audio", "image", "all"}
    assert set(table["pooling"]) == {"mean", "cls"}
    assert set(table["model"]) == {"ridge", "mean", "random-features"}
    assert set(table["target"]) == {"valence", "arousal", "emotion"}
    assert set(table.loc[table["modality"] == "audio", "level"]) == {"item", "song"}  # chunks: per song too
    n_test = int((index["split"] == "test").sum())
    assert table.loc[(table["modality"] == "all") & (table["level"] == "item"), "n_test"].max() == n_test
    assert (path.parent / "probe.png").read_bytes()[:4] == b"\x89PNG"
    again = invoke("--out", out, "--folds", "3", "--target", "both", "--pooling", "mean", "--pooling", "cls")
    assert again.exit_code == 0 and "up to date" in again.output
    assert emoprep.probe(out, folds=3, target="both", poolings=["mean", "cls"]).up_to_date


def store(tmp_path, **changes):
    items = chunk_items(n_songs=12, chunks=2)
    return write_pooled_store(tmp_path / "store", items.assign(**changes), planted_layers(items, 2, 8, 0))


def test_store_without_va_exits_1(tmp_path):
    done = invoke("--out", store(tmp_path, valence=np.nan, arousal=np.nan), "--dest", tmp_path / "p")
    assert done.exit_code == 1 and "no item has a valence label" in done.output


def test_split_without_test_items_exits_1(tmp_path):
    done = invoke("--out", store(tmp_path, split="train"), "--dest", tmp_path / "p")
    assert done.exit_code == 1 and "no audio items in the 'test' split" in done.output


@pytest.mark.parametrize(("args", "message"), [
    (("--tokenizer", "vit-base-patch16-224"), "no token store ['vit-base-patch16-224']"),
    (("--layers", "7"), "no layer ['7']"),
    (("--pooling", "cls"), "pooling ['cls'] does not apply"),
    (("--folds", "11"), "--folds 11 needs at least 11 audio songs"),
    (("--target", "mood"), "Invalid value"),
])
def test_usage_errors_exit_2(tmp_path, args, message):
    done = invoke("--out", store(tmp_path), "--dest", tmp_path / "p", *args)
    assert done.exit_code == 2 and message in done.output, done.output


def test_store_failing_validation_exits_1(tmp_path):
    folder = store(tmp_path)
    shard = folder / "hidden-00000.npy"
    data = bytearray(shard.read_bytes())
    data[-4:] = b"\x00\x00\xc0\x7f"   # a NaN where a token was; the recorded checksum no longer matches
    shard.write_bytes(bytes(data))
    done = invoke("--out", folder, "--dest", tmp_path / "p")
    assert done.exit_code == 1 and "fails validation" in done.output and "shard-checksums" in done.output


def test_no_output_exits_2(tmp_path):
    done = invoke("--out", tmp_path / "nothing")
    assert done.exit_code == 2


def test_readme_python_snippet_runs(tiny_run, tmp_path):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    section = text.split("## Probing a store", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    out = tmp_path / "out"
    shutil.copytree(tiny_run[0], out)
    scope: dict[str, Any] = {}
    exec(compile(code.replace('"emoprep-out"', repr(str(out))), "README.md (probe)", "exec"), scope)  # noqa: S102
    assert set(scope["df"]["tokenizer"]) == {"vit-tiny-test"} and scope["result"].path.is_file()
