"""Thesis V1-2 on the trainer side: two token stores in one dataset, modality ratios per batch,
a collate that keeps each modality's shape, and DDP ranks that split an epoch between them."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from emoprep.manifests import BalancedBatchSampler, MixedTokenDataset, TokenDataset, collate_tokens
from tests.helpers.fixtures import TINY_AUDIO as AUDIO
from tests.helpers.fixtures import TINY_IMAGE as IMAGE
from tests.helpers.paths import REPO


@pytest.mark.parametrize(("ratios", "batch_size"), [({"audio": 1, "image": 1}, 4), ({"audio": 1, "image": 3}, 8)])
def test_v12_batches_hold_the_ratio_and_each_modalitys_shape(v12, ratios, batch_size):
    ds = MixedTokenDataset(v12, tokenizers=(AUDIO, IMAGE), split="train", enhanced=True, include_cls=False)
    audio = TokenDataset(v12, tokenizer=AUDIO, split="train", enhanced=True)
    image = TokenDataset(v12, tokenizer=IMAGE, split="train", enhanced=True, include_cls=False)
    assert len(ds) == len(audio) + len(image) and set(ds.modalities.tolist()) == {0, 1}
    sampler = BalancedBatchSampler(ds, batch_size=batch_size, ratios=ratios, seed=0)
    k_audio = batch_size * ratios["audio"] // (ratios["audio"] + ratios["image"])
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_tokens, num_workers=2)
    seen: dict[str, set[str]] = {"audio": set(), "image": set()}
    for epoch in range(2):
        sampler.set_epoch(epoch)
        seen = {"audio": set(), "image": set()}
        n = 0
        for batch in loader:
            n += 1
            a, i = batch["audio"], batch["image"]
            assert a["tokens"].shape == (k_audio, 4, 750 + 3)                 # EnCodec codes + VA + modality
            assert i["tokens"].shape == (batch_size - k_audio, 196, 32 + 3)    # patches (no CLS) + 3
            assert batch["modality"].tolist().count(1) == k_audio and len(batch["modality"]) == batch_size
            assert set(a["store"]) == {AUDIO} and set(i["store"]) == {IMAGE}
            seen["audio"].update(a["sample_id"])
            seen["image"].update(i["sample_id"])
        assert n == len(sampler)
        # every train item of each modality once per epoch at least (the scarcer side repeats)
        assert seen == {"audio": set(audio.sample_ids), "image": set(image.sample_ids)}
    # the values are the stores' own
    first = ds[len(audio)]
    assert first["store"] == IMAGE and torch.equal(first["tokens"], image[0]["tokens"])
    assert torch.equal(ds[0]["tokens"], audio[0]["tokens"])


def test_ratios_must_split_the_batch_into_whole_counts(v12):
    ds = MixedTokenDataset(v12, tokenizers=(AUDIO, IMAGE), split="train")
    with pytest.raises(ValueError, match="whole counts"):
        BalancedBatchSampler(ds, batch_size=6, ratios={"audio": 1, "image": 3})
    with pytest.raises(ValueError, match="each modality"):
        BalancedBatchSampler(ds, batch_size=8, ratios={"audio": 1})
    with pytest.raises(ValueError, match="name a store twice"):
        MixedTokenDataset(v12, tokenizers=(AUDIO, AUDIO))


def test_collate_never_pads_one_shape_into_another():
    items = [{"tokens": torch.zeros(4, 8), "valence": 0.1, "arousal": 0.2, "modality": 0, "sample_id": "a",
              "index": 0, "store": "x"},
             {"tokens": torch.zeros(5, 8), "valence": 0.1, "arousal": 0.2, "modality": 0, "sample_id": "b",
              "index": 1, "store": "y"}]
    with pytest.raises(ValueError, match="different token shapes"):
        collate_tokens(items)


def test_ranks_split_an_epoch_into_disjoint_equal_shares():
    mods = np.array([1] * 13 + [0] * 30)
    single = BalancedBatchSampler(mods, batch_size=4, ratios={"audio": 1, "image": 3}, seed=5)
    for drop_last in (False, True):
        ranks = [BalancedBatchSampler(mods, batch_size=4, ratios={"audio": 1, "image": 3}, seed=5,
                                      num_replicas=3, rank=r, drop_last=drop_last) for r in range(3)]
        for epoch in (0, 1):
            shares = [r.batches(epoch) for r in ranks]
            assert len({len(s) for s in shares}) == 1 and all(len(s) == len(ranks[0]) for s in shares)
            merged = [b for group in zip(*shares, strict=True) for b in group]  # round-robin order
            want = single.batches(epoch)
            if drop_last:
                assert merged == want[:len(merged)] and len(want) - len(merged) < 3
            else:
                assert merged[:len(want)] == want and len(merged) - len(want) < 3


DDP_SCRIPT = """
import json, sys
import numpy as np
import torch.distributed as dist
from emoprep.manifests import BalancedBatchSampler
rank, world, init = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
mods = np.array([1] * 13 + [0] * 30)
sampler = BalancedBatchSampler(mods, batch_size=4, ratios={"audio": 1, "image": 3}, seed=5,
                               num_replicas=dist.get_world_size(), rank=dist.get_rank())
epochs = []
for epoch in range(2):
    sampler.set_epoch(epoch)
    mine = list(sampler)
    everyone = [None] * world
    dist.all_gather_object(everyone, mine)
    epochs.append(everyone)
if rank == 0:
    print(json.dumps(epochs))
dist.destroy_process_group()
"""


def test_two_ranks_under_torch_distributed_draw_disjoint_batches(tmp_path):
    init = f"file://{tmp_path / 'rendezvous'}"
    procs = [subprocess.Popen([sys.executable, "-c", DDP_SCRIPT, str(r), "2", init], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=REPO) for r in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    epochs = json.loads(outs[0][0].strip().splitlines()[-1])
    mods = np.array([1] * 13 + [0] * 30)
    single = BalancedBatchSampler(mods, batch_size=4, ratios={"audio": 1, "image": 3}, seed=5)
    for epoch, (r0, r1) in enumerate(epochs):
        assert len(r0) == len(r1)                                   # equally many
        assert not {tuple(b) for b in r0} & {tuple(b) for b in r1}  # disjoint
        together = [b for pair in zip(r0, r1, strict=True) for b in pair]
        want = single.batches(epoch)
        assert together[:len(want)] == want                         # what one process draws
        assert {i for b in together for i in b} == set(range(len(mods)))
