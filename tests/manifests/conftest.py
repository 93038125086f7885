"""Fixtures of the reader and validate tests: small finished token stores (tiny ViT)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.fixtures import TINY_AUDIO, TINY_IMAGE, DemoRun
from tests.helpers.paths import EMOPREP
from tests.helpers.token_fixtures import build_store


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    """7 songs × 3 chunks (audio) + 9 images (image), tiny ViT, shards of 5."""
    root = tmp_path_factory.mktemp("store")
    index, _ = build_store(root, n_songs=7, chunks=3, n_images=9)
    return root, index


@pytest.fixture(scope="session")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    build_store(root, n_songs=4, chunks=3, n_images=5)  # 17 samples, shards of 5
    return root


@pytest.fixture
def out(pristine, tmp_path):
    root = tmp_path / "out"
    shutil.copytree(pristine, root)
    return root


@pytest.fixture(scope="session")
def v12(demo_data, tmp_path_factory):
    """thesis-v12 on the demo data with tiny models: an EnCodec store (0.5 s clips, the tiny
    model's length) and a ViT store in one output."""
    out = tmp_path_factory.mktemp("v12") / "out"
    done = subprocess.run([str(EMOPREP), "run", "--recipe", "thesis-v12", "--data-root", str(demo_data),
                           "--out", str(out), "-q",
                           "--set", f"tokens.tokenizers={{clips = '{TINY_AUDIO}', images = '{TINY_IMAGE}'}}",
                           "--set", "clips.target_s=0.5", "--set", "clips.policy='trim'"],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def v3(thesis_v3_run: DemoRun) -> Path:
    """thesis-v3 on the demo data with the tiny ViT: one store of spectrograms and images (the
    session's shared run: read it, do not change it)."""
    return thesis_v3_run.out
