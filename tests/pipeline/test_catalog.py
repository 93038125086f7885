"""The stage catalog: what the composition root hands the engine, and plugins."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from emoprep.pipeline.catalog import StageCatalog, plugin_stages
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.recipe import load_recipe
from emoprep.pipeline.stage import NoParams, Outcome, Stage


class Alpha(Stage[NoParams]):
    name = "alpha"

    def run(self, ctx):
        return Outcome()


class OtherAlpha(Alpha):
    pass


def _module(tmp_path: Path, monkeypatch, name: str, body: str) -> str:
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    return name


def test_catalog_looks_stages_up_by_name_and_suggests_on_a_typo():
    cat = StageCatalog([Alpha])
    assert isinstance(cat["alpha"], Alpha) and list(cat) == ["alpha"]
    with pytest.raises(KeyError, match=r"unknown stage 'alpah' \(did you mean 'alpha'\?\); known stages: alpha"):
        cat["alpah"]
    with pytest.raises(ValueError, match="given twice"):
        StageCatalog([Alpha, OtherAlpha])


def test_a_stage_added_later_replaces_one_of_the_same_name():
    cat = StageCatalog([Alpha]).with_stages([OtherAlpha()])
    assert type(cat["alpha"]) is OtherAlpha and len(cat) == 1


def test_plugins_by_module_marks_by_stages_tuple_and_by_class(tmp_path, monkeypatch):
    marked = _module(tmp_path, monkeypatch, "plug_marked", (
        "from emoprep.pipeline import Outcome, Stage, register\n"
        "@register\nclass A(Stage):\n    name = 'a'\n"
        "class NotListed(Stage):\n    name = 'hidden'\n"))
    listed = _module(tmp_path, monkeypatch, "plug_listed", (
        "from emoprep.pipeline import Stage\n"
        "class B(Stage):\n    name = 'b'\nclass C(Stage):\n    name = 'c'\nSTAGES = (B,)\n"))
    names = [cls.name for cls in plugin_stages(f"{marked}, {listed},{listed}:C")]
    assert names == ["a", "b", "c"]
    assert "hidden" not in names  # an unmarked class in a marked module is not a stage


def test_plugin_errors_are_configuration_errors(tmp_path, monkeypatch):
    empty = _module(tmp_path, monkeypatch, "plug_empty", "X = 1\n")
    with pytest.raises(ConfigError, match="cannot import 'no_such_plugin_module'"):
        plugin_stages("no_such_plugin_module")
    with pytest.raises(ConfigError, match="defines no STAGES and no @register'ed stage"):
        plugin_stages(empty)
    with pytest.raises(ConfigError, match="is not a Stage class"):
        plugin_stages(f"{empty}:X")


def test_recipes_are_read_against_the_catalog_they_are_given(tmp_path):
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    (recipe_dir / "mine.toml").write_text('[recipe]\ntargets = ["alpha"]\n[alpha]\n')
    cat = StageCatalog([Alpha], recipe_dirs=[recipe_dir])
    rec = load_recipe("mine", catalog=cat)
    assert rec.targets == ["alpha"] and rec.catalog is cat and type(rec.stage("alpha")) is Alpha
    with pytest.raises(ConfigError, match="unknown stage"):
        load_recipe("mine", ["beta.x=1"], catalog=cat)
    with pytest.raises(ConfigError, match="not a shipped recipe"):
        load_recipe("thesis-v3", catalog=cat)  # not in this catalog's recipe folders
