"""The annotation audit: crossed static columns found per id block or as a detected run,
the static fix modes, and which annotations the audit may use."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emoprep.pipeline.errors import ConfigError
from emoprep.stages.deam.annotations import Annotations
from emoprep.stages.deam.audit import (
    audit_blocks,
    audit_inputs,
    audit_warnings,
    ids_to_fix,
    segment_votes,
    song_evidence,
    weighted_vote,
)


def _audit_data(ids, crossed=(), seed=0, noise=0.08):
    """Static (1–9) and dynamic means for `ids`; static columns crossed for ids in `crossed`."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(2, 8, len(ids))
    a = np.clip(0.5 * (v - 5) + 5 + rng.normal(0, 1.3, len(ids)), 1, 9)  # V and A correlate, as in DEAM
    dyn = pd.DataFrame({"valence": (v - 5) / 4 + rng.normal(0, noise, len(ids)),
                        "arousal": (a - 5) / 4 + rng.normal(0, noise, len(ids))}, index=pd.Index(ids, name="song_id"))
    cross = np.isin(ids, list(crossed))
    static = pd.DataFrame({"valence_mean": np.where(cross, a, v), "arousal_mean": np.where(cross, v, a)},
                          index=pd.Index(ids, name="song_id"))
    return static, dyn


def test_audit_flags_the_crossed_block_and_only_it():
    ids = np.array(list(range(2, 1000, 2)) + list(range(1001, 2001)) + list(range(2001, 2059)))
    static, dyn = _audit_data(ids, crossed=ids[ids <= 1000])
    audit = audit_blocks(static, dyn)
    verdicts = dict(zip(audit["block"], audit["verdict"], strict=True))
    assert verdicts["1-1000"] == "crossed"
    assert verdicts["1001-2000"] == "straight" and verdicts["2001-2058"] == "straight"
    row = audit.set_index("block").loc["1-1000"]
    assert row.r_sv_da > row.r_sv_dv and row.r_sa_dv > row.r_sa_da
    assert ids_to_fix(audit, "auto", ids) == set(ids[ids <= 1000].tolist())


def test_audit_leaves_a_clean_tree_alone():
    ids = np.array(list(range(2, 1000, 2)) + list(range(1001, 2059)))
    for seed in range(3):
        static, dyn = _audit_data(ids, seed=seed, noise=0.2)
        audit = audit_blocks(static, dyn)
        assert set(audit["verdict"]) == {"straight"}, audit
        assert (audit["kind"] == "standard").all()  # no spurious detected run
        assert ids_to_fix(audit, "auto", ids) == set()


def test_a_crossed_run_inside_a_clean_block_is_reported_not_fixed():
    ids = np.arange(1001, 2001)
    run = ids[(ids >= 1300) & (ids < 1360)]
    static, dyn = _audit_data(ids, crossed=run, seed=4)
    audit = audit_blocks(static, dyn)
    det = audit[audit["kind"] == "detected"]
    assert len(det) == 1 and det.iloc[0]["verdict"] == "crossed"
    lo, hi = det.iloc[0]["id_min"], det.iloc[0]["id_max"]
    assert abs(lo - 1300) <= 3 and abs(hi - 1359) <= 3
    assert audit.set_index("block").loc["1001-2000", "verdict"] == "straight"
    assert ids_to_fix(audit, "auto", ids) == set()  # a diagnostic, never a fix
    (warning,) = audit_warnings(audit, set(), ids)
    assert warning.startswith(f"detected crossed run {lo}-{hi} does not coincide") and f"ids {lo}–{hi}" in warning


def test_songs_with_valence_equal_to_arousal_weigh_nothing():
    static = pd.DataFrame({"valence_mean": [7.0, 3.0, 5.0], "arousal_mean": [3.0, 7.0, 5.0]})
    dyn = pd.DataFrame({"valence": [-0.5, 0.5, 0.9], "arousal": [0.5, -0.5, -0.9]})
    evidence = song_evidence(static.join(dyn))
    assert evidence[0] > 0 and evidence[1] > 0 and evidence[2] == 0  # two crossed songs, one blank
    assert weighted_vote(evidence) == 1.0
    assert np.isnan(weighted_vote(np.zeros(3)))


def test_small_blocks_get_no_verdict_and_segment_votes_ignores_isolated_votes():
    static, dyn = _audit_data(np.array([2001, 2002, 2003]))
    static["arousal_mean"] = static["valence_mean"] + [0.1, -0.2, 0.6]  # one song can tell
    audit = audit_blocks(static, dyn)
    assert audit["verdict"].tolist() == ["insufficient"] and audit["n_informative"].tolist() == [1]
    warning = audit_warnings(audit, set(), [2001, 2002, 2003])[0]
    assert warning.startswith("release block 2001-2058: the audit cannot tell")
    votes = -np.ones(200, dtype=int)
    votes[[10, 50, 51, 120]] = 1
    assert segment_votes(votes).sum() == 0
    votes[60:100] = 1
    states = segment_votes(votes)
    assert states[60:100].all() and states[:55].sum() == 0 and states[105:].sum() == 0


def test_static_fix_modes():
    block = {"kind": "standard", "n": 9, "vote": 0.9, "songs_crossed": 8, "songs_straight": 1}
    audit = pd.DataFrame([{**block, "block": "1-1000", "id_min": 1, "id_max": 1000, "verdict": "crossed"},
                          {**block, "block": "1001-2000", "id_min": 1001, "id_max": 2000, "verdict": "straight"},
                          {**block, "block": "2-1002", "kind": "detected", "id_min": 2, "id_max": 1002,
                           "verdict": "crossed"}])
    ids = [2, 500, 1000, 1001, 1500]
    assert ids_to_fix(audit, "auto", ids) == {2, 500, 1000}  # not 1001: the detected run is no fix
    assert ids_to_fix(audit.assign(verdict="straight"), "auto", ids) == set()
    assert ids_to_fix(audit.assign(verdict="straight"), "swap-le-1000", ids) == {2, 500, 1000}
    assert ids_to_fix(audit, "none", ids) == set()
    with pytest.raises(ConfigError):
        ids_to_fix(audit, "swap", ids)


def test_the_audit_leaves_out_rows_that_disagree():
    ids = np.arange(1001, 1041)
    static, dyn = _audit_data(ids)
    ann = Annotations(static=static.assign(static_source="s.csv:1"),
                      dynamic={dim: {int(sid): np.array([x]) for sid, x in dyn[dim].items()}
                               for dim in ("valence", "arousal")},
                      static_conflicts={1001: "static rows disagree"},
                      dynamic_conflicts={1002: "valence.csv has 2 rows that disagree"})
    used_static, used_dyn = audit_inputs(ann)
    assert 1001 not in used_static.index and 1002 in used_static.index
    assert 1002 not in used_dyn.index and 1001 in used_dyn.index and len(used_dyn) == 39
