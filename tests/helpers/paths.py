"""Where things are, for tests that start subprocesses or read repository files."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
HELPERS = TESTS / "helpers"
TOY_RECIPE = HELPERS / "toy.toml"
EMOPREP = Path(sys.executable).with_name("emoprep")  # the console script of the venv running the tests


def pythonpath_with_repo() -> str:
    """PYTHONPATH for a subprocess that imports `tests.helpers.*` (the repository root first)."""
    return os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
