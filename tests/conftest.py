import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))

# Tests must not depend on the machine's thread count or a GPU.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """The embedded demo dataset, generated once per test session (tests must not modify it)."""
    from emoprep.stages.demo import ensure_demo_data
    return ensure_demo_data(tmp_path_factory.mktemp("demo-session") / "data")
