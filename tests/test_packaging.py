"""The folders are mapped into one import package `emoprep`: an import name is its file with
`emoprep.` dropped. Check the wheel, the editable install and the package list agree."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

from tests.helpers.paths import REPO

SOURCE_DIRS = ("api", "pipeline", "stages", "manifests")


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module under the source folders, and `emoprep` itself
    (api/__init__.py: the Python API is the package root)."""
    out = {}
    for top in SOURCE_DIRS:
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[0] == "api":  # api/ is the package root: api/cli.py is emoprep.cli
                parts = parts[1:]
            if parts and parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(("emoprep", *parts))] = path
    return out


def test_wheel_contains_the_package_and_imports_without_the_source_tree(tmp_path: Path) -> None:
    # Build from a copy: setuptools leaves build/ in the source folder.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "emoprep-out", "out", "__pycache__"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    wheel = next(tmp_path.glob("emoprep-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"emoprep/{p.relative_to(REPO).as_posix().removeprefix('api/')}" for p in _modules().values()}
    assert expected <= names, sorted(expected - names)
    assert "emoprep/__init__.py" in names and "emoprep/py.typed" in names  # api/ is the package root
    assert {"emoprep/pipeline/py.typed", "emoprep/stages/py.typed", "emoprep/manifests/py.typed"} <= names
    assert any(n.startswith("emoprep/stages/recipes/") and n.endswith(".toml") for n in names)
    templates = {f"emoprep/stages/report/templates/{t}" for t in
                 ("index.html.j2", "DATASET.md.j2", "sources.yaml", "report.css", "image_check.js")}
    assert templates <= names, sorted(templates - names)
    assert not any(n.startswith(("api/", "pipeline/", "stages/", "manifests/", "tests/")) for n in names)
    # Installed into a folder of its own; -S: no site processing, so the editable install's
    # links are not on sys.path, only that folder and the third-party site-packages.
    target = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                          str(wheel)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    code = (f"import sys; sys.path[:0] = [{str(target)!r}, {sysconfig.get_paths()['purelib']!r}]; "
            "import emoprep, emoprep.pipeline.stage, emoprep.stages.deam, emoprep.manifests.reader, "
            "emoprep.cli; assert callable(emoprep.run) and callable(emoprep.status); "
            "from emoprep.stages.catalog import builtin_catalog; "
            "assert emoprep.pipeline.stage.__file__.startswith(sys.path[0]), emoprep.pipeline.stage.__file__; "
            "assert 'thesis-v3' in builtin_catalog().shipped_recipes(); "
            "from emoprep.stages.report.page import environment; from emoprep.stages.report.card import sources; "
            "assert environment(True).get_template('index.html.j2').filename.startswith(sys.path[0]); "
            "assert 'deam' in sources()['sources']; print('ok')")
    res = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_no_top_level_pipeline_module_is_installed() -> None:
    code = ("import importlib.util as u; "
            "print(*(u.find_spec(m) is None for m in ('api', 'pipeline', 'stages', 'manifests')), "
            "u.find_spec('emoprep.pipeline') is not None)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert res.stdout.split() == ["True", "True", "True", "True", "True"], res.stderr


def test_pyproject_lists_every_package_folder() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert folders | {"emoprep.stages.recipes", "emoprep.stages.report.templates"} == listed  # + data folders


def test_every_module_imports_from_its_own_file_through_the_install() -> None:
    """The editable install links files one by one: a module added since `make setup` is
    missing until the next `make setup` (make test runs it when the set of files changes)."""
    code = ("import importlib, json, os, sys; "
            "mods = json.loads(sys.argv[1]); "
            "print(json.dumps({m: os.path.realpath(importlib.import_module(m).__file__) for m in mods}))")
    mods = _modules()
    res = subprocess.run([sys.executable, "-c", code, __import__("json").dumps(sorted(mods))],
                         capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, f"{res.stderr}\nrun `make setup` after adding or moving a module"
    files = __import__("json").loads(res.stdout)
    assert {m: Path(f) for m, f in files.items()} == {m: p.resolve() for m, p in mods.items()}


def test_every_emoprep_import_names_an_existing_file() -> None:
    """`from emoprep.X.Y import …` anywhere in the repository is the file X/Y.py or the
    package X/Y/ (the rule a newcomer learns: drop `emoprep.`)."""
    known = set(_modules())
    bad = []
    for path in sorted(REPO.rglob("*.py")):
        if any(part in (".venv", "build", ".git") for part in path.relative_to(REPO).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            bad += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names
                    if n.split(".")[0] == "emoprep" and n not in known]
    assert bad == []
