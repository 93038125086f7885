"""A generated output tree as the engine leaves it (stage folders with `_DONE.json`,
manifest and rejects Parquet, side files, `manifests/_current.json`), for the report tests,
and the few steps they share (run the report stage on it, read a folder back).

The data are random but structured like a thesis-v3 run: DEAM songs with a crossed static
block (ids ≤ 1000), chunks, FoodPics images with categories and non-food rejects, labels,
a split, a random-init token stage, and optionally a stage no report code knows about.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emoprep.pipeline.context import StageContext
from emoprep.pipeline.recipe import params_as_dict
from emoprep.stages.labels import emotion_class
from emoprep.stages.report.stage import Report, ReportParams
from tests.helpers.catalog import stage as get_stage

UNKNOWN = "mystery"  # a stage name no module registers


def run_stage(root: Path, dirs: dict[str, str], after: tuple[str, ...] = ("tokens",)) -> Path:
    """Run the report stage as the runner would (whole-stage `run`); returns its folder."""
    out_dir = root / "report" / "00000000report00"
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx: StageContext[ReportParams] = StageContext(
        stage="report", params=ReportParams(after=after), out_root=root, out_dir=out_dir,
        input_dirs={a: root / dirs[a] for a in after}, manifests={})
    outcome = Report().run(ctx)
    assert not outcome.rows and not outcome.rejects
    Report().on_current(root, out_dir)  # the runner calls this once the folder is current
    return out_dir


def files_of(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def all_rejects(root: Path, dirs: dict[str, str]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(root / d / "rejects.parquet") for d in dirs.values()], ignore_index=True)


def fp_of(name: str) -> str:
    return hashlib.sha256(f"fp-{name}".encode()).hexdigest()


def default_params(name: str) -> dict[str, Any]:
    return params_as_dict(get_stage(name).Params(), include_runtime=False)


def write_stage(root: Path, name: str, subdir: str, rows: pd.DataFrame, rejects: list[tuple[str, str, str]],
                inputs: dict[str, str], params: dict[str, Any], items: int | None = None,
                extra: dict[str, Any] | None = None, counters: dict[str, int] | None = None,
                seconds: float = 1.25) -> str:
    fp = fp_of(name)
    rel = f"{subdir}/{fp[:16]}"
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(d / "manifest.parquet", index=False)
    rej = pd.DataFrame(rejects, columns=["sample_id", "reason", "message"])
    rej.insert(1, "stage", name)
    rej.astype(str).to_parquet(d / "rejects.parquet", index=False)
    reasons = dict(sorted(Counter(r[1] for r in rejects).items()))
    done = {"stage": name, "fingerprint": fp, "inputs": inputs,
            "components": {"stage": name, "version": "1", "params": params, "libraries": {"numpy": "x"},
                           "extra": extra or {}, "inputs": {k: fp_of(k) for k in inputs}, "source": None},
            "counts": {"items": len(rows) + len(rejects) if items is None else items, "rows": len(rows),
                       "rejects": len(rejects), "reasons": reasons, "counters": counters or {}},
            "outputs": ["manifest.parquet", "rejects.parquet"], "emoprep_version": "0.1.0",
            "run": {"seconds": seconds, "resumed_items": 0, "executor": "local", "workers": 2}}
    (d / "_DONE.json").write_text(json.dumps(done, indent=2, sort_keys=True))
    return rel


def make_tree(root: Path, *, unknown_stage: bool = True, seed: int = 0, n_images: int = 12,
              two_tokenizers: bool = False) -> dict[str, str]:
    """Write the tree under `root`; returns {stage: folder} (also in manifests/_current.json).
    `two_tokenizers`: the tokens stage records two setups (audio codes with random-init
    weights, images with a checkpoint), as a multi-tokenizer recipe does."""
    rng = np.random.default_rng(seed)
    dirs: dict[str, str] = {}
    songs = [2, 3, 5, 8, 10, 13, 21, 34, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 2001, 2002]
    deam, chunks, chunk_rejects = [], [], []
    for sid in songs:
        full = sid > 2000
        n_frames = 200 if full else 60
        dv = np.clip(np.cumsum(rng.normal(0, 0.05, n_frames)) + rng.uniform(-0.6, 0.6), -1, 1)
        da = np.clip(np.cumsum(rng.normal(0, 0.05, n_frames)) + rng.uniform(-0.6, 0.6), -1, 1)
        sv, sa = 5 + 4 * dv.mean(), 5 + 4 * da.mean()
        crossed = sid <= 1000
        deam.append({"sample_id": f"deam:{sid}", "source_id": f"deam:{sid}", "modality": 1, "song_id": sid,
                     "duration_s": float(rng.uniform(120, 300) if full else rng.uniform(44.6, 45.6)),
                     "static_valence_file": sa if crossed else sv, "static_arousal_file": sv if crossed else sa,
                     "static_valence_raw": sv, "static_arousal_raw": sa, "static_fixed": crossed,
                     "dyn_valence": dv.tolist(), "dyn_arousal": da.tolist()})
        n_chunks = 0 if sid == 2002 else (6 if not full else 20)
        if n_chunks == 0:
            chunk_rejects.append((f"deam:{sid}", "too-short", f"MEMD_audio/{sid}.mp3: too short"))
        for k in range(n_chunks):
            f = slice(10 * k, 10 * k + 10)
            chunks.append({"sample_id": f"deam:{sid}:{k}", "source_id": f"deam:{sid}", "modality": 1,
                           "song_id": sid, "chunk_index": k, "valence_raw": float(dv[f].mean()),
                           "arousal_raw": float(da[f].mean())})
    deam_rej = [("deam:1011", "missing-annotation", "MEMD_audio/1011.mp3 has no row in the annotation CSVs")]
    dirs["deam"] = write_stage(root, "deam", "deam", pd.DataFrame(deam), deam_rej, {}, default_params("deam"))
    dirs["chunks"] = write_stage(root, "chunks", "chunks", pd.DataFrame(chunks), chunk_rejects,
                                 {"deam": dirs["deam"]}, default_params("chunks"), items=len(songs))
    (root / dirs["deam"] / "audit.json").write_text(json.dumps({
        "static_fix": "auto", "n_fixed": 8,
        "fixed_song_ids": [[2, 3], [5, 5], [8, 8], [10, 10], [13, 13], [21, 21], [34, 34]],
        "blocks": [
            {"block": "1-1000", "kind": "standard", "id_min": 1, "id_max": 1000, "n": 8, "r_sv_dv": -0.1,
             "r_sa_da": -0.12, "r_sv_da": 0.99, "r_sa_dv": 0.98, "straight": -0.11, "crossed": 0.985,
             "verdict": "crossed", "fixed": True},
            {"block": "1001-2000", "kind": "standard", "id_min": 1001, "id_max": 2000, "n": 7, "r_sv_dv": 0.99,
             "r_sa_da": 0.98, "r_sv_da": 0.1, "r_sa_dv": 0.05, "straight": 0.985, "crossed": 0.075,
             "verdict": "straight", "fixed": False},
            {"block": "2001-2058", "kind": "standard", "id_min": 2001, "id_max": 2058, "n": 2, "r_sv_dv": None,
             "r_sa_da": None, "r_sv_da": None, "r_sa_dv": None, "straight": None, "crossed": None,
             "verdict": "insufficient", "fixed": False}],
        "warnings": [], "n_parse_problems": 0, "parse_problems": [], "zip_checks": [], "files": {}}))

    types = ["Sweets", "Fruit", "Vegetables"]
    food = [{"sample_id": f"foodpics:{i}", "source_id": f"foodpics:{i}", "modality": 0, "image_no": i,
             "valence_raw": float(rng.uniform(30, 80)), "arousal_raw": float(rng.uniform(20, 70)),
             "type": types[i % 3]} for i in range(1, n_images + 1)]
    food_rej = [("foodpics:1001", "non-food", "image 1001 (sheet row 40): type = 'Non-Food'"),
                ("foodpics:1002", "non-food", "image 1002 (sheet row 41): type = 'Non-Food'"),
                (f"foodpics:{n_images + 1}", "incomplete-va", "3 of 4 rater groups")]
    dirs["foodpics"] = write_stage(root, "foodpics", "foodpics", pd.DataFrame(food), food_rej, {},
                                   default_params("foodpics"))
    dirs["images"] = write_stage(root, "images", "images", pd.DataFrame(food), [], {"foodpics": dirs["foodpics"]},
                                 default_params("images"))

    labels = []
    for r in chunks + food:
        v, a = float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))
        labels.append({"sample_id": r["sample_id"], "source_id": r["source_id"], "modality": r["modality"],
                       "valence_raw": r["valence_raw"], "arousal_raw": r["arousal_raw"],
                       "valence": v, "arousal": a, "emotion": emotion_class(v, a)})
    lab = pd.DataFrame(labels)
    lp = default_params("labels") | {"sources": ["chunks", "images"]}
    dirs["labels"] = write_stage(root, "labels", "labels", lab, [],
                                 {"chunks": dirs["chunks"], "images": dirs["images"]}, lp)
    (root / dirs["labels"] / "normalisation.json").write_text(json.dumps({"method": "minmax", "bounds": {
        "0": {"valence": [30.0, 80.0], "arousal": [20.0, 70.0]},
        "1": {"valence": [-0.9, 0.9], "arousal": [-0.8, 0.85]}}}))
    src_split = {s: ("test" if int(hashlib.sha256(s.encode()).hexdigest(), 16) % 5 == 0 else "train")
                 for s in sorted(set(lab["source_id"]))}
    split = lab.assign(split=lab["source_id"].map(src_split))
    dirs["split"] = write_stage(root, "split", "split", split, [], {"labels": dirs["labels"]}, default_params("split"))
    (root / dirs["split"] / "split_summary.json").write_text(json.dumps({
        "method": "quota", "names": ["train", "test"], "ratios": [0.8, 0.2], "seed": 0,
        "rows": dict(Counter(split["split"])), "sources": {}, "strata": []}))
    tok = split.assign(tokenizer="vit-tiny-test", weights="random-init")
    tp = default_params("tokens") | {"tokenizer": "vit-tiny-test"}
    extra = {"weights": {"name": "vit-tiny-test", "seed": 0, "sha256": "random-init"},
             "device": "cpu", "compute_dtype": "float32"}
    if two_tokenizers:
        audio = tok["modality"] == 1
        tok["tokenizer"] = np.where(audio, "codes-test", "vit-test")
        tok["weights"] = np.where(audio, "random-init", "ab" * 32)
        extra = {"tokenizers": {
            "codes-test": {"weights": {"name": "codes-test", "seed": 0, "sha256": "random-init"},
                           "device": "cpu", "compute_dtype": "float32"},
            "vit-test": {"weights": {"name": "vit-test", "seed": 0, "sha256": "ab" * 32},
                         "device": "cpu", "compute_dtype": "float32"}}}
    dirs["tokens"] = write_stage(root, "tokens", "tokens/vit-tiny-test", tok, [],
                                 {"images": dirs["images"], "split": dirs["split"]}, tp, items=1, extra=extra)
    if unknown_stage:
        rows = pd.DataFrame({"sample_id": [c["sample_id"] for c in chunks[:5]], "mfcc_mean": rng.normal(size=5)})
        dirs[UNKNOWN] = write_stage(root, UNKNOWN, UNKNOWN, rows,
                                    [(str(chunks[5]["sample_id"]), "odd-thing", "a new reason")],
                                    {"chunks": dirs["chunks"]}, {"n_mfcc": 20}, counters={"frames": 12})
    (root / "manifests").mkdir(parents=True, exist_ok=True)
    (root / "manifests" / "_current.json").write_text(json.dumps(
        {k: {"dir": v, "fingerprint": v.rsplit("/", 1)[1]} for k, v in sorted(dirs.items())}, indent=2))
    return dirs
