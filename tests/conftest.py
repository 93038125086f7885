"""Shared fixtures. Tests import their helpers as `tests.helpers.*` (the repository root is
on sys.path because `tests/` is a package)."""
import os
from pathlib import Path

import pytest

# Tests must not depend on the machine's thread count or a GPU.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded demo dataset, generated once per test session (tests must not modify it)."""
    from emoprep.stages.demo.dataset import ensure_demo_data
    return ensure_demo_data(tmp_path_factory.mktemp("demo-session") / "data")
