"""`validate`: passes a good store, reports what it cannot read instead of raising, and
renders the table."""
from __future__ import annotations

from rich.console import Console

from emoprep.manifests.validate import render_table, validate
from emoprep.manifests.validate_report import FAIL, PASS, WARN
from tests.helpers.token_fixtures import check, failed, index_of, save_index


def test_a_good_store_passes(out):
    report = validate(out)
    assert report.ok, failed(report)
    assert check(report, "weights").status == WARN  # random init is allowed but flagged
    assert {c.name for c in report.checks} >= {
        "token-index", "unique-ids", "index-shapes", "shard-files", "shard-checksums", "token-shapes",
        "ids-have-tokens", "finite-values", "va-range", "modality-flags", "manifest-coverage",
        "split-disjoint", "weights"}


def test_missing_store_is_one_clear_failure(tmp_path):
    report = validate(tmp_path)
    assert [(c.name, c.status) for c in report.checks] == [("token-index", FAIL)]
    assert "manifests/tokens.parquet" in report.checks[0].detail


def test_table_shows_offenders(out):
    df = index_of(out)
    df["valence"] = 2.0
    save_index(out, df)
    console = Console(record=True, width=200)
    render_table(validate(out), console=console)
    text = console.export_text()
    assert "va-range" in text and "fail" in text and "+12 more" in text and "FAILED" in text
    assert validate(out).to_dict()["ok"] is False
    assert check(validate(out), "token-index").status == PASS


def test_index_without_required_columns_is_reported_not_raised(out):
    good = index_of(out)
    save_index(out, good.drop(columns=["patches_sha256", "split"]))
    report = validate(out)
    assert failed(report) == {"token-index": []} and "split" in report.checks[0].detail
    # an array column the tokenizer needs: reported per tokenizer, naming the ids and the column
    save_index(out, good.drop(columns=["patches_sha256"]))
    bad = failed(validate(out))
    assert list(bad) == ["index-shapes"] and all("(no patches_sha256)" in o for o in bad["index-shapes"])
