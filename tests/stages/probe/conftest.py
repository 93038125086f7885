"""Fixtures of the probe tests: synthetic layered stores with a planted signal (written
through the token store writer), and a small real run (tiny ViT) for the end-to-end test."""
from __future__ import annotations

import pytest

from emoprep.stages.probe.synthetic import chunk_items, planted_layers, write_pooled_store
from tests.helpers.token_fixtures import build_store

SIGNAL_LAYER = 2


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    """60 songs × 4 chunks, 4 layers × 32 dims; layer 2 = linear in (valence, arousal) + noise."""
    items = chunk_items(n_songs=60, chunks=4, seed=1)
    folder = tmp_path_factory.mktemp("planted") / "store"
    write_pooled_store(folder, items, planted_layers(items, 4, 32, SIGNAL_LAYER, seed=2), shard_size=100)
    return folder, items


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished tiny-ViT run: 12 songs × 3 chunks and 12 images, split by song."""
    root = tmp_path_factory.mktemp("run") / "out"
    root.mkdir()
    index, _ = build_store(root, n_songs=12, chunks=3, n_images=12)
    return root, index
