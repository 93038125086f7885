"""The folders are mapped into one import package `emoprep`: check a built wheel imports alone."""
from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_contains_the_package_and_imports_without_the_source_tree(tmp_path):
    # Build from a copy: setuptools leaves build/ in the source folder.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "emoprep-out", "out", "__pycache__"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    wheel = next(tmp_path.glob("emoprep-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "emoprep/__init__.py" in names and "emoprep/runner.py" in names
    assert "emoprep/stages/labels.py" in names and "emoprep/manifests/__init__.py" in names
    assert any(n.startswith("emoprep/stages/recipes/") and n.endswith(".toml") for n in names)
    assert not any(n.startswith(("pipeline/", "stages/", "manifests/", "tests/")) for n in names)
    # -S: no site processing, so the editable install's finder is not active; only the wheel
    # (as a zip on sys.path) and the third-party site-packages are importable.
    code = (f"import sys; sys.path[:0] = [{str(wheel)!r}, {sysconfig.get_paths()['purelib']!r}]; "
            "import emoprep, emoprep.stages.labels, emoprep.cli; "
            "from emoprep.recipe import shipped_recipes; "
            "assert emoprep.__file__.startswith(sys.path[0]), emoprep.__file__; "
            "assert 'thesis-v3' in shipped_recipes(); print('ok')")
    res = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_no_top_level_pipeline_module_is_installed():
    code = "import importlib.util as u; print(u.find_spec('pipeline') is None, u.find_spec('emoprep') is not None)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert res.stdout.split() == ["True", "True"]
