"""Column groups that several manifests share (SPEC §5.2), declared once with their kinds.

Every stage declares its manifest's columns (`Stage.manifest_columns` or `Stage.columns`);
the groups below are the parts that mean the same thing in several stages, so a reader can
rely on them: an item's identity, the raw audio or image file an ingest probed, the dynamic
annotation frames. Order within a group is the order in the manifests.
"""
from __future__ import annotations

from collections.abc import Iterable

from emoprep.pipeline.columns import ColumnKind

# Every item: its id, the song / image it comes from, image (0) or audio (1).
ITEM_COLUMNS: dict[str, ColumnKind] = {"sample_id": "str", "source_id": "str", "modality": "int"}

# A raw audio file as an ingest probed it (path relative to the dataset root).
AUDIO_FILE_COLUMNS: dict[str, ColumnKind] = {
    "audio_path": "str", "content_hash": "str", "duration_s": "float", "n_frames_audio": "int",
    "sample_rate": "int", "channels": "int", "audio_format": "str"}

# A raw image file as an ingest probed it (path relative to the dataset root).
IMAGE_FILE_COLUMNS: dict[str, ColumnKind] = {
    "image_path": "str", "content_hash": "str", "width": "int", "height": "int", "mode": "str"}

# Dynamic (per-frame) annotations of a song: frame values, the first frame's time, the rate.
DYNAMIC_VA_COLUMNS: dict[str, ColumnKind] = {
    "dyn_valence": "floats", "dyn_arousal": "floats", "dyn_t0_s": "float", "dyn_hz": "float",
    "dyn_n_frames": "int"}

# The `emotion` column's 12 classes (thesis eq. 2.1): valence > 0 on the arousal/valence slope
# bands from steep to flat, then valence <= 0 on the same bands.
POSITIVE = ("excited", "delighted", "happy", "content", "relaxed", "calm")
NEGATIVE = ("tired", "bored", "depressed", "frustrated", "angry", "tense")
EMOTIONS = POSITIVE + NEGATIVE


def emotion_classes(present: Iterable[str] = ()) -> list[str]:
    """The 12 classes in the thesis's order, then any other label found, sorted."""
    return [*EMOTIONS, *sorted(set(present) - set(EMOTIONS))]
