"""report.json is declared once, by the pydantic models of models.py: they validate it (strictly,
naming the field that breaks), generate the published report.schema.json and SCHEMA.md."""
from __future__ import annotations

import json

import jsonschema
import pydantic
import pytest

from emoprep.manifests.report_json import ReportJson, check_report, schema, schema_markdown


def test_report_json_follows_its_models_and_the_generated_schema(built):
    *_, r = built
    check_report(r)
    jsonschema.Draft202012Validator(schema()).validate(r)
    # the models neither add, drop nor retype a value (ints stay ints): same numbers as written
    assert check_report(r).model_dump(mode="json") == r


def test_an_invalid_report_is_rejected_naming_the_field(built):
    *_, r = built
    bad = json.loads(json.dumps(r))
    bad["surprise"] = 1
    bad["rejects"]["total"] = "13"
    del bad["splits"]["names"]
    bad["stages"][0]["items"] = True
    with pytest.raises(pydantic.ValidationError) as err:
        check_report(bad)
    where = {".".join(map(str, e["loc"])) for e in err.value.errors()}
    assert where == {"surprise", "rejects.total", "splits.names", "stages.0.items"}
    assert "rejects.total" in str(err.value)
    errors = list(jsonschema.Draft202012Validator(schema()).iter_errors(bad))
    assert {"/".join(map(str, e.absolute_path)) for e in errors} >= {"", "rejects/total", "splits", "stages/0/items"}


def test_the_published_schema_is_the_one_the_models_generate(built):
    _, _, out_dir, _ = built
    published = json.loads((out_dir / "report.schema.json").read_text())
    assert published == schema()
    assert published["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(published)
    assert set(published["properties"]) == set(ReportJson.model_fields) == set(published["required"])
    md = (out_dir / "SCHEMA.md").read_text()
    assert md == schema_markdown()
    for key in published["properties"]:
        assert f"- `{key}` (" in md
    assert "- `rejects.by_reason[].examples[].sample_id` (string): id" in md
    assert "- `labels.by_modality.<key>.valence_raw` (object | null)" in md


def test_validate_checks_the_published_report_json(tmp_path):
    from emoprep.manifests.validate import validate
    from tests.helpers.report_fixtures import make_tree, run_stage

    root = tmp_path / "out"
    run_stage(root, make_tree(root))
    [check] = [c for c in validate(root).checks if c.name == "report-json"]
    assert check.status == "pass"
    published = root / "report" / "report.json"
    r = json.loads(published.read_text())
    r["rejects"]["total"] = "13"
    published.write_text(json.dumps(r))
    [check] = [c for c in validate(root).checks if c.name == "report-json"]
    assert check.status == "fail" and "rejects.total" in check.detail


def test_loading_the_stage_catalog_imports_neither_pydantic_nor_jinja2():
    """Every command loads the stage list: the report's models and templates wait until a report is built."""
    import subprocess
    import sys

    code = ("import sys, emoprep.stages.catalog; "
            "print([m for m in ('pydantic', 'jinja2', 'yaml', 'matplotlib') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
