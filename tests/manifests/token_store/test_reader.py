"""Reading a token store: finding its index."""
from __future__ import annotations

import shutil

import pytest

from emoprep.manifests.token_store.reader import load_index

TOK = "vit-tiny-test"


def test_finds_the_single_finished_store_without_the_manifest(store, tmp_path):
    root, index = store
    copy = tmp_path / "out"
    shutil.copytree(root / "tokens", copy / "tokens")
    with pytest.raises(FileNotFoundError, match="no finished token store"):
        load_index(copy, TOK)
    (copy / "tokens" / TOK / "fp0" / "_DONE.json").write_text("{}")
    assert len(load_index(copy, TOK).df) == len(index)
