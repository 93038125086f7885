"""The `auto` static fix on trees built from annotation files (issue 17): it swaps whole
crossed release blocks and never a song outside one, whatever the size of the tree and
however the detected runs drift over the 1000/1001 boundary (where songs with valence ≈
arousal vote at random). `audit.json` says which ids were fixed and why."""
from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers.audit_trees import BOUNDARY_IDS, write_audit_tree
from tests.helpers.deam import ingest

SIZES = [10, 56, 300, 1802]
FIXABLE = ("standard", "given")


def _fixed(audit: dict[str, Any]) -> set[int]:
    return {i for lo, hi in audit["fixed_song_ids"] for i in range(lo, hi + 1)}


def _run(tmp_path, n, crossed, seed=0):
    ids = write_audit_tree(tmp_path / "deam", n, crossed, seed)
    run = ingest(tmp_path / "deam", tmp_path / "out")
    audit = json.loads((run.ctx.out_dir / "audit.json").read_text())
    return ids, run, audit


def _check_manifest(run, fixed: set[int]) -> None:
    """The manifest agrees with audit.json: exactly the fixed songs have static_fixed and
    their static columns crossed back."""
    rows = run.rows.set_index("song_id")
    assert set(rows.index[rows["static_fixed"]]) == fixed
    for sid, r in rows.iterrows():
        want = ((r.static_arousal_file, r.static_valence_file) if sid in fixed
                else (r.static_valence_file, r.static_arousal_file))
        assert (r.static_valence_raw, r.static_arousal_raw) == want


@pytest.mark.parametrize("n", SIZES)
def test_auto_swaps_exactly_the_crossed_2013_block(tmp_path, n):
    ids, run, audit = _run(tmp_path, n, crossed=(1, 1000))
    want = {i for i in ids if i <= 1000}
    assert {999, 1000, 1001, 1002} <= set(ids)  # the near-equal songs at the boundary are there
    assert _fixed(audit) == want and audit["n_fixed"] == len(want)
    _check_manifest(run, want)
    (fix,) = audit["fixes"]
    assert fix["block"] == "1-1000" and fix["n"] == len(want) and "release block 1-1000 is crossed" in fix["why"]
    fixed_blocks = [b["block"] for b in audit["blocks"] if b["fixed"]]
    assert fixed_blocks == ["1-1000"]
    # a detected run is never marked fixed, and one that runs past 1000 is named in a warning
    for b in audit["blocks"]:
        if b["kind"] == "detected":
            assert not b["fixed"]
            if b["verdict"] == "crossed" and b["id_max"] > 1000:
                assert any(f"detected crossed run {b['block']}" in w for w in audit["warnings"])


@pytest.mark.parametrize("n", SIZES)
def test_a_tree_without_crossing_is_left_alone(tmp_path, n):
    _ids, run, audit = _run(tmp_path, n, crossed=None)
    assert _fixed(audit) == set() and audit["fixes"] == [] and audit["n_auto_fix"] == 0
    _check_manifest(run, set())
    assert "crossed" not in {b["verdict"] for b in audit["blocks"] if b["kind"] in FIXABLE}


@pytest.mark.parametrize("n", [56, 300, 1802])
def test_a_crossed_2014_block_is_fixed_instead(tmp_path, n):
    ids, run, audit = _run(tmp_path, n, crossed=(1001, 2000))
    want = {i for i in ids if 1001 <= i <= 2000}
    assert _fixed(audit) == want
    _check_manifest(run, want)
    assert [f["block"] for f in audit["fixes"]] == ["1001-2000"]


@pytest.mark.parametrize("seed", list(range(6)))
def test_ten_song_trees_never_fix_outside_the_crossed_block(tmp_path, seed):
    """Ten songs leave two or three per block that can tell straight from crossed: when
    fewer than `audit_min_songs` can, the block is left as in the file, with a warning."""
    ids, _, audit = _run(tmp_path, 10, crossed=(1, 1000), seed=seed)
    want = {i for i in ids if i <= 1000}
    block = next(b for b in audit["blocks"] if b["block"] == "1-1000")
    if block["verdict"] == "insufficient":
        assert _fixed(audit) == set()
        assert any(w.startswith("release block 1-1000: the audit cannot tell") for w in audit["warnings"])
    else:
        assert block["verdict"] == "crossed" and _fixed(audit) == want
    assert _fixed(audit) <= want


def test_a_run_without_the_fix_records_what_auto_would_have_done(tmp_path):
    ids = write_audit_tree(tmp_path / "deam", 56, (1001, 2000))
    run = ingest(tmp_path / "deam", tmp_path / "out", static_fix="none")
    audit = json.loads((run.ctx.out_dir / "audit.json").read_text())
    assert _fixed(audit) == set() and audit["fixes"] == []
    auto = {i for lo, hi in audit["auto_fix_song_ids"] for i in range(lo, hi + 1)}
    assert auto == {i for i in ids if 1001 <= i <= 2000} and audit["n_auto_fix"] == len(auto)
    assert not set(BOUNDARY_IDS[:2]) & auto
