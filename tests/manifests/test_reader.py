"""The trainer-facing readers: TokenDataset, BalancedBatchSampler, the HF Parquet view."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tests.helpers.token_fixtures import build_store
from emoprep.manifests import reader
from emoprep.manifests.token_store import layout as ts
from emoprep.manifests.reader import BalancedBatchSampler, TokenDataset, hf_parquet_view
from emoprep.pipeline.values import natural_key

TOK = "vit-tiny-test"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """7 songs × 3 chunks (audio) + 9 images (image), tiny ViT, shards of 5."""
    root = tmp_path_factory.mktemp("store")
    index, split = build_store(root, n_songs=7, chunks=3, n_images=9)
    return root, index


def expected_tokens(root, r) -> np.ndarray:
    """What item r must hold, read with plain NumPy as the token_store docstring shows."""
    cls = np.load(root / r.cls_path, mmap_mode="r", allow_pickle=False)
    patches = np.load(root / r.patches_path, mmap_mode="r", allow_pickle=False)
    return np.concatenate([cls[r.row][None], patches[r.row]]).astype(np.float32)


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
    parallel = {}
    for batch in DataLoader(ds, batch_size=4, num_workers=2):
        parallel.update(zip(batch["sample_id"], batch["tokens"]))
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
    assert torch.isfinite(loss) and all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_hf_parquet_view_loads_with_datasets(store, tmp_path):
    import datasets

    root, index = store
    files = hf_parquet_view(root, tokenizer=TOK)
    assert set(files) == set(index["split"])
    stamp = {f: (root / f).stat().st_mtime_ns for fs in files.values() for f in fs}
    assert hf_parquet_view(root, tokenizer=TOK) == files  # an unchanged store is not rewritten
    assert {f: (root / f).stat().st_mtime_ns for fs in files.values() for f in fs} == stamp
    dsd = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf-cache"))
    for split, part in dsd.items():
        assert len(part) == (index["split"] == split).sum()
        part = part.with_format("numpy")
        by_id = index.set_index("sample_id")
        for i in (0, len(part) - 1):
            row = part[i]
            r = by_id.loc[row["sample_id"]]
            want = expected_tokens(root, r)
            np.testing.assert_array_equal(np.asarray(row["cls"], np.float32), want[0])
            np.testing.assert_array_equal(np.asarray(row["patches"], np.float32), want[1:])
            assert row["emotion"] == r.emotion and row["modality"] == r.modality


def test_a_store_folder_copied_elsewhere_stays_readable(store, tmp_path):
    root, index = store
    moved = tmp_path / "elsewhere"
    shutil.copytree(root / "tokens" / TOK / "fp0", moved)
    ds = TokenDataset(moved, tokenizer=TOK)
    assert len(ds) == len(index)
    np.testing.assert_array_equal(ds[3]["tokens"].numpy(), TokenDataset(root, tokenizer=TOK)[3]["tokens"].numpy())


def test_finds_the_single_finished_store_without_the_manifest(store, tmp_path):
    root, index = store
    copy = tmp_path / "out"
    shutil.copytree(root / "tokens", copy / "tokens")
    with pytest.raises(FileNotFoundError, match="no finished token store"):
        ts.load_index(copy, TOK)
    (copy / "tokens" / TOK / "fp0" / "_DONE.json").write_text("{}")
    assert len(ts.load_index(copy, TOK).df) == len(index)


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


def test_hf_view_follows_a_changed_split_and_labels(store, tmp_path):
    """The view is keyed on what it writes: new split or labels with the same shards → a new view."""
    import pandas as pd
    import pyarrow.parquet as pq

    root = tmp_path / "out"
    shutil.copytree(store[0], root)
    first = hf_parquet_view(root, tokenizer=TOK)
    index = pd.read_parquet(root / "manifests/tokens.parquet")
    moved = index["source_id"].isin(["deam:3", "deam:5", "foodpics:0004"])
    index.loc[moved, "split"] = np.where(index.loc[moved, "split"] == "train", "test", "train")
    index.loc[index["sample_id"] == "deam:2:0", "valence"] = 0.125
    index.to_parquet(root / "manifests/tokens.parquet", index=False)
    second = hf_parquet_view(root, tokenizer=TOK)
    assert second != first
    got = {}
    for split, files in second.items():
        for f in files:
            got.update({r["sample_id"]: (split, r["split"], r["valence"])
                        for r in pq.read_table(f, columns=["sample_id", "split", "valence"]).to_pylist()})
    want = index.set_index("sample_id")
    assert {sid: (a, b) for sid, (a, b, _v) in got.items()} == {sid: (s, s) for sid, s in want["split"].items()}
    assert got["deam:2:0"][2] == 0.125
    # an explicit folder is rewritten in place, without parts of the old view left behind
    dest = tmp_path / "view"
    hf_parquet_view(store[0], tokenizer=TOK, dest=dest)
    again = hf_parquet_view(root, tokenizer=TOK, dest=dest)
    listed = {f for fs in again.values() for f in fs}
    assert {str(p) for p in dest.rglob("*.parquet")} == listed
