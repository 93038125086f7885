"""Modality-balanced batches for training on image and audio tokens together (thesis
§3.3.1, §3.4.1: equal counts, or "predefined ratios"), on one process or under DDP.

Each modality is drawn from its own stream of reshuffled permutations, so batches depend only
on (seed, epoch). With `num_replicas = R` every rank computes the same epoch and takes every
R-th batch: ranks get disjoint batches, equally many, which together are the batches one
process would draw (plus, without `drop_last`, up to R − 1 more from the same streams so the
count divides evenly; never a duplicate batch).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from emoprep.manifests.reader import modality_code


class BalancedBatchSampler(Sampler[list[int]]):
    """Batches with a fixed count of each modality.

    `dataset`: anything with a `modalities` array (TokenDataset, MixedTokenDataset) or the
    modality codes themselves. `ratios`: {"audio": a, "image": b} (names or codes); the counts
    per batch are `batch_size * a / (a + b)` etc. and must come out whole (default: equal).
    An epoch has enough batches to show every item of the modality that needs the most
    batches once (`epoch_size="max"`; the others repeat with fresh shuffles), or of the one
    that needs the fewest (`"min"`; the others are subsampled). Call `set_epoch(e)` each
    epoch (Lightning does), or let each new iteration advance the epoch by one.
    """

    def __init__(self, dataset: Any, batch_size: int, ratios: Mapping[Any, float] | None = None, seed: int = 0,
                 epoch_size: str = "max", num_replicas: int = 1, rank: int = 0, drop_last: bool = False):
        mods = np.asarray(getattr(dataset, "modalities", dataset), dtype=np.int64)
        self.groups = {int(m): np.flatnonzero(mods == m) for m in np.unique(mods)}
        if len(self.groups) < 2:
            raise ValueError(f"BalancedBatchSampler needs two modalities, found {sorted(self.groups)}; "
                             "use a plain sampler for a one-modality dataset")
        if epoch_size not in ("max", "min"):
            raise ValueError(f"epoch_size {epoch_size!r}: expected 'max' or 'min'")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} of num_replicas {num_replicas}: expected 0 <= rank < num_replicas")
        self.counts = self._counts(batch_size, ratios)
        self.batch_size, self.seed, self.epoch_size = batch_size, int(seed), epoch_size
        self.num_replicas, self.rank, self.drop_last = int(num_replicas), int(rank), drop_last
        self.epoch = 0

    def _counts(self, batch_size: int, ratios: Mapping[Any, float] | None) -> dict[int, int]:
        """Items of each modality per batch."""
        if ratios is None:
            if batch_size <= 0 or batch_size % len(self.groups):
                raise ValueError(f"batch_size {batch_size} must be a positive multiple of {len(self.groups)} "
                                 "modalities")
            return dict.fromkeys(self.groups, batch_size // len(self.groups))
        weights = {modality_code(m): float(r) for m, r in ratios.items()}
        if set(weights) != set(self.groups) or min(weights.values()) <= 0:
            raise ValueError(f"ratios {dict(ratios)} must give a positive weight to each modality of the dataset "
                             f"({sorted(self.groups)}: 0 = image, 1 = audio)")
        total = sum(weights.values())
        counts = {m: batch_size * w / total for m, w in weights.items()}
        if any(abs(c - round(c)) > 1e-9 or round(c) < 1 for c in counts.values()):
            raise ValueError(f"batch_size {batch_size} cannot be split {dict(ratios)} into whole counts "
                             f"({counts}); choose a batch size that is a multiple of {total:g}")
        return {m: round(c) for m, c in counts.items()}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _global_len(self) -> int:
        """Batches one process draws per epoch."""
        needs = [len(self.groups[m]) / k for m, k in self.counts.items()]
        return max(1, math.ceil(max(needs)) if self.epoch_size == "max" else math.floor(min(needs)))

    def _drawn(self) -> int:
        """Batches drawn per epoch across all ranks (a multiple of num_replicas)."""
        n, r = self._global_len(), self.num_replicas
        return (n // r) * r if self.drop_last else math.ceil(n / r) * r

    def __len__(self) -> int:
        return self._drawn() // self.num_replicas

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of `epoch` (a pure function of seed, epoch and rank)."""
        return self.all_batches(epoch)[self.rank::self.num_replicas]

    def all_batches(self, epoch: int) -> list[list[int]]:
        """Every rank's batches of `epoch`, in the order ranks take them round-robin."""
        n_batches = self._drawn()
        streams = {m: self._stream(self.groups[m], epoch, m, n_batches * k) for m, k in sorted(self.counts.items())}
        rng = np.random.default_rng([self.seed, epoch, 1 << 20])
        out = []
        for b in range(n_batches):
            batch = np.concatenate([streams[m][b * k:(b + 1) * k] for m, k in sorted(self.counts.items())])
            out.append(rng.permutation(batch).tolist())
        return out

    def _stream(self, idx: np.ndarray, epoch: int, modality: int, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch, modality])
        reps = math.ceil(n / len(idx)) if n else 0
        return np.concatenate([rng.permutation(idx) for _ in range(reps)])[:n] if reps else idx[:0]

    def __iter__(self) -> Iterator[list[int]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return iter(self.batches(epoch))


def modality_counts(batch: Sequence[int], modalities: np.ndarray) -> dict[int, int]:
    """How many items of each modality code a batch holds (for checks and logs)."""
    values, counts = np.unique(modalities[list(batch)], return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}
