"""Fixtures of the reader and validate tests: small finished token stores (tiny ViT)."""
from __future__ import annotations

import shutil

import pytest

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
