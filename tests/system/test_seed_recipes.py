"""The seed recipes end to end on the demo data, through the CLI, into one output folder (the
shared ingest stages run once): seed004-salient and seed002-pairs by default, seed003-features
and seed001-mel marked slow (`make test-slow`); every recipe is at least planned by default,
and opens with the list of its differences from the paper that its report repeats.
Each run's outputs are checked here, since these recipes end before any token store
`emoprep validate` could check."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.helpers.cli import invoke, said
from tests.helpers.paths import EMOPREP

pytestmark = pytest.mark.system  # end to end in subprocesses; `-m 'not slow and not system'` skips them


@pytest.fixture(scope="module")
def demo(demo_data: Path) -> Path:
    return demo_data


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("seed-out") / "out"


def run(recipe: str, demo: Path, out: Path) -> str:
    proc = subprocess.run([str(EMOPREP), "run", "--recipe", recipe, "--data-root", str(demo), "--out", str(out), "-q"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    check = invoke("validate", "--out", str(out))
    assert check.exit_code == 0, said(check)   # each recipe's outputs validate
    return proc.stdout


def manifest(out: Path, stage: str) -> pd.DataFrame:
    return pd.read_parquet(out / "manifests" / f"{stage}.parquet")


def rejects(out: Path, stage: str) -> pd.DataFrame:
    r = pd.read_parquet(out / "manifests" / "rejects.parquet")
    return r[r["stage"] == stage]


def stage_dir(out: Path, stage: str) -> Path:
    current = json.loads((out / "manifests" / "_current.json").read_text())
    rel: str = current[stage]["dir"]
    return out / rel


def test_seed004_salient(demo, out):
    run("seed004-salient", demo, out)
    songs = pd.concat([manifest(out, "deam"), manifest(out, "pmemo")])
    sal = manifest(out, "salient")
    assert sorted(sal["sample_id"]) == sorted(songs["sample_id"]) and rejects(out, "salient").empty
    for r in sal.to_dict("records"):
        audio, sr = sf.read(out / r["path"], dtype="float32")
        assert sr == 44100 and len(audio) == 30 * 44100
        assert r["start_s"] >= 0 and r["end_s"] <= r["duration_s"] + 1e-6 and r["start_s"] == int(r["start_s"])
        assert r["score"] == pytest.approx(max(r["window_scores"]), rel=1e-9)
    short = sal.set_index("sample_id").loc["pmemo:4"]   # a 22.4 s chorus: whole, zero-padded
    assert short.start_s == 0 and short.padded_s == pytest.approx(7.6, abs=0.01)
    assert set(sal["dataset"]) == {"deam", "pmemo"}


def test_seed004_splits_the_songs_80_10_10(demo, out):
    """One salient segment per song, so the split's unit is the song; every labelled song is
    placed, unstratified as the seed's, and the totals are within one song of 80/10/10."""
    run("seed004-salient", demo, out)
    sal, labels, split = manifest(out, "salient"), manifest(out, "labels"), manifest(out, "split")
    assert dict(rejects(out, "labels")[["sample_id", "reason"]].values) == {"pmemo:15": "missing-va"}
    assert sorted(split["sample_id"]) == sorted(labels["sample_id"]) == sorted(set(sal["sample_id"]) - {"pmemo:15"})
    assert (split["source_id"] == split["sample_id"]).all() and set(split["split"]) == {"train", "val", "test"}
    assert split["valence"].between(-1, 1).all() and split["arousal"].between(-1, 1).all()
    summary = json.loads((stage_dir(out, "split") / "split_summary.json").read_text())
    assert {s["emotion"] for s in summary["strata"]} == {"*"}  # not stratified by class
    counts = split["split"].value_counts()
    assert counts.to_dict() == summary["rows"] and len(split) == 25
    for name, r in {"train": 0.8, "val": 0.1, "test": 0.1}.items():
        assert abs(counts.get(name, 0) - r * len(split)) <= 1, counts.to_dict()


SEED_RECIPES = ("seed001-mel", "seed002-pairs", "seed003-features", "seed004-salient")


def _opening_list(text: str) -> tuple[str, list[str]]:
    """The recipe's opening comment list: its title line and its items (wrapped lines joined)."""
    lines = text.splitlines()
    items: list[str] = []
    for line in lines[1:]:
        if line.startswith("# - "):
            items.append(line[4:])
        elif line.startswith("#   ") and items:
            items[-1] += " " + line[4:]
        else:
            break
    return lines[0], items


@pytest.mark.parametrize("recipe", SEED_RECIPES)
def test_seed_recipe_opens_with_its_differences_and_reports_them(recipe):
    """The list the recipe file opens with is, sentence for sentence, [report] deviations (so
    the dataset card and the report page carry it)."""
    from emoprep.stages.catalog import builtin_catalog

    text = builtin_catalog().shipped_recipes()[recipe]
    title, items = _opening_list(text)
    assert title == f"# Differs from the paper ({recipe.split('-')[0]}):"
    deviations = tomllib.loads(text)["report"]["deviations"]
    assert items and [re.sub(r"\s+", " ", d) for d in deviations] == items
    assert "report" in tomllib.loads(text)["recipe"]["targets"]


def test_every_seed_recipe_plans_on_the_demo_data(demo, out):
    """Cheap guard for the recipe files: parameters valid, DAG and data roots resolve."""
    from emoprep.pipeline.runner import Runner
    from tests.helpers.catalog import recipe as load_recipe

    for recipe in SEED_RECIPES:
        plan = Runner(load_recipe(recipe), out, demo, "cpu").plan()
        assert plan[-1].name in load_recipe(recipe).targets, recipe


@pytest.mark.slow   # ~20 s of CPU: the features of 26 songs (the logic is unit-tested in test_features)
def test_seed003_features_merges_deam_and_pmemo_on_one_scale(demo, out):
    run("seed003-features", demo, out)
    feats = manifest(out, "features")
    assert len(feats) == len(manifest(out, "deam")) + len(manifest(out, "pmemo"))
    cols = [c for c in feats.columns if c.endswith(("_mean", "_std")) or c == "tempo"]
    assert len(cols) == 149 and np.isfinite(feats[cols].to_numpy()).all()
    labels = manifest(out, "labels").set_index("sample_id")
    pm = manifest(out, "pmemo").set_index("sample_id")
    kept = pm[pm["static_valence_raw"].notna()]
    for sid, row in kept.iterrows():   # PMEmo 0–1 → [-1, 1]
        assert labels.loc[str(sid), "valence"] == pytest.approx(2 * row["static_valence_raw"] - 1)
    deam = manifest(out, "deam").set_index("sample_id")
    for sid, row in deam.iterrows():   # DEAM 1–9 → [-1, 1]
        assert labels.loc[str(sid), "arousal"] == pytest.approx((row["static_arousal_raw"] - 5) / 4)
    assert dict(rejects(out, "labels")[["sample_id", "reason"]].values) == {"pmemo:15": "missing-va"}
    norm = json.loads((stage_dir(out, "labels") / "normalisation.json").read_text())
    assert norm["method"] == "fixed" and set(norm["bounds"]) == {"deam", "pmemo"}
    split = manifest(out, "split")
    assert set(split["split"]) == {"train", "test"} and len(split) == len(labels)


def test_seed002_pairs(demo, out):
    run("seed002-pairs", demo, out)
    pairs, split = manifest(out, "pairs"), manifest(out, "split").set_index("sample_id")
    audio_items = split[split["modality"] == 1]
    assert len(pairs) + len(rejects(out, "pairs")) == len(audio_items) and len(pairs) > 0
    assert set(split["split"]) <= {"train", "val", "test"}
    for r in pairs.to_dict("records"):
        assert split.loc[r["image_id"], "emotion"] == split.loc[r["audio_id"], "emotion"] == r["label"]
        assert split.loc[r["image_id"], "split"] == split.loc[r["audio_id"], "split"] == r["split"]
        assert (out / r["audio_path"]).is_file() and (out / r["image_path"]).is_file()
    with open(stage_dir(out, "pairs") / "pairs.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert sorted(t["audio_id"] for t in table) == sorted(pairs["audio_id"])


def test_second_runs_are_no_ops(demo, out):
    for recipe in ("seed004-salient", "seed002-pairs"):
        text = run(recipe, demo, out)
        assert " ran " not in text and "up-to-date" in text, recipe


@pytest.mark.slow
def test_seed001_mel_still_runs(demo, out):
    run("seed001-mel", demo, out)
    spec = manifest(out, "spectrogram")
    first = spec.iloc[0]
    arr = np.load(out / first["path"], allow_pickle=False, mmap_mode="r")   # one shard per song
    assert arr[int(first["row"])].shape == (1, 128, 130) and arr.dtype == np.float32
