"""The report (SPEC §8): numbers that match the manifests, deterministic and relocatable
stage output, a documented JSON schema, robustness to absent and unknown stages, the
`emoprep report` command, and the page rendered by a real headless browser (Chromium)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.report_fixtures import UNKNOWN, make_tree
from emoprep.pipeline.context import StageContext
from emoprep.stages.report import plots as rp
from emoprep.stages.report.stage import Report, build_files
from emoprep.stages.report.json_schema import SCHEMA, schema_markdown, schema_problems

EMOPREP = Path(sys.executable).with_name("emoprep")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TEXT_FILES = ("index.html", "report.json", "DATASET.md", "SCHEMA.md", "recipe.toml", "report.schema.json")


def run_stage(root: Path, dirs: dict[str, str], after: tuple[str, ...] = ("tokens",)) -> Path:
    """Run the report stage as the runner would (whole-stage `run`); returns its folder."""
    out_dir = root / "report" / "00000000report00"
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(stage="report", params=Report.Params(after=after), out_root=root, out_dir=out_dir,
                       input_dirs={a: root / dirs[a] for a in after}, manifests={})
    outcome = Report().run(ctx)
    assert not outcome.rows and not outcome.rejects
    Report().on_current(root, out_dir)  # the runner calls this once the folder is current
    return out_dir


def files_of(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def all_rejects(root: Path, dirs: dict[str, str]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(root / d / "rejects.parquet") for d in dirs.values()], ignore_index=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree") / "out"
    dirs = make_tree(root)
    out_dir = run_stage(root, dirs, after=("tokens", UNKNOWN))
    return root, dirs, out_dir, json.loads((out_dir / "report.json").read_text())


# ---------------------------------------------------------------- numbers

def test_reject_counts_match_the_rejects_files(built):
    root, dirs, _, r = built
    rej = all_rejects(root, dirs)
    want = Counter(zip(rej["reason"], rej["stage"]))
    got = Counter({(x["reason"], s): n for x in r["rejects"]["by_reason"] for s, n in x["by_stage"].items()})
    assert got == want and r["rejects"]["total"] == len(rej)
    non_food = next(x for x in r["rejects"]["by_reason"] if x["reason"] == "non-food")
    assert non_food["by_stage"] == {"foodpics": 2} and non_food["documented"]
    assert [e["sample_id"] for e in non_food["examples"]] == ["foodpics:1001", "foodpics:1002"]
    odd = next(x for x in r["rejects"]["by_reason"] if x["reason"] == "odd-thing")
    assert not odd["documented"] and "undocumented" in odd["meaning"]


def test_label_split_and_emotion_numbers_match_the_split_manifest(built):
    root, dirs, _, r = built
    split = pd.read_parquet(root / dirs["split"] / "manifest.parquet")
    assert r["labels"]["stage"] == "split"
    assert r["splits"]["rows"] == dict(Counter(split["split"]))
    names = {0: "image", 1: "audio"}
    for m, g in split.groupby("modality"):
        mod = r["labels"]["by_modality"][names[m]]
        assert mod["samples"] == len(g) and mod["sources"] == g["source_id"].nunique()
        assert mod["valence"]["min"] == pytest.approx(g["valence"].min(), abs=1e-6)
        for s, gs in g.groupby("split"):
            want = Counter(gs["emotion"])
            got = r["emotions"]["counts"][names[m]][s]
            assert {k: v for k, v in got.items() if v} == dict(want)
            assert set(got) == set(r["emotions"]["classes"])  # zeros included


def test_categories_durations_and_chunks_match_their_manifests(built):
    root, dirs, _, r = built
    images = pd.read_parquet(root / dirs["images"] / "manifest.parquet")
    assert r["categories"]["column"] == "type"
    assert {c["category"]: c["n"] for c in r["categories"]["by_category"]} == dict(Counter(images["type"]))
    deam = pd.read_parquet(root / dirs["deam"] / "manifest.parquet")
    d = r["durations"]["deam"]
    assert d["n"] == len(deam) and sum(d["histogram"]["counts"]) == len(deam)
    assert d["max_s"] == pytest.approx(deam["duration_s"].max(), abs=1e-3)
    chunks = pd.read_parquet(root / dirs["chunks"] / "manifest.parquet")
    per_song = Counter(chunks["source_id"])
    want = Counter(per_song.get(s, 0) for s in deam["source_id"])
    c = r["chunks_per_song"]["chunks"]
    assert c["histogram"] == {str(k): v for k, v in sorted(want.items())}
    assert c["songs_without_chunks"] == want[0] == 1


def test_audit_weights_and_unknown_stage_are_reported(built):
    _, dirs, _, r = built
    (audit,) = r["audit"]
    assert [b["verdict"] for b in audit["blocks"]] == ["crossed", "straight", "insufficient"]
    assert audit["n_fixed"] == 8 and audit["blocks"][0]["fixed"] is True
    (w,) = r["weights"]
    assert w["random_init"] and w["tokenizer"] == "vit-tiny-test"
    assert w["rows_by_weights"] == {"random-init": sum(r["splits"]["rows"].values())}
    order = [s["name"] for s in r["stages"]]
    assert set(order) == set(dirs)
    for a, b in (("deam", "chunks"), ("chunks", "labels"), ("images", "labels"), ("labels", "split"),
                 ("split", "tokens"), ("chunks", UNKNOWN)):
        assert order.index(a) < order.index(b)
    mystery = next(s for s in r["stages"] if s["name"] == UNKNOWN)
    assert mystery["counters"] == {"frames": 12} and mystery["params"] == {"n_mfcc": 20}
    assert r["warnings"] == []


def test_each_tokenizer_of_a_multi_tokenizer_stage_is_listed(tmp_path):
    root = tmp_path / "out"
    dirs = make_tree(root, unknown_stage=False, two_tokenizers=True)
    files = build_files(root, dirs, Report.Params(), timings=False)
    r = json.loads(files["report.json"])
    tok = pd.read_parquet(root / dirs["tokens"] / "manifest.parquet")
    got = {w["tokenizer"]: (w["random_init"], w["sha256"], w["rows_by_weights"]) for w in r["weights"]}
    assert got == {"codes-test": (True, "random-init", {"random-init": int((tok["tokenizer"] == "codes-test").sum())}),
                   "vit-test": (False, "ab" * 32, {"ab" * 32: int((tok["tokenizer"] == "vit-test").sum())})}
    html = files["index.html"].decode()
    assert re.findall(r'class="banner danger" data-random-init="([^"]+)"', html) == ["codes-test"]
    assert "RANDOM-INIT WEIGHTS" in files["DATASET.md"].decode()


def test_report_json_follows_its_documented_schema(built):
    *_, r = built
    assert schema_problems(r) == []
    bad = json.loads(json.dumps(r))
    bad["surprise"] = 1
    bad["rejects"]["total"] = "13"
    del bad["splits"]["names"]
    problems = schema_problems(bad)
    assert any("surprise" in p for p in problems) and any("$.rejects.total" in p for p in problems)
    assert any("names" in p for p in problems)
    md = schema_markdown()
    for key in SCHEMA["properties"]:
        assert f"`{key}`" in md


# ---------------------------------------------------------------- files

def test_stage_output_is_deterministic_and_free_of_paths(tmp_path):
    outs = []
    for name in ("a", "b"):
        root = tmp_path / name / "out"
        out_dir = run_stage(root, make_tree(root))
        outs.append((root, files_of(out_dir), files_of(root / "report")))
    (ra, a, pa), (rb, b, pb) = outs
    assert a == b and pa == pb == a          # published copy = stage folder, byte for byte
    assert "timings.json" not in a            # timings are not stage output
    for name in TEXT_FILES:
        text = a[name].decode("utf-8")
        assert str(ra) not in text and str(tmp_path) not in text, name
    pngs = [n for n in a if n.endswith(".png")]
    assert len(pngs) >= 8
    for n in pngs:
        assert a[n][:8] == b"\x89PNG\r\n\x1a\n" and b"Matplotlib" not in a[n] and b"tIME" not in a[n]


def test_publish_replaces_stale_files_and_temp_leftovers(tmp_path):
    root = tmp_path / "out"
    dirs = make_tree(root)
    pub = root / "report"
    pub.mkdir(parents=True)
    (pub / "timings.json").write_text("{}")                 # from an earlier `emoprep report`
    (pub / ".tmp-0123456789ab-index.html").write_text("x")  # a killed writer's leftover
    (pub / "old-fingerprint").mkdir()                       # another stage folder: kept
    out_dir = run_stage(root, dirs)
    assert files_of(pub) == files_of(out_dir)
    assert (pub / "old-fingerprint").is_dir()


def test_missing_folders_and_unknown_stages_do_not_break_it(tmp_path):
    root = tmp_path / "out"
    dirs = make_tree(root)
    shutil.rmtree(root / dirs["labels"])
    files = build_files(root, dirs, Report.Params(), timings=False)
    r = json.loads(files["report.json"])
    assert any("labels" in w and "left out" in w for w in r["warnings"])
    assert r["labels"]["stage"] == "split" and r["splits"]["rows"]      # the rest is still there
    only = build_files(root, {UNKNOWN: dirs[UNKNOWN]}, Report.Params(), timings=False)
    r2 = json.loads(only["report.json"])
    assert [s["name"] for s in r2["stages"]] == [UNKNOWN] and r2["labels"]["by_modality"] == {}
    assert {f["file"] for f in r2["figures"]} == {"stage_counts.png", "rejects.png"}
    assert b"No stage with normalised valence/arousal" in only["index.html"]


def test_recipe_toml_rebuilds_the_same_parameters(tmp_path):
    from emoprep.pipeline.recipe import load_recipe, params_as_dict
    from emoprep.pipeline.registry import get_stage

    root = tmp_path / "out"
    dirs = make_tree(root, unknown_stage=False)
    files = build_files(root, dirs, Report.Params(), timings=False)
    (tmp_path / "recipe.toml").write_bytes(files["recipe.toml"])
    recipe = load_recipe(str(tmp_path / "recipe.toml"))
    assert recipe.targets == ["tokens"]
    for s in json.loads(files["report.json"])["stages"]:
        got = params_as_dict(recipe.params_for(get_stage(s["name"])), include_runtime=False)
        assert json.loads(json.dumps(got)) == s["params"], s["name"]


def test_hexbin_replaces_points_at_deam_scale():
    rng = np.random.default_rng(0)
    n_audio, n_image = 6000, 400
    df = pd.DataFrame({"modality": [1] * n_audio + [0] * n_image,
                       "valence": rng.uniform(-1, 1, n_audio + n_image), "arousal": rng.uniform(-1, 1, n_audio + n_image),
                       "dataset": ["deam"] * n_audio + ["foodpics"] * n_image})
    with rp.style():
        fig = rp.va_scatter(df, hexbin_above=2000)
        png1 = rp.to_png(fig)
        png2 = rp.to_png(rp.va_scatter(df, hexbin_above=2000))
    assert len(fig.axes) == 3                     # two panels + the audio panel's count colour bar
    assert "log" in fig.axes[2].get_ylabel()
    assert png1 == png2


# ---------------------------------------------------------------- the command

def test_report_command_adds_timings_and_says_where(tmp_path):
    root = tmp_path / "out"
    make_tree(root)
    proc = subprocess.run([str(EMOPREP), "report", "--out", str(root)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    index = root / "report" / "index.html"
    assert str(index) in proc.stdout.replace("\n", "")
    timings = json.loads((root / "report" / "timings.json").read_text())
    assert {t["name"]: t["seconds"] for t in timings["stages"]}["deam"] == 1.25
    html = index.read_text()
    assert 'id="timings"' in html and "1.25" in html and "report.json" in html


def test_report_command_with_nothing_to_report_exits_2(tmp_path):
    empty = tmp_path / "empty"
    (empty / "manifests").mkdir(parents=True)       # a run that finished no stage
    for out in (tmp_path / "nowhere", empty):
        proc = subprocess.run([str(EMOPREP), "report", "--out", str(out)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "nothing to report" in proc.stderr and "emoprep run" in proc.stderr


# ---------------------------------------------------------------- the demo data, in a browser

@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, demo_data) -> Path:
    """The real DAG on the demo data up to the split, then the report stage. Labels read the
    chunks directly and no tokenizer runs: the report's code path is the same, the test
    stays fast (the demo data themselves take ~12 s)."""
    demo = demo_data
    out = tmp_path_factory.mktemp("run") / "out"
    proc = subprocess.run([str(EMOPREP), "run", "--data-root", str(demo), "--out", str(out), "-q",
                           "--stage", "report", "--set", "report.after=['split']",
                           "--set", "labels.sources=['chunks', 'images']"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


def test_demo_report_shows_the_swapped_block_and_the_non_food_rejects(demo_run):
    r = json.loads((demo_run / "report" / "report.json").read_text())
    deam = pd.read_parquet(demo_run / "manifests" / "deam.parquet")
    (audit,) = r["audit"]
    low = next(b for b in audit["blocks"] if b["id_max"] == 1000)
    assert low["verdict"] == "crossed" and low["fixed"]
    assert all(b["verdict"] != "crossed" for b in audit["blocks"] if b["id_min"] > 1000)
    fixed = deam.loc[deam["static_fixed"], "song_id"]
    assert len(fixed) > 0 and (fixed <= 1000).all()
    assert all(hi <= 1000 for _, hi in audit["fixed_song_ids"])
    rejects = pd.read_parquet(demo_run / "manifests" / "rejects.parquet")
    n_non_food = int((rejects["reason"] == "non-food").sum())
    got = next(x for x in r["rejects"]["by_reason"] if x["reason"] == "non-food")
    assert n_non_food > 0 and got["count"] == n_non_food
    assert set(r["labels"]["by_modality"]) == {"image", "audio"}
    assert {f["file"] for f in r["figures"]} >= {"va_scatter.png", "va_by_category.png", "va_by_emotion.png",
                                                  "audit.png", "durations.png", "chunks_per_song.png", "rejects.png"}
    assert (demo_run / "manifests" / "report.parquet").is_file()


def dump_dom(page: Path, profile: Path) -> str:
    proc = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; "
                                               ".ci/run installs it): the browser test cannot run here")
def test_report_page_renders_in_headless_chromium(demo_run, tmp_path):
    index = demo_run / "report" / "index.html"
    r = json.loads((demo_run / "report" / "report.json").read_text())
    dom = dump_dom(index, tmp_path / "profile")
    attrs = dict(re.findall(r'data-images-(total|loaded|failed)="(\d+)"', dom))
    assert attrs, "the page's image check did not run (no data-images-* attributes)"
    assert int(attrs["failed"]) == 0
    assert int(attrs["loaded"]) == int(attrs["total"]) == len(r["figures"]) >= 7
    assert not re.search(r'(src|href)="(https?:)?//', dom)           # nothing from the network
    rejects = pd.read_parquet(demo_run / "manifests" / "rejects.parquet")
    for (stage, reason), n in rejects.groupby(["stage", "reason"]).size().items():
        row = re.search(rf'<tr data-reason="{re.escape(reason)}" data-stage="{re.escape(stage)}">(.*?)</tr>', dom)
        assert row and f'<td class="num">{n}</td>' in row.group(1), (stage, reason)
    assert re.search(r'<tr data-block="1-1000" data-verdict="crossed"', dom)
    n_fixed = int(pd.read_parquet(demo_run / "manifests" / "deam.parquet")["static_fixed"].sum())
    assert f'<b id="n-fixed">{n_fixed}</b>' in dom
    split = pd.read_parquet(demo_run / "manifests" / "split.parquet")
    for name, n in Counter(split["split"]).items():
        assert f'<div class="card"><b>{n:,}</b>{name} split</div>' in dom
