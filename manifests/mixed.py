"""Several token stores as one dataset, and a collate that keeps each modality's shape: thesis
V1-2 trains on EnCodec codes ([32, 3450], enhanced [32, 3453]) and patch-28 image tokens
([64, 2048], enhanced [64, 2051]) in the same batches.

    ds = MixedTokenDataset("emoprep-out", tokenizers=("encodec-24khz", "vit-patch28-h2048"),
                           split="train", enhanced=True, include_cls=False)
    sampler = BalancedBatchSampler(ds, batch_size=8, ratios={"audio": 1, "image": 3}, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_tokens, num_workers=2)
    for batch in loader:
        batch["audio"]["tokens"]   # [2, 32, 3453]
        batch["image"]["tokens"]   # [6, 64, 2051]
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from emoprep.manifests.reader import TokenDataset

MODALITY_NAMES = {0: "image", 1: "audio"}


class MixedTokenDataset(Dataset[dict[str, Any]]):
    """The items of several token stores of one output, in store order (`tokenizers`), each
    tagged with its modality and its store (`"store"`: the tokenizer name).

    Every store is a `TokenDataset` with the same `split`, `enhanced`, `include_cls` and
    `dtype`; `include_cls` only concerns stores that have a CLS array (ViT). A store with no
    items for `split` is an error (a typo would otherwise train on one modality only).
    """

    def __init__(self, out_root: str | os.PathLike[str], tokenizers: Sequence[str],
                 split: str | Sequence[str] | None = None, enhanced: bool = False, include_cls: bool = True,
                 dtype: torch.dtype = torch.float32, storage_options: dict[str, Any] | None = None):
        if not tokenizers:
            raise ValueError("MixedTokenDataset needs at least one tokenizer")
        if len(set(tokenizers)) != len(tokenizers):
            raise ValueError(f"tokenizers {list(tokenizers)} name a store twice")
        self.tokenizers = list(tokenizers)
        self.parts = [TokenDataset(out_root, tokenizer=tok, split=split, enhanced=enhanced, include_cls=include_cls,
                                   dtype=dtype, storage_options=storage_options) for tok in self.tokenizers]
        self.offsets = np.cumsum([0, *(len(p) for p in self.parts)])
        self.modalities = np.concatenate([p.modalities for p in self.parts])
        self.stores = np.concatenate([np.full(len(p), k) for k, p in enumerate(self.parts)])
        self.sample_ids = [sid for p in self.parts for sid in p.sample_ids]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        item = self.parts[k][i - int(self.offsets[k])]
        return {**item, "index": i, "store": self.tokenizers[k]}


def collate_tokens(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch of mixed items → one sub-batch per modality present:
    `{"audio": {...}, "image": {...}, "modality": [B], "position": [B]}`, each sub-batch with
    `tokens` [B_m, T, D], `valence`, `arousal` [B_m], `sample_id`, `store` (lists), `index`
    [B_m]; `modality` and `position` give each item's modality and its place in its sub-batch,
    in the sampler's order. Items of one modality with different shapes (two stores of it)
    raise: nothing is padded into another shape."""
    groups: dict[str, list[dict[str, Any]]] = {}
    position = []
    for item in items:
        name = MODALITY_NAMES[int(item["modality"])]
        position.append(len(groups.setdefault(name, [])))
        groups[name].append(item)
    out: dict[str, Any] = {}
    for name, group in groups.items():
        shapes = {tuple(it["tokens"].shape) for it in group}
        if len(shapes) > 1:
            raise ValueError(f"{name} items of one batch have different token shapes {sorted(shapes)} "
                             f"(stores {sorted({str(it.get('store')) for it in group})}); "
                             "give each shape its own modality or batch")
        out[name] = {"tokens": torch.stack([it["tokens"] for it in group]),
                     "valence": torch.stack([torch.as_tensor(it["valence"]) for it in group]),
                     "arousal": torch.stack([torch.as_tensor(it["arousal"]) for it in group]),
                     "index": torch.tensor([int(it["index"]) for it in group]),
                     "sample_id": [it["sample_id"] for it in group],
                     "store": [it.get("store") for it in group]}
    out["modality"] = torch.tensor([int(it["modality"]) for it in items])
    out["position"] = torch.tensor(position)
    return out
