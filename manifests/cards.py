"""Dataset cards: a YAML front matter written by huggingface_hub's `DatasetCardData` (the one
YAML writer of every card emoprep writes: the report's DATASET.md and the Hugging Face
export's README.md), then a Markdown body. The Hub and `datasets.load_dataset` read the YAML.
"""
from __future__ import annotations

from typing import Any


def card_text(metadata: dict[str, Any], body: str) -> str:
    """`---`, the YAML of `metadata` (keys in DatasetCardData's order), `---`, then `body`."""
    from huggingface_hub import DatasetCard, DatasetCardData

    return str(DatasetCard(f"---\n{DatasetCardData(**metadata).to_yaml()}\n---\n{body}"))
