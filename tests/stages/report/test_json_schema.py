"""report.json follows its documented schema (json_schema.py), which also renders as SCHEMA.md."""
from __future__ import annotations

import json

from emoprep.stages.report.json_schema import SCHEMA, schema_markdown, schema_problems


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
