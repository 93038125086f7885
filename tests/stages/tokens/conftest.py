"""Fixtures of the tokens tests: a small run's inputs, and a counter of the ViT's forward
passes (the expensive part the shard objects save)."""
from __future__ import annotations

import pytest

from emoprep.stages.tokens import vit
from tests.helpers.token_fixtures import label_rows, split_rows, write_pngs


@pytest.fixture
def forward_calls(monkeypatch):
    """Count the model's forward passes (the expensive part the object store saves)."""
    calls = []
    real = vit.forward_tokens

    def counting(model, pixels, compute):
        calls.append(len(pixels))
        return real(model, pixels, compute)

    monkeypatch.setattr(vit, "forward_tokens", counting)
    return calls


@pytest.fixture
def small_run(tmp_path):
    """Labels, split and PNGs of 4 songs × 3 chunks + 5 images, ready for the tokens stage."""
    labels = label_rows(n_songs=4, chunks=3, n_images=5)
    split = split_rows(labels, tmp_path)
    sources = write_pngs(tmp_path, labels)
    return tmp_path, {**sources, "split": split}
