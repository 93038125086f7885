"""The `pmemo` ingest stage on the demo tree: every id kept or rejected for the reason the
generator planted, and the demo generation itself."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emoprep.pipeline.context import StageContext
from emoprep.pipeline.recipe import build_params
from emoprep.stages.demo.pmemo import demo_clips, write_pmemo_demo
from emoprep.stages.pmemo.stage import Pmemo, PmemoParams
from tests.helpers.stage_run import run_in_context


@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pmemo") / "PMEmo"
    write_pmemo_demo(root)
    return root


def _run(root: Path, tmp_path: Path):
    params = build_params(Pmemo.Params, {}, "pmemo")
    ctx: StageContext[PmemoParams] = StageContext(stage="pmemo", params=params, out_root=tmp_path,
                                                  out_dir=tmp_path / "pmemo" / "fp", roots={"pmemo": root})
    run = run_in_context(Pmemo(), ctx)
    return run.items, run.rows, run.rejects


def test_demo_tree_every_id_kept_or_rejected_for_its_planted_reason(demo_tree, tmp_path):
    items, rows, rejects = _run(demo_tree, tmp_path)
    specs = {s.music_id: s for s in demo_clips()}
    assert len(items) == len(specs) == len(rows) + len(rejects)
    assert {r.sample_id: r.reason for r in rejects} == {
        "pmemo:20": "missing-annotation", "pmemo:22": "unreadable-audio", "pmemo:40": "missing-audio"}
    assert rows["sample_id"].tolist() == [f"pmemo:{i}" for i in (1, 4, 5, 7, 9, 12, 15, 31)]
    by = rows.set_index("song_id")
    for sid, row in by.iterrows():
        spec = specs[sid]
        assert row["duration_s"] == pytest.approx(spec.duration_s, abs=0.06)
        assert row["channels"] == spec.channels and row["sample_rate"] == 44100
        assert row["audio_path"] == f"chorus/{sid}.mp3" and len(row["content_hash"]) == 64
        if spec.static:
            assert (row["static_valence_raw"], row["static_arousal_raw"]) == (spec.valence, spec.arousal)
            assert 0.1 <= row["static_valence_std"] <= 0.3
        else:
            assert pd.isna(row["static_valence_raw"])
        dv = np.asarray(row["dyn_valence"], dtype=float)
        assert abs(np.nanmean(dv) - spec.valence) < 0.08 and row["dyn_t0_s"] == 15.0 and row["dyn_hz"] == 2.0
    # the out-of-range dynamic arousal of id 5 is blanked and noted, the rest of it kept
    five = by.loc[5]
    assert np.isnan(five["dyn_arousal"][3]) and "outside [0, 1]" in five["annotation_issues"]
    assert five["dyn_n_frames"] == len(five["dyn_valence"]) - 1
    # unquoted commas in metadata: text left empty, numbers kept; clean rows complete
    assert pd.isna(by.loc[7, "title"]) and "unquoted comma" in by.loc[7, "metadata_issue"]
    assert by.loc[7, "chorus_end_s"] == pytest.approx(47 + 33.0)
    assert by.loc[9, "title"] == "Fields" and pd.isna(by.loc[9, "metadata_issue"])
    assert (tmp_path / "pmemo" / "fp" / "ingest.json").is_file()


def test_demo_generation_is_byte_deterministic(demo_tree, tmp_path):
    again = tmp_path / "PMEmo"
    write_pmemo_demo(again)
    for path in sorted(p for p in demo_tree.rglob("*") if p.is_file()):
        assert (again / path.relative_to(demo_tree)).read_bytes() == path.read_bytes(), path
