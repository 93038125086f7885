"""The data contracts: the columns every manifest and the rejects table carry.

The reject reason codes and their meanings are in `emoprep.manifests.reasons`.
"""
from __future__ import annotations

# Columns of manifests/rejects.parquet.
REJECT_COLUMNS = ("sample_id", "stage", "reason", "message")

# Columns every stage manifest has (SPEC §5.2); label, split and path columns where relevant.
COMMON_COLUMNS = ("sample_id", "fingerprint")
ITEM_COLUMNS = ("sample_id", "source_id", "modality")

MODALITY = {"image": 0, "audio": 1}
