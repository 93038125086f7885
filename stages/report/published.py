"""The report's "as published vs corrected" section and its thesis count table.

A `*-published` recipe reproduces the thesis's own choices; `report.compare_with` names the
corrected recipe it differs from. For every parameter that differs, this module computes
from this run's manifests what the difference changes: the songs whose static valence and
arousal differ (from `audit.json`), the chunks the corrected tail and frame rules would add
or remove (from each song's decoded length, `song_n_samples`, and its dynamic frames), and
the songs a sample-level split puts in both train and test. `thesis_counts` sets each count
the thesis reports (seed 000, ch. 2) beside this run's.
"""
from __future__ import annotations

import json
from typing import Any

from emoprep.pipeline.catalog import StageCatalog
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import np, pd
from emoprep.pipeline.recipe import load_recipe, params_as_dict
from emoprep.stages.deam.audit import fix_plan
from emoprep.stages.report.run_view import RunView
from emoprep.stages.segments.spans import chunk_spans_samples, chunk_va, float_frames, frame_times_ms, pair_frames

CHUNK_KEYS = ("start_s", "chunk_s", "pad_tail_min_s", "min_frames", "sample_rate")


def id_runs(ids: Any) -> list[list[int]]:
    """[[first, last], ...] runs of consecutive ints (compact lists of song ids)."""
    out: list[list[int]] = []
    for i in sorted(int(x) for x in ids):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def param_differences(view: RunView, corrected: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every fingerprinted parameter whose value in this run differs from the corrected recipe."""
    def same(a: Any, b: Any) -> bool:
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

    return [{"stage": name, "key": key, "this_run": st.params[key], "corrected": corrected[name][key]}
            for name, st in view.stages.items() if name != "report" and name in corrected
            for key in sorted(set(st.params) & set(corrected[name]))
            if not same(st.params[key], corrected[name][key])]


def static_difference(view: RunView, corrected_mode: str) -> dict[str, Any] | None:
    """Songs whose static valence/arousal differ between this run's static_fix and the
    corrected one, and the clips (static-VA items) labelled with them."""
    deam = view.manifest("deam")
    audit = view.json_file("deam", "audit.json")
    if deam is None or audit is None or "static_fixed" not in deam:
        return None
    ids = deam["song_id"].astype(int).tolist()
    blocks = pd.DataFrame(audit.get("blocks") or [],
                          columns=["block", "kind", "id_min", "id_max", "n", "songs_crossed", "songs_straight",
                                   "vote", "verdict"])
    theirs = {i for e in fix_plan(blocks, corrected_mode, ids) for i in e["ids"]}
    mine = set(deam.loc[deam["static_fixed"].astype(bool), "song_id"].astype(int))
    # a swap changes nothing for a song whose valence equals its arousal (or lacks either)
    sv = pd.to_numeric(deam["static_valence_file"], errors="coerce")
    sa = pd.to_numeric(deam["static_arousal_file"], errors="coerce")
    movable = set(deam.loc[np.isfinite(sv) & np.isfinite(sa) & (sv != sa), "song_id"].astype(int))
    differ = sorted((mine ^ theirs) & movable)
    clips = view.manifest("clips")
    n_clips = int(clips["song_id"].astype(int).isin(differ).sum()) if clips is not None and "song_id" in clips else 0
    return {"this_run": view.stages["deam"].params.get("static_fix"), "corrected": corrected_mode,
            "songs": len(differ), "song_ids": id_runs(differ), "clips_affected": n_clips,
            "used_by_tokens": clips is not None}


def chunk_ids(song: int, n_samples: int, frames: tuple[np.ndarray, np.ndarray, np.ndarray],
              q: dict[str, Any]) -> set[str]:
    """The chunk ids the chunk rules `q` keep for one song (the `chunks` stage's arithmetic)."""
    dv, da, times = frames
    spans, _ = chunk_spans_samples(n_samples, float(q["start_s"]), float(q["chunk_s"]),
                                   float(q["pad_tail_min_s"]), int(q["sample_rate"]))
    return {f"deam:{song}:{sp.index}" for sp in spans
            if chunk_va(dv, da, times, sp.start_s, sp.end_s)[2] >= int(q["min_frames"])}


def chunk_difference(view: RunView, corrected: dict[str, Any]) -> dict[str, Any] | None:
    """Chunks the corrected rules add and remove, per song, from this run's manifests."""
    chunks, deam = view.manifest("chunks"), view.manifest("deam")
    if chunks is None or deam is None or "song_n_samples" not in chunks:
        return None
    mine = view.stages["chunks"].params
    if all(mine.get(k) == corrected.get(k) for k in CHUNK_KEYS):
        return None
    songs = deam.set_index(deam["song_id"].astype(int))
    first = chunks.groupby(chunks["song_id"].astype(int))["song_n_samples"].first()
    lengths: dict[int, int] = {int(str(k)): int(v) for k, v in first.items()}
    added: list[str] = []
    removed: list[str] = []
    recomputed_ok = True
    for song, n in lengths.items():
        r = songs.loc[song]
        dv, da = pair_frames(float_frames(r["dyn_valence"]), float_frames(r["dyn_arousal"]))
        frames = (dv, da, frame_times_ms(float(str(r["dyn_t0_s"])), float(str(r["dyn_hz"])), len(dv)))
        have = set(chunks.loc[chunks["song_id"].astype(int) == song, "sample_id"].astype(str))
        recomputed_ok &= chunk_ids(song, n, frames, mine) == have
        theirs = chunk_ids(song, n, frames, corrected)
        added += sorted(theirs - have)
        removed += sorted(have - theirs)
    return {"rules_this_run": {k: mine.get(k) for k in CHUNK_KEYS},
            "rules_corrected": {k: corrected.get(k) for k in CHUNK_KEYS},
            "chunks_this_run": len(chunks), "chunks_corrected": len(chunks) + len(added) - len(removed),
            "added": len(added), "removed": len(removed), "added_ids": added[:50], "removed_ids": removed[:50],
            "songs_compared": len(lengths), "recomputed_matches_manifest": bool(recomputed_ok)}


def split_leakage(view: RunView) -> dict[str, Any] | None:
    """Songs (sources) whose items sit in more than one split, and the non-train items that
    share a song with a train item (0 when the split is grouped by source)."""
    split = view.manifest("split")
    if split is None or not {"source_id", "split"} <= set(split.columns):
        return None
    n_splits = split.groupby("source_id")["split"].nunique()
    straddle = n_splits[n_splits > 1]
    with_train = set(split.loc[split["split"] == "train", "source_id"])
    per_source = n_splits
    held_out = split[split["split"] != "train"]
    sharing = held_out[held_out["source_id"].isin(with_train)]
    return {"group_by": view.stages["split"].params.get("group_by", "source"),
            "sources_in_two_splits": len(straddle), "sources": len(per_source),
            "held_out_items": len(held_out), "held_out_items_sharing_a_song_with_train": len(sharing),
            "by_split": {str(k): int(v) for k, v in sharing["split"].value_counts().sort_index().items()}}


def comparison(view: RunView, compare_with: str, catalog: StageCatalog | None) -> dict[str, Any] | None:
    """The "as published vs corrected" numbers, or None without `compare_with`; the recipe
    named there is read against `catalog` (the run's stages)."""
    if not compare_with:
        return None
    try:
        if catalog is None:
            raise ConfigError(f"no stage catalog to read recipe {compare_with!r} with")
        recipe = load_recipe(compare_with, catalog=catalog)
    except ConfigError as exc:
        return {"corrected_recipe": compare_with, "error": str(exc), "parameters": [], "static_va": None,
                "chunks": None, "split": None}
    corrected = {name: params_as_dict(recipe.params_for(recipe.stage(name)), include_runtime=False)
                 for name in view.stages if name in recipe.sections or name in ("deam", "chunks", "split")}
    return {"corrected_recipe": recipe.name, "error": None,
            "parameters": param_differences(view, corrected),
            "static_va": static_difference(view, str(corrected.get("deam", {}).get("static_fix", "auto"))),
            "chunks": chunk_difference(view, corrected["chunks"]) if "chunks" in corrected else None,
            "split": split_leakage(view)}


def _reasons(view: RunView, stage: str) -> pd.Series:
    rej = view.stage_rejects(stage)
    return rej["reason"].value_counts() if rej is not None and len(rej) else pd.Series(dtype="int64")


def thesis_counts(view: RunView) -> list[dict[str, Any]]:
    """Each count the thesis reports (seed 000, ch. 2) beside this run's, for the stages
    present, with why the two can differ."""
    rows: list[dict[str, Any]] = []

    def add(what: str, thesis: str, section: str, value: int | None, why: str) -> None:
        rows.append({"what": what, "thesis": thesis, "section": section, "this_run": value, "why": why})

    deam = view.manifest("deam")
    if deam is not None:
        add("DEAM tracks (songs indexed)", "1,802", "§2.1.1", len(deam) + int(_reasons(view, "deam").sum()),
            "every song with audio or annotations is counted, kept or rejected")
    clips = view.manifest("clips")
    if clips is not None:
        add("46 s clips (songs ≤ 46 s, padded)", "1,744", "§2.1.1, §2.1.7", len(clips),
            "1,802 − 58 full-length 2015 songs; decoded (gapless) length decides")
    chunks = view.manifest("chunks")
    if chunks is not None:
        why = _reasons(view, "chunks")
        n_tail, n_under = int(why.get("short-tail", 0)), int(why.get("under-annotated", 0))
        tail = view.stages["chunks"].params.get("pad_tail_min_s")
        add("5 s chunks cut from 15 s", "13,023", "§2.1.1", len(chunks) + n_tail + n_under,
            "kept + short-tail + under-annotated; depends on each song's decoded length")
        add("chunks shorter than 5 s dropped (short-tail)", "56", "§2.1.1", n_tail,
            f"tails under pad_tail_min_s = {tail} s are dropped; longer tails are padded")
        add("chunks dropped for too few annotated frames", "— (not in the thesis)", "", n_under,
            "emoprep's min_frames rule (the thesis states none)")
        add("5 s chunks kept", "12,974", "§2.1.1, §2.1.7", len(chunks),
            "the thesis's own figures disagree: 13,023 − 56 = 12,967")
    food = view.manifest("foodpics")
    if food is not None:
        add("FoodPics images indexed", "1,211", "§2.1.2", len(food) + int(_reasons(view, "foodpics").sum()),
            "every image row of the ratings sheet and every image file")
        images = view.manifest("images")
        add("FoodPics images kept", "1,066", "§2.1.2, §2.1.7", len(images) if images is not None else len(food),
            "food only, complete VA in all four groups, decodable; each removal is a reject")
    split = view.manifest("split")
    if split is not None and "modality" in split:
        thesis = {(0, "train"): "≈ 853", (0, "test"): "≈ 213"}
        audio = ("≈ 10,379", "≈ 2,595") if chunks is not None else ("1,395", "349")
        thesis.update({(1, "train"): audio[0], (1, "test"): audio[1]})
        group = view.stages["split"].params.get("group_by", "source")
        counts = split.assign(m=split["modality"].astype(int)).groupby(["m", "split"]).size()
        for key, n in counts.items():
            mod, name = (int(str(key[0])), str(key[1])) if isinstance(key, tuple) else (0, str(key))
            add(f"{'audio' if mod == 1 else 'image'} items in {name}", thesis.get((mod, name), "—"),
                "§2.1.5", int(n), f"80/20 per emotion class, grouped by {group}")
    return rows
