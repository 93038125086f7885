"""recipe.toml (card.py) rebuilds the same parameters."""
from __future__ import annotations

import json

from emoprep.stages.report.stage import ReportParams, build_files
from tests.helpers.report_fixtures import make_tree


def test_recipe_toml_rebuilds_the_same_parameters(tmp_path):
    from emoprep.pipeline.recipe import params_as_dict
    from tests.helpers.catalog import recipe as load_recipe

    root = tmp_path / "out"
    dirs = make_tree(root, unknown_stage=False)
    files = build_files(root, dirs, ReportParams(), timings=False)
    (tmp_path / "recipe.toml").write_bytes(files["recipe.toml"])
    recipe = load_recipe(str(tmp_path / "recipe.toml"))
    assert recipe.targets == ["tokens"]
    for s in json.loads(files["report.json"])["stages"]:
        got = params_as_dict(recipe.params_for(recipe.stage(s["name"])), include_runtime=False)
        assert json.loads(json.dumps(got)) == s["params"], s["name"]
