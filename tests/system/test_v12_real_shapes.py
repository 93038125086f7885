"""Thesis V1-2 at its real shapes: thesis-v12 on the demo data with the real architectures
(EnCodec 24 kHz on 46 s clips, the patch-28 / hidden-2048 ViT; seeded random weights here),
then the trainer side — MixedTokenDataset + BalancedBatchSampler (1:1 and 1:3) + collate_tokens
through DataLoader(num_workers=2) — and both exports. The tiny-model tests cover the logic;
this one holds the shapes the thesis trains on (~3 min on 2 cores, most of it EnCodec)."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
from torch.utils.data import DataLoader

from emoprep.manifests import BalancedBatchSampler, MixedTokenDataset, TokenDataset, collate_tokens
from emoprep.manifests.export.step import export
from tests.helpers.paths import EMOPREP

pytestmark = pytest.mark.system  # end to end in subprocesses; `-m 'not slow and not system'` skips them

AUDIO, IMAGE = "encodec-24khz", "vit-patch28-h2048"


@pytest.fixture(scope="module")
def v12_real(demo_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("v12-real") / "out"
    done = subprocess.run([str(EMOPREP), "run", "--recipe", "thesis-v12", "--data-root", str(demo_data),
                           "--out", str(out), "-q"], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.parametrize(("ratios", "batch_size"), [({"audio": 1, "image": 1}, 4), ({"audio": 1, "image": 3}, 8)])
def test_v12_batches_at_the_theses_shapes(v12_real, ratios, batch_size):
    ds = MixedTokenDataset(v12_real, tokenizers=(AUDIO, IMAGE), split="train", enhanced=True, include_cls=False)
    audio_ids = set(TokenDataset(v12_real, tokenizer=AUDIO, split="train").sample_ids)
    image_ids = set(TokenDataset(v12_real, tokenizer=IMAGE, split="train").sample_ids)
    sampler = BalancedBatchSampler(ds, batch_size=batch_size, ratios=ratios, seed=0)
    k_audio = batch_size * ratios["audio"] // (ratios["audio"] + ratios["image"])
    seen: dict[str, set[str]] = {"audio": set(), "image": set()}
    for batch in DataLoader(ds, batch_sampler=sampler, collate_fn=collate_tokens, num_workers=2):
        assert tuple(batch["audio"]["tokens"].shape) == (k_audio, 32, 3453)
        assert tuple(batch["image"]["tokens"].shape) == (batch_size - k_audio, 64, 2051)
        assert batch["modality"].tolist().count(1) == k_audio
        seen["audio"].update(batch["audio"]["sample_id"])
        seen["image"].update(batch["image"]["sample_id"])
    assert seen == {"audio": audio_ids, "image": image_ids}


def test_v12_exports_keep_the_theses_shapes(v12_real, tmp_path):
    import datasets
    import webdataset as wds

    hf = export(v12_real, tmp_path / "hf", "hf").dest
    codes = datasets.load_dataset(str(hf), name=AUDIO, split="train", cache_dir=str(tmp_path / "c"))
    images = datasets.load_dataset(str(hf), name=IMAGE, split="train", cache_dir=str(tmp_path / "c"))
    assert (codes.features["codes"].shape, codes.features["codes"].dtype) == ((32, 3450), "int16")
    assert (images.features["patches"].shape, images.features["patches"].dtype) == ((64, 2048), "float16")
    store = TokenDataset(v12_real, tokenizer=AUDIO, split="train")
    assert np.array_equal(codes.with_format("numpy")[0]["codes"], store.tokens(0))
    shards = export(v12_real, tmp_path / "wds", "webdataset").dest / IMAGE
    urls = [str(shards / name) for name in (shards / "train.txt").read_text().split()]
    sample = next(iter(wds.WebDataset(urls, shardshuffle=False).decode()))
    assert sample["tokens.npy"].shape == (65, 2048) and sample["tokens.npy"].dtype == np.float16
