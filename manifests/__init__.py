"""Data contracts (reject codes, the token store format) and the readers trainers use.

What a trainer needs is importable from here::

    from emoprep.manifests import BalancedBatchSampler, MixedTokenDataset, TokenDataset, collate_tokens, load_index

(checking a finished output first: `emoprep.manifests.validate.validate`, or `emoprep validate`).

Each name is imported from its module on first use (PEP 562), so `import emoprep.manifests`
— which every stage does, for `emoprep.manifests.reasons` — loads neither torch nor pandas.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emoprep.manifests.hf_view import hf_parquet_view
    from emoprep.manifests.mixed import MixedTokenDataset, collate_tokens
    from emoprep.manifests.reader import TokenDataset, modality_code
    from emoprep.manifests.sampler import BalancedBatchSampler
    from emoprep.manifests.token_store.layout import StoreError
    from emoprep.manifests.token_store.reader import StoreIndex, load_index, open_array

# name -> the module that defines it
_EXPORTS = {
    "TokenDataset": "emoprep.manifests.reader",
    "BalancedBatchSampler": "emoprep.manifests.sampler",
    "MixedTokenDataset": "emoprep.manifests.mixed",
    "collate_tokens": "emoprep.manifests.mixed",
    "modality_code": "emoprep.manifests.reader",
    "hf_parquet_view": "emoprep.manifests.hf_view",
    "load_index": "emoprep.manifests.token_store.reader",
    "StoreIndex": "emoprep.manifests.token_store.reader",
    "open_array": "emoprep.manifests.token_store.reader",
    "StoreError": "emoprep.manifests.token_store.layout",
}

__all__ = ["BalancedBatchSampler", "MixedTokenDataset", "StoreError", "StoreIndex", "TokenDataset", "collate_tokens",
           "hf_parquet_view", "load_index", "modality_code", "open_array"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
