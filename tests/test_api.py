"""The Python API (`import emoprep`): run, status and validate return what the command line
prints, and errors raise instead of exiting."""
from __future__ import annotations

import pytest

import emoprep
from emoprep.commands import set_args
from emoprep.pipeline.errors import ConfigError
from tests.helpers.catalog import recipe as load_recipe


def test_run_status_validate_from_python(demo_data, tmp_path):
    out = tmp_path / "out"
    summaries = emoprep.run("thesis-v3", data_root=demo_data, out=out, stage="spectrogram",
                            sets={"chunks.min_frames": 2}, workers=2)
    assert [(s.name, s.status) for s in summaries] == [("deam", "ran"), ("chunks", "ran"), ("spectrogram", "ran")]
    assert summaries[-1].rows > 0 and summaries[-1].rows + summaries[-1].rejects >= summaries[1].rows
    stages = emoprep.status(out)
    assert [(s["stage"], s["status"]) for s in stages] == [(n, "done") for n in ("deam", "chunks", "spectrogram")]
    assert [s.status for s in emoprep.run("thesis-v3", data_root=demo_data, out=out, stage="spectrogram",
                                          sets=["chunks.min_frames=2"])] == ["up-to-date"] * 3
    assert {s["stage"]: s["status"] for s in emoprep.status(out, sets={"chunks.min_frames": 3})}["chunks"] == "stale"
    assert emoprep.validate(out).ok


def test_python_values_become_the_recipes_parameters():
    rec = load_recipe("thesis-v3", set_args({"tokens.tokenizer": "vit-tiny-test", "split.seed": 3,
                                             "spectrogram.keep_fullres": True, "split.ratios": [0.8, 0.1, 0.1]}))
    assert rec.sections["tokens"]["tokenizer"] == "vit-tiny-test" and rec.sections["split"]["seed"] == 3
    assert rec.sections["spectrogram"]["keep_fullres"] is True and rec.sections["split"]["ratios"] == [0.8, 0.1, 0.1]
    with pytest.raises(ConfigError):
        set_args({"split.seed": object()})


def test_errors_raise_instead_of_exiting(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        emoprep.run(data_root=tmp_path / "missing", out=tmp_path / "out")


def test_export_from_python(tmp_path):
    from tests.helpers.token_fixtures import build_store

    root = tmp_path / "out"
    index, _ = build_store(root, n_songs=3, chunks=2, n_images=4)
    result = emoprep.export(root, tmp_path / "wds", format="webdataset", shard_size=10)
    assert sum(sum(splits.values()) for splits in result.samples.values()) == len(index)
    assert emoprep.export(root, tmp_path / "wds", format="webdataset", shard_size=10).up_to_date
    with pytest.raises(ConfigError, match="format"):
        emoprep.export(root, tmp_path / "x", format="zip")
