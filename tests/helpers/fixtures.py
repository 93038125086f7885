"""Session fixtures shared by every test folder (tests/conftest.py registers this module in
`pytest_plugins`): the demo data, and the thesis-v3 run on it that the manifest, report and
system tests read, made once per session instead of once per test module."""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.paths import EMOPREP

TINY_AUDIO, TINY_IMAGE = "encodec-tiny-test", "vit-tiny-test"  # the real code paths, tiny models
V3_TINY = ("--set", f"tokens.tokenizer='{TINY_IMAGE}'")


@dataclass(frozen=True)
class DemoRun:
    out: Path
    seconds: float  # the clean run's wall time (the kill tests pick their kill points in it)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded demo dataset, generated once per test session (tests must not modify it)."""
    from emoprep.stages.demo.dataset import ensure_demo_data
    return ensure_demo_data(tmp_path_factory.mktemp("demo-session") / "data")


@pytest.fixture(scope="session")
def thesis_v3_run(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`emoprep run --recipe thesis-v3` on the demo data with the tiny ViT, as a user starts it
    (a subprocess, the local process pool). Tests read it, or re-run it up to date (which adds
    only a log file); a test that changes it works on `shutil.copytree(run.out, ..., symlinks=True)`."""
    out = tmp_path_factory.mktemp("thesis-v3") / "out"
    t0 = time.time()
    done = subprocess.run([str(EMOPREP), "run", "--recipe", "thesis-v3", "--data-root", str(demo_data),
                           "--out", str(out), "-q", *V3_TINY], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return DemoRun(out, time.time() - t0)
