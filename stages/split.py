"""The `split` stage: train/test (or train/val/test) assignment by source (SPEC §4 split).

Requirements and how they are met:

- *Grouped by source*: the unit of assignment is `source_id` (a song), so the chunks of one
  song always share a split.
- *Deterministic, seeded*: a source's position is u = keyed BLAKE2b(seed, source_id) mapped
  to [0, 1); no global RNG, no dependence on row order.
- *Stable when data is added* (method `hash`, the default): a source's split is a function of
  (seed, ratios, source_id) alone — it goes to the first split whose cumulative ratio exceeds
  u. Adding or removing other sources therefore cannot move it, and neither can a change of
  its own emotion class (min-max normalisation over a grown dataset can change classes).
  This is also the *only* way to be stable: if adding any set T must leave s unchanged, then
  split(s, S) = split(s, {s} ∪ S) = split(s, {s}), a function of s alone.
- *Stratified by emotion class*: with a hash, every stratum (modality × the source's most
  frequent emotion class) gets the target ratios in expectation, with binomial spread
  (±2σ ≈ ±8 points for a 100-source stratum at 80/20). `split_summary.json` reports the
  achieved ratio of each stratum. Method `quota` sorts each stratum's sources by u and cuts
  at the target ratios, so every stratum is within one source of the target — at the price
  of stability: adding sources to a stratum can move old ones across a cut.
"""
from __future__ import annotations

import bisect
import hashlib
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from emoprep.atomic import atomic_write_json
from emoprep.errors import ConfigError
from emoprep.stage import Outcome, Reject, Stage, register

DEFAULT_NAMES = {2: ("train", "test"), 3: ("train", "val", "test")}
METHODS = ("hash", "quota")


@register
class Split(Stage):
    name = "split"
    version = "1"
    default_inputs = ("labels",)
    description = "seeded train/test split grouped by source, stratified by emotion, stable under additions"

    @dataclass(frozen=True)
    class Params:
        seed: int = 0
        ratios: tuple[float, ...] = (0.8, 0.2)
        names: tuple[str, ...] = ()   # default: train/test, or train/val/test for 3 ratios
        method: str = "hash"          # hash (stable when data is added) | quota (exact per stratum)

    def run(self, ctx: Any) -> Outcome:
        p = ctx.params
        names, cuts = split_plan(p.ratios, p.names)
        if p.method not in METHODS:
            raise ConfigError(f"split.method {p.method!r}: expected one of {', '.join(METHODS)}")
        rows, rejects = clean_labels(ctx.input_manifest("labels"))
        strata = source_strata(rows)
        if p.method == "hash":
            assigned = {s: names[place(unit_hash(p.seed, s), cuts)] for s in strata.index}
        else:
            assigned = assign_quota(strata, p.seed, names, cuts)
        rows["split"] = rows["source_id"].map(assigned)
        summary = split_summary(rows, strata, names, p)
        atomic_write_json(ctx.out_dir / "split_summary.json", summary)
        ctx.info("split: " + ", ".join(f"{k} {v}" for k, v in summary["rows"].items()), **summary["rows"])
        return Outcome(rows=rows.to_dict("records"), rejects=rejects)


def split_plan(ratios: Any, names: Any) -> tuple[tuple[str, ...], list[float]]:
    """Validate ratios and names; return the names and the cumulative cut points (last = 1)."""
    ratios = [float(r) for r in ratios]
    if len(ratios) < 2 or any(not math.isfinite(r) or r <= 0 for r in ratios):
        raise ConfigError(f"split.ratios {ratios}: need two or more positive ratios, e.g. [0.8, 0.2]")
    if abs(sum(ratios) - 1.0) > 1e-6:
        raise ConfigError(f"split.ratios {ratios} sum to {sum(ratios):g}, expected 1")
    names = tuple(names) or DEFAULT_NAMES.get(len(ratios), ())
    if len(names) != len(ratios) or len(set(names)) != len(names) or not all(names):
        raise ConfigError(f"split.names {list(names)}: need {len(ratios)} distinct names for ratios {ratios}")
    cuts, acc = [], 0.0
    for r in ratios:
        acc += r
        cuts.append(acc)
    cuts[-1] = 1.0  # u < 1 always lands somewhere despite float rounding of the sum
    return names, cuts


def unit_hash(seed: int, source_id: str) -> float:
    """Keyed hash of a source id → u in [0, 1); the same on every machine and Python."""
    digest = hashlib.blake2b(str(source_id).encode("utf-8"), digest_size=8,
                             key=str(int(seed)).encode("ascii"), person=b"emoprep-split").digest()
    return int.from_bytes(digest, "big") / 2.0**64


def place(u: float, cuts: list[float]) -> int:
    """Index of the first split whose cumulative ratio exceeds u."""
    return bisect.bisect_right(cuts, u)


def clean_labels(labels: pd.DataFrame) -> tuple[pd.DataFrame, list[Reject]]:
    """Sorted label rows without duplicate ids or missing sources (each such row is a reject)."""
    df = labels.sort_values("sample_id", kind="stable").reset_index(drop=True)
    rejects = []
    dup = df["sample_id"].duplicated(keep="first")
    for sid in df.loc[dup, "sample_id"]:
        rejects.append(Reject(str(sid), "duplicate-id", f"label row {sid}: id appears more than once; first kept"))
    no_src = ~dup & (df["source_id"].isna() | (df["source_id"].astype(str).str.strip() == ""))
    for sid in df.loc[no_src, "sample_id"]:
        rejects.append(Reject(str(sid), "missing-source-id", f"label row {sid}: no source_id, cannot group it"))
    return df[~dup & ~no_src].reset_index(drop=True), rejects


def source_strata(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per source: its modality and emotion stratum (most frequent class, ties by name)."""
    emo = rows["emotion"].fillna("unknown").astype(str) if "emotion" in rows else pd.Series("unknown", index=rows.index)
    counts = (pd.DataFrame({"source_id": rows["source_id"].astype(str), "modality": rows["modality"], "emotion": emo})
              .value_counts().reset_index(name="n"))
    counts = counts.sort_values(["source_id", "n", "emotion"], ascending=[True, False, True], kind="stable")
    return counts.drop_duplicates("source_id").set_index("source_id")[["modality", "emotion"]]


def assign_quota(strata: pd.DataFrame, seed: int, names: tuple[str, ...], cuts: list[float]) -> dict[str, str]:
    """Exact ratios per stratum: sources ordered by u, the r-th of n goes where (r + ½)/n falls."""
    out: dict[str, str] = {}
    for _key, grp in strata.groupby(["modality", "emotion"], sort=True):
        ordered = sorted(grp.index, key=lambda s: (unit_hash(seed, s), s))
        n = len(ordered)
        for r, s in enumerate(ordered):
            out[s] = names[place((r + 0.5) / n, cuts)]
    return out


def split_summary(rows: pd.DataFrame, strata: pd.DataFrame, names: tuple[str, ...], p: Any) -> dict[str, Any]:
    """Counts per split overall and per stratum (rows and sources), for the report and the log."""
    src_split = rows.drop_duplicates("source_id").set_index("source_id")["split"]
    st = strata.assign(split=src_split.reindex(strata.index))
    per = []
    for (mod, emo), grp in st.groupby(["modality", "emotion"], sort=True):
        counts = grp["split"].value_counts()
        per.append({"modality": int(mod), "emotion": emo, "sources": int(len(grp)),
                    **{n: int(counts.get(n, 0)) for n in names}})
    row_counts = rows["split"].value_counts()
    return {"method": p.method, "seed": int(p.seed), "ratios": [float(r) for r in p.ratios],
            "names": list(names), "rows": {n: int(row_counts.get(n, 0)) for n in names},
            "sources": {n: int((src_split == n).sum()) for n in names}, "strata": per}
