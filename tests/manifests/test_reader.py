"""The trainer-facing readers: TokenDataset and BalancedBatchSampler."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from emoprep.manifests import reader
from emoprep.manifests.reader import TokenDataset
from emoprep.manifests.sampler import BalancedBatchSampler
from emoprep.pipeline.values import natural_key
from tests.helpers.token_fixtures import build_store, expected_tokens

TOK = "vit-tiny-test"


def test_items_are_the_stored_tokens_with_labels(store):
    root, index = store
    ds = TokenDataset(root, tokenizer=TOK)
    assert len(ds) == len(index) == 30
    by_id = index.set_index("sample_id")
    for i in (0, 7, 29):
        item = ds[i]
        r = by_id.loc[item["sample_id"]]
        assert item["tokens"].shape == (197, 32) and item["tokens"].dtype == torch.float32
        np.testing.assert_array_equal(item["tokens"].numpy(), expected_tokens(root, r))
        assert item["valence"].item() == pytest.approx(r.valence) and item["modality"].item() == r.modality
    with pytest.raises(IndexError):
        ds[30]


def test_filters_by_split_and_modality(store):
    root, index = store
    train_audio = TokenDataset(root, tokenizer=TOK, split="train", modality="audio")
    want = index[(index.split == "train") & (index.modality == 1)]
    assert sorted(train_audio.sample_ids) == sorted(want.sample_id) and len(want) > 0
    both = TokenDataset(root, tokenizer=TOK, split=["train", "test"], modality=0)
    assert len(both) == 9
    with pytest.raises(ValueError, match="no tokens"):
        TokenDataset(root, tokenizer=TOK, split="val")
    with pytest.raises(ValueError, match="modality"):
        TokenDataset(root, tokenizer=TOK, modality="video")
    with pytest.raises(FileNotFoundError, match="vit-base-patch16-224"):
        TokenDataset(root)  # the default tokenizer is not in this store


def test_enhanced_tokens_append_valence_arousal_modality(store):
    root, _ = store
    plain = TokenDataset(root, tokenizer=TOK)
    enh = TokenDataset(root, tokenizer=TOK, enhanced=True)
    no_cls = TokenDataset(root, tokenizer=TOK, enhanced=True, include_cls=False)
    for i in range(len(plain)):
        t = enh[i]["tokens"]
        assert t.shape == (197, 35)  # 32 + 3; with ViT-base this is 768 + 3 = 771
        assert torch.equal(t[:, :32], plain[i]["tokens"])
        extra = torch.tensor([plain[i]["valence"], plain[i]["arousal"], float(plain[i]["modality"])])
        assert torch.equal(t[:, 32:], extra.expand(197, 3))
        assert torch.equal(no_cls[i]["tokens"], t[1:])


def test_dataloader_workers_read_the_same_values(store):
    root, _ = store
    ds = TokenDataset(root, tokenizer=TOK)
    serial = {b["sample_id"][0]: b["tokens"][0] for b in DataLoader(ds, batch_size=1)}
    parallel: dict[str, torch.Tensor] = {}
    for batch in DataLoader(ds, batch_size=4, num_workers=2):
        parallel.update(zip(batch["sample_id"], batch["tokens"], strict=True))
    assert serial.keys() == parallel.keys() and all(torch.equal(serial[k], parallel[k]) for k in serial)


def test_balanced_batches_are_half_and_half_and_deterministic(store):
    root, _ = store
    ds = TokenDataset(root, tokenizer=TOK)  # 21 audio, 9 image
    s = BalancedBatchSampler(ds, batch_size=6, seed=1)
    assert len(s) == 7  # ceil(21 / 3): every audio item once per epoch
    e0 = list(s)
    for batch in e0:
        mods = ds.modalities[batch]
        assert len(batch) == 6 and (mods == 0).sum() == 3 and (mods == 1).sum() == 3
    audio_seen = {i for b in e0 for i in b if ds.modalities[i] == 1}
    assert audio_seen == set(np.flatnonzero(ds.modalities == 1))
    e1 = list(s)  # the next iteration is the next epoch
    assert e0 != e1
    again = BalancedBatchSampler(ds, batch_size=6, seed=1)
    assert list(again) == e0 and again.batches(1) == e1
    s.set_epoch(0)
    assert list(s) == e0
    assert BalancedBatchSampler(ds, batch_size=6, seed=2).batches(0) != e0
    short = BalancedBatchSampler(ds, batch_size=6, seed=1, epoch_size="min")
    assert len(short) == 3 and len({i for b in short for i in b if ds.modalities[i] == 0}) == 9


def test_balanced_sampler_refuses_what_it_cannot_balance(store):
    root, _ = store
    ds = TokenDataset(root, tokenizer=TOK)
    with pytest.raises(ValueError, match="multiple"):
        BalancedBatchSampler(ds, batch_size=5)
    with pytest.raises(ValueError, match="two modalities"):
        BalancedBatchSampler(TokenDataset(root, tokenizer=TOK, modality="image"), batch_size=4)


def test_one_training_step_on_balanced_batches(store):
    """A trainer's loop: DataLoader(TokenDataset, BalancedBatchSampler) → forward, loss, step."""
    root, _ = store
    ds = TokenDataset(root, tokenizer=TOK, split="train", enhanced=True)
    assert set(ds.modalities.tolist()) == {0, 1}
    loader = DataLoader(ds, batch_sampler=BalancedBatchSampler(ds, batch_size=4, seed=0), num_workers=1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(35, 16), torch.nn.GELU(), torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    batch = next(iter(loader))
    pred = model(batch["tokens"]).mean(dim=1)                       # [B, 2]
    target = torch.stack([batch["valence"], batch["arousal"]], dim=1)
    loss = torch.nn.functional.mse_loss(pred, target)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert batch["tokens"].shape == (4, 197, 35) and sorted(batch["modality"].tolist()) == [0, 0, 1, 1]
    assert torch.isfinite(loss) and all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_a_store_folder_copied_elsewhere_stays_readable(store, tmp_path):
    root, index = store
    moved = tmp_path / "elsewhere"
    shutil.copytree(root / "tokens" / TOK / "fp0", moved)
    ds = TokenDataset(moved, tokenizer=TOK)
    assert len(ds) == len(index)
    np.testing.assert_array_equal(ds[3]["tokens"].numpy(), TokenDataset(root, tokenizer=TOK)[3]["tokens"].numpy())


def test_modality_codes():
    assert reader.modality_code("image") == 0 and reader.modality_code(1) == 1


def test_items_follow_the_manifest_order(tmp_path):
    """Item i is row i of the token manifest (natural order: deam:9:0 < deam:10:0)."""
    import pandas as pd

    index, _ = build_store(tmp_path, n_songs=3, chunks=2, n_images=2, first_song=9)  # songs 9, 10, 11
    ds = TokenDataset(tmp_path, tokenizer=TOK)
    assert ds.sample_ids[:2] == ["deam:9:0", "deam:9:1"]  # plain text order would start at deam:10:0
    assert ds.sample_ids == sorted(index["sample_id"], key=natural_key)
    published = pd.read_parquet(tmp_path / "manifests/tokens.parquet").sort_values(
        "sample_id", key=lambda s: s.map(natural_key))
    np.testing.assert_array_equal(ds[0]["tokens"].numpy(), expected_tokens(tmp_path, published.iloc[0]))
