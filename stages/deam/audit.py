"""The DEAM annotation audit and the static fix.

The audit compares each song's static valence/arousal with the mean of its dynamic
valence/arousal, per DEAM release block. In the public DEAM files the static columns of the
744 songs ≤ 1000 are crossed (static "valence" follows dynamic arousal); `static_fix` decides
what to do about it, and the `deam` stage's `audit.json` records what was found and done.

The unit of a fix is a whole release block (1–1000, 1001–2000, 2001–2058, and one block for
ids beyond): the fault is a property of how a release's file was made, so a song is swapped
only because its block is crossed, never because of its own vote. Runs found by
`detect_crossed_runs` are a diagnostic: a run that does not coincide with a crossed block is
a warning naming the songs concerned, not a fix (songs whose valence ≈ arousal vote at
random, so a run drifts past a block boundary by however many such songs sit there).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import np, npt, pd
from emoprep.stages.deam.annotations import Annotations, clean_dynamic, static_ok

# DEAM's subsets: 2013 (ids ≤ 1000, 45 s), 2014 (1001–2000, 45 s), 2015 (2001–2058, full songs)
STANDARD_BLOCKS = ((1, 1000), (1001, 2000), (2001, 2058))
StaticFix = Literal["auto", "swap-le-1000", "none"]
STATIC_FIXES = ("auto", "swap-le-1000", "none")


def dynamic_means(ann: Annotations) -> pd.DataFrame:
    """Per song: mean of its valid dynamic valence and arousal frames (index song_id)."""
    if not ann.dynamic:
        return pd.DataFrame(columns=["valence", "arousal"], index=pd.Index([], dtype="int64", name="song_id"))
    ids = sorted(ann.ids() & (set(ann.dynamic["valence"]) | set(ann.dynamic["arousal"])))
    out = {dim: [_mean_frame(ann.dynamic[dim].get(sid)) for sid in ids] for dim in ("valence", "arousal")}
    df = pd.DataFrame(out, index=pd.Index(ids, dtype="int64", name="song_id"))
    return df.dropna()


def _mean_frame(frames: np.ndarray | None) -> float:
    """Mean of the valid frames (in [-1, 1]); NaN when there are none."""
    if frames is None:
        return math.nan
    x, _ = clean_dynamic(frames)
    n = int(np.isfinite(x).sum())
    return float(np.nansum(x) / n) if n else math.nan


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def crossed_votes(joined: pd.DataFrame) -> np.ndarray:
    """Per song (rows of `joined`: static valence_mean/arousal_mean, dynamic valence/arousal):
    +1 if the song fits better with its static columns crossed, -1 if straight, 0 if a tie.

    With each variable z-scored, |straight|² − |crossed|² = 2 (zsv − zsa)(zda − zdv), so the
    vote is the sign of that product: scale-free and cheap."""
    def z(col: pd.Series) -> np.ndarray:
        x = col.to_numpy(dtype=float)
        sd = x.std()
        return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)

    d: npt.NDArray[np.float64] = ((z(joined["valence_mean"]) - z(joined["arousal_mean"]))
                                  * (z(joined["arousal"]) - z(joined["valence"])))
    return np.sign(d).astype(int)


def segment_votes(votes: np.ndarray, error: float = 0.3, switch: float = 1e-3) -> np.ndarray:
    """Two-state Viterbi (0 straight, 1 crossed) over votes in id order: a switch costs
    log(switch), a vote against the state log(error). Isolated odd votes stay in their
    surrounding state; only long consistent stretches become a crossed segment."""
    n = len(votes)
    if n == 0:
        return np.zeros(0, dtype=int)
    lo, hi, st = math.log(error), math.log(1 - error), math.log(switch)
    stay = math.log(1 - switch)
    emit = np.zeros((n, 2))
    emit[votes > 0] = (lo, hi)
    emit[votes < 0] = (hi, lo)
    score = np.array([math.log(0.5), math.log(0.5)]) + emit[0]
    back = np.zeros((n, 2), dtype=np.int8)
    for i in range(1, n):
        new = np.empty(2)
        for s in (0, 1):
            cand = (score[s] + stay, score[1 - s] + st)
            back[i, s] = s if cand[0] >= cand[1] else 1 - s
            new[s] = max(cand) + emit[i, s]
        score = new
    states = np.zeros(n, dtype=int)
    states[-1] = int(np.argmax(score))
    for i in range(n - 1, 0, -1):
        states[i - 1] = back[i, states[i]]
    return states


def standard_blocks(ids: Iterable[int]) -> list[tuple[int, int]]:
    """DEAM's id blocks that hold songs, plus one block for ids beyond 2058 if any."""
    ids = sorted(set(ids))
    blocks = [(lo, hi) for lo, hi in STANDARD_BLOCKS if any(lo <= i <= hi for i in ids)]
    extra = [i for i in ids if i > STANDARD_BLOCKS[-1][1]]
    if extra:
        blocks.append((STANDARD_BLOCKS[-1][1] + 1, max(extra)))
    return blocks


def detect_crossed_runs(joined: pd.DataFrame, min_run: int = 20) -> list[tuple[int, int]]:
    """Contiguous id runs (≥ `min_run` songs) whose songs vote crossed, found by `segment_votes`."""
    if len(joined) == 0:
        return []
    states = segment_votes(crossed_votes(joined))
    ids = joined.index.to_numpy()
    runs, start = [], None
    for i, s in enumerate([*states, 0]):
        if s == 1 and start is None:
            start = i
        elif s != 1 and start is not None:
            if i - start >= min_run:
                runs.append((int(ids[start]), int(ids[i - 1])))
            start = None
    return runs


# A song tells straight from crossed only if its static valence and arousal differ: at least
# this much on the 1–9 scale, for a block to count it towards `min_songs`.
INFORMATIVE_GAP = 0.5


def song_evidence(joined: pd.DataFrame) -> np.ndarray:
    """Per song: (sV − sA)(dA − dV), static mapped to the dynamic scale ((x − 5) / 4).

    Half the difference of the squared distances static↔dynamic straight and crossed: > 0
    when the song fits better crossed, < 0 straight, and ≈ 0 when its valence ≈ arousal —
    such a song carries no evidence either way, so it weighs nothing (a ±1 vote would let
    it flip a small block at random)."""
    sv = (joined["valence_mean"].to_numpy(float) - 5.0) / 4.0
    sa = (joined["arousal_mean"].to_numpy(float) - 5.0) / 4.0
    d: npt.NDArray[np.float64] = (sv - sa) * (joined["arousal"].to_numpy(float) - joined["valence"].to_numpy(float))
    return d


def weighted_vote(evidence: np.ndarray) -> float:
    """Σ d / Σ |d| in [−1, 1]: +1 when every song fits crossed, −1 straight; NaN without evidence."""
    total = float(np.abs(evidence).sum())
    return float(evidence.sum()) / total if total > 1e-12 else math.nan


def block_stats(joined: pd.DataFrame, lo: int, hi: int, *, margin: float, min_songs: int) -> dict[str, Any]:
    """One id block: the verdict from the songs' weighted vote (`weighted_vote`; crossed at
    ≥ margin, straight at ≤ −margin, unclear between; insufficient with fewer than
    `min_songs` songs whose |sV − sA| ≥ INFORMATIVE_GAP), and for reading the four correlations
    straight (static v ~ dynamic v, static a ~ dynamic a) and crossed (static v ~ dynamic a,
    static a ~ dynamic v). The vote, unlike a correlation, needs no within-block z-scoring,
    so it holds from a handful of songs (a 10-song subset of DEAM has ~4 songs ≤ 1000)."""
    b = joined[(joined.index >= lo) & (joined.index <= hi)]
    sv, sa = b["valence_mean"].to_numpy(float), b["arousal_mean"].to_numpy(float)
    dv, da = b["valence"].to_numpy(float), b["arousal"].to_numpy(float)
    r = {"r_sv_dv": _pearson(sv, dv), "r_sa_da": _pearson(sa, da),
         "r_sv_da": _pearson(sv, da), "r_sa_dv": _pearson(sa, dv)}
    straight = (r["r_sv_dv"] + r["r_sa_da"]) / 2
    crossed = (r["r_sv_da"] + r["r_sa_dv"]) / 2
    evidence = song_evidence(b)
    vote = weighted_vote(evidence)
    informative = int((np.abs(sv - sa) >= INFORMATIVE_GAP).sum())
    if informative < min_songs or not math.isfinite(vote):
        verdict = "insufficient"
    elif vote >= margin:
        verdict = "crossed"
    elif vote <= -margin:
        verdict = "straight"
    else:
        verdict = "unclear"
    return {"id_min": lo, "id_max": hi, "n": len(b), **r, "straight": straight, "crossed": crossed,
            "n_informative": informative, "songs_crossed": int((evidence > 0).sum()),
            "songs_straight": int((evidence < 0).sum()), "vote": vote, "verdict": verdict}


def audit_blocks(static_df: pd.DataFrame, dyn_means: pd.DataFrame, *, margin: float = 0.5,
                 min_songs: int = 2, min_run: int = 20,
                 blocks: list[tuple[int, int]] | None = None) -> pd.DataFrame:
    """The annotation audit table: one row per id block (DEAM's standard blocks, or `blocks`,
    plus runs found by `detect_crossed_runs`), with its four correlations and a verdict
    (`straight`, `crossed`, `unclear`, `insufficient`). Only the standard (or given) blocks
    can be fixed; detected runs are diagnostics.

    static_df: index song_id, columns valence_mean, arousal_mean (1–9, as in the file).
    dyn_means: index song_id, columns valence, arousal (mean dynamic rating per song)."""
    st = static_df[["valence_mean", "arousal_mean"]].astype(float)
    st = st[np.isfinite(st.to_numpy()).all(axis=1)]
    joined = st.join(dyn_means[["valence", "arousal"]].astype(float), how="inner").dropna().sort_index()
    rows = []
    for lo, hi in (standard_blocks(joined.index) if blocks is None else blocks):
        rows.append({"block": f"{lo}-{hi}", "kind": "standard" if blocks is None else "given",
                     **block_stats(joined, lo, hi, margin=margin, min_songs=min_songs)})
    for lo, hi in detect_crossed_runs(joined, min_run):
        rows.append({"block": f"{lo}-{hi}", "kind": "detected",
                     **block_stats(joined, lo, hi, margin=margin, min_songs=min_songs)})
    cols = ["block", "kind", "id_min", "id_max", "n", "r_sv_dv", "r_sa_da", "r_sv_da", "r_sa_dv",
            "straight", "crossed", "n_informative", "songs_crossed", "songs_straight", "vote", "verdict"]
    return pd.DataFrame(rows, columns=cols)


FIXABLE_KINDS = ("standard", "given")  # detected runs are never fixed


def fix_plan(audit: pd.DataFrame, mode: str, ids: Iterable[int]) -> list[dict[str, Any]]:
    """What `mode` swaps and why: one entry per block fixed, with the ids of `ids` in it.

    `auto` fixes the release blocks (kind standard or given) whose verdict is crossed, whole;
    `swap-le-1000` fixes ids ≤ 1000 whatever the audit says; `none` fixes nothing."""
    ids = sorted({int(i) for i in ids})
    if mode == "none":
        return []
    if mode == "swap-le-1000":
        return [{"block": "1-1000", "ids": [i for i in ids if i <= 1000],
                 "why": "static_fix = 'swap-le-1000': every song ≤ 1000 is swapped, whatever the audit says"}]
    if mode != "auto":
        raise ConfigError(f"deam.static_fix must be 'auto', 'swap-le-1000' or 'none', not {mode!r}")
    return [{"block": b["block"], "ids": [i for i in ids if b["id_min"] <= i <= b["id_max"]],
             "why": (f"release block {b['block']} is crossed: weighted vote {b['vote']:+.2f} over "
                     f"{b['n']} songs ({b['songs_crossed']} fit crossed, {b['songs_straight']} "
                     "straight); the whole block is swapped back")}
            for b in audit.to_dict("records") if b["kind"] in FIXABLE_KINDS and b["verdict"] == "crossed"]


def ids_to_fix(audit: pd.DataFrame, mode: str, ids: Iterable[int]) -> set[int]:
    """The song ids whose static valence/arousal columns are swapped under `mode`."""
    return {i for entry in fix_plan(audit, mode, ids) for i in entry["ids"]}


def audit_warnings(audit: pd.DataFrame, fixed: set[int], ids: Iterable[int]) -> list[str]:
    """Warnings for the user: each release block the audit could not judge (its songs are
    left as in the file), and each detected crossed run that does not coincide with a fixed
    block, naming the songs in it that were left as in the file (and why)."""
    ids = sorted({int(i) for i in ids})
    out = []
    for b in audit[audit["kind"].isin(FIXABLE_KINDS)].to_dict("records"):
        if b["verdict"] in ("insufficient", "unclear"):
            why = (f"only {b['n_informative']} of its {b['n']} songs have static valence and arousal "
                   f"{INFORMATIVE_GAP} or more apart" if b["verdict"] == "insufficient"
                   else f"its songs disagree (weighted vote {b['vote']:+.2f})")
            out.append(f"release block {b['block']}: the audit cannot tell straight from crossed ({why}); "
                       "its static columns are left as in the file (static_fix = 'swap-le-1000' swaps "
                       "ids ≤ 1000 as in the public DEAM files)")
    for b in audit[audit["kind"] == "detected"].to_dict("records"):
        if b["verdict"] != "crossed":
            continue
        inside = [i for i in ids if b["id_min"] <= i <= b["id_max"]]
        outside = [i for i in inside if i not in fixed]
        if not outside:
            continue
        runs = ", ".join(f"{lo}–{hi}" if lo != hi else str(lo) for lo, hi in _ranges(outside))
        out.append(f"detected crossed run {b['block']} does not coincide with a crossed release block: "
                   f"{len(outside)} of its {len(inside)} songs (ids {runs}) were left as in the file — a "
                   "fix is applied to whole release blocks only; songs whose valence ≈ arousal vote at "
                   "random, so a run can drift past a block boundary")
    return out


def apply_static_fix(rows: pd.DataFrame, fix: set[int]) -> pd.DataFrame:
    """Set `static_*_raw` / `static_*_std` from the file's values, crossed back for `fix` ids.

    Computed from the `*_file` columns every time, so running it twice changes nothing."""
    rows = rows.copy()
    if len(rows) == 0:
        for c in ("static_valence_raw", "static_arousal_raw", "static_valence_std",
                  "static_arousal_std", "static_fixed"):
            rows[c] = pd.Series(dtype=bool if c == "static_fixed" else float)
        return rows
    has = (np.isfinite(rows["static_valence_file"].astype(float))
           & np.isfinite(rows["static_arousal_file"].astype(float)))
    swap = rows["song_id"].astype(int).isin(fix) & has
    for dim, other in (("valence", "arousal"), ("arousal", "valence")):
        for kind in ("raw", "std"):
            src = "file" if kind == "raw" else "std_file"
            rows[f"static_{dim}_{kind}"] = np.where(swap, rows[f"static_{other}_{src}"],
                                                    rows[f"static_{dim}_{src}"]).astype(float)
    rows["static_fixed"] = swap.to_numpy(dtype=bool)
    return rows


def _ranges(ids: Iterable[int]) -> list[list[int]]:
    """[[lo, hi], ...] runs of consecutive ids in sorted order (compact JSON for id sets)."""
    out: list[list[int]] = []
    for i in sorted(ids):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def _json_number(x: Any) -> Any:
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else round(float(x), 6)
    if isinstance(x, np.integer):
        return int(x)
    return x


def audit_inputs(ann: Annotations) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(static rows in [1, 9], per-song dynamic means) that the audit may use: rows that
    disagree with a repeated row of the same song are left out, as the stage leaves them out."""
    static = ann.static
    if len(static):
        static = static[[static_ok(v, a) for v, a in zip(static["valence_mean"], static["arousal_mean"], strict=True)]]
    static = static.drop(index=list(ann.static_conflicts), errors="ignore")
    dyn = dynamic_means(ann).drop(index=list(ann.dynamic_conflicts), errors="ignore")
    return static, dyn


def audit_report(audit: pd.DataFrame, static_fix: str, plan: list[dict[str, Any]], kept: Iterable[int], *,
                 zip_checks: list[dict[str, Any]], warnings: list[str], problems: list[str],
                 files: dict[str, Any]) -> dict[str, Any]:
    """The content of `audit.json`: the block table with whether each block was fixed, the
    fixed ids (songs of the manifest) as runs with the reason per block, the songs that
    `auto` would fix (so a run with another `static_fix` can say what differs), zip checks,
    warnings and the first 200 parse problems."""
    fixed_blocks = {e["block"] for e in plan}
    audit = audit.assign(fixed=[bool(b in fixed_blocks and k in FIXABLE_KINDS)
                                for b, k in zip(audit["block"], audit["kind"], strict=True)])
    kept = set(kept)
    fixed_ids = {i for e in plan for i in e["ids"]} & kept
    auto_ids = ids_to_fix(audit, "auto", kept)
    return {
        "static_fix": static_fix,
        "blocks": [{k: _json_number(v) for k, v in r.items()} for r in audit.to_dict("records")],
        "fixed_song_ids": _ranges(fixed_ids),
        "n_fixed": len(fixed_ids),
        "fixes": [{"block": e["block"], "why": e["why"], "song_ids": _ranges(set(e["ids"]) & kept),
                   "n": len(set(e["ids"]) & kept)} for e in plan],
        "auto_fix_song_ids": _ranges(auto_ids),
        "n_auto_fix": len(auto_ids),
        "zip_checks": zip_checks,
        "warnings": warnings,
        "parse_problems": problems[:200],
        "n_parse_problems": len(problems),
        "files": files,
    }
