"""Pooled features read from the stores emoprep writes: ViT (mean of the patch tokens, CLS),
EnCodec (per-codebook code histograms), layered synthetic stores; what each pools is checked
against the trainers' reader."""
from __future__ import annotations

import numpy as np
import pytest

from emoprep.manifests import TokenDataset
from emoprep.manifests.token_store.layout import StoreError
from emoprep.pipeline.errors import ConfigError
from emoprep.stages.probe import step
from emoprep.stages.probe.features import code_histograms, open_stores
from emoprep.stages.probe.synthetic import chunk_items, planted_layers, write_pooled_store
from tests.helpers.token_fixtures import V12_TINY, run_tokens, tokens_ctx, v12_inputs


def test_vit_store_pools_patch_mean_and_cls_as_the_reader_gives_them(tiny_run):
    root, _ = tiny_run
    (store,) = open_stores(root, None)
    assert store.layers() == ["last"] and store.poolings() == ["mean", "cls"]
    ds = TokenDataset(root, tokenizer="vit-tiny-test")
    assert store.items["sample_id"].tolist() == ds.sample_ids
    mean, cls = store.matrix("last", "mean"), store.matrix("last", "cls")
    for i in (0, 7, len(ds) - 1):
        tokens = ds.tokens(i)
        np.testing.assert_allclose(mean[i], tokens[1:].mean(axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(cls[i], tokens[0])
    assert set(store.items["modality"]) == {"audio", "image"}
    with pytest.raises(ConfigError, match="no layer '3'"):
        store.matrix("3", "mean")
    with pytest.raises(ConfigError, match="pooling 'hist'"):
        store.matrix("last", "hist")


def test_code_histograms_count_each_codebook_separately():
    codes = np.array([[[0, 0, 1, 3], [2, 2, 2, 2]]], dtype=np.int16)  # 1 item, 2 codebooks, 4 frames
    hist = code_histograms(codes, 4)
    np.testing.assert_array_equal(hist, [[0.5, 0.25, 0, 0.25, 0, 0, 1, 0]])
    with pytest.raises(StoreError, match="outside"):
        code_histograms(codes, 3)


def test_encodec_store_gives_code_histograms(tmp_path):
    manifests = v12_inputs(tmp_path, n_songs=10, n_images=10)
    run_tokens(tokens_ctx(tmp_path, manifests, shard_size=4, **V12_TINY))
    stores = {s.tokenizer: s for s in open_stores(tmp_path, None)}
    audio = stores["encodec-tiny-test"]
    assert audio.poolings() == ["hist"]
    hist = audio.matrix("last", "hist")
    assert hist.shape == (10, 4 * 16)
    np.testing.assert_allclose(hist.reshape(10, 4, 16).sum(axis=2), 1.0, rtol=1e-6)
    ds = TokenDataset(tmp_path, tokenizer="encodec-tiny-test")
    codes = ds.tokens(2).astype(int)   # [4, 750]
    np.testing.assert_allclose(hist[2].reshape(4, 16), [np.bincount(c, minlength=16) / 750 for c in codes])
    result = step.probe(tmp_path, dest=tmp_path / "probe", folds=2)
    table = result.table()
    assert set(zip(table["tokenizer"], table["pooling"], strict=True)) == {("encodec-tiny-test", "hist"),
                                                                          ("vit-tiny-test", "mean")}
    assert set(table["modality"]) == {"audio", "image"}   # one modality per store: no "all"


def test_layered_store_reads_each_layer(tmp_path):
    items = chunk_items(n_songs=5, chunks=2)
    hidden = planted_layers(items, 3, 6, None)
    (store,) = open_stores(write_pooled_store(tmp_path / "s", items, hidden, layers=["a", "b", "c"], shard_size=3),
                           None)
    assert store.layers() == ["a", "b", "c"] and store.poolings() == ["stored"]
    for k, name in enumerate("abc"):
        np.testing.assert_array_equal(store.matrix(name, "stored"), hidden[:, k])
