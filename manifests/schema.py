"""The data contracts: reject reason codes, and the columns every manifest row carries.

Reason codes are stable kebab-case strings that a user can filter on
(`manifests/rejects.parquet`: sample_id, stage, reason, message). A code means the same thing
in every stage that uses it; add new ones here with a one-line meaning.
"""
from __future__ import annotations

# Columns of manifests/rejects.parquet.
REJECT_COLUMNS = ("sample_id", "stage", "reason", "message")

# Columns every stage manifest has (SPEC §5.2); label, split and path columns where relevant.
COMMON_COLUMNS = ("sample_id", "fingerprint")
ITEM_COLUMNS = ("sample_id", "source_id", "modality")

MODALITY = {"image": 0, "audio": 1}

REJECT_CODES: dict[str, str] = {
    # --- any stage (the engine) ---
    "internal-error": "the stage raised an exception on this item (a bug or an unforeseen input); message has the error",
    "worker-crashed": "the worker process died twice while processing this item (e.g. a decoder segfault, out of memory)",
    "no-output": "the stage returned neither an output nor a reason for this item (a stage bug)",
    "duplicate-id": "the same sample id appears more than once with different content",
    "path-outside-root": "a path from a table, manifest or folder listing (absolute, '..', a symlink) that would leave the dataset root (or the output root, for audio read from an upstream stage); never read",
    # --- DEAM ingest ---
    "missing-annotation": "audio file with no row in the static or dynamic annotation CSVs",
    "missing-audio": "song annotated in the CSVs (or a generic table row) but its audio file (MEMD_audio/<id>.mp3, chorus/<id>.mp3, the row's path) is absent",
    "bad-annotation": "the song's annotation rows exist but hold no usable value (NaN or out of range)",
    "duplicate-annotation": "annotation rows for one song id disagree in every kind (static and dynamic), so nothing usable is left",
    "duplicate-audio": "several audio files map to one song id (e.g. 8.mp3 and 008.mp3)",
    "bad-song-id": "file in MEMD_audio/ (DEAM) or chorus/ (PMEmo) whose name is not <integer song id>.mp3",
    # --- any stage that opens audio ---
    "unreadable-audio": "file (or zip member) cannot be opened or decoded as audio",
    "empty-audio": "file is 0 bytes or holds no audio frames",
    "truncated-audio": "decoding stops well before the length the file's header announces",
    "absurd-sample-rate": "the audio header announces a rate outside 1 kHz-768 kHz (corrupt or hand-made; never resampled)",
    "short-audio": "a chunk file shorter than the span it should hold",
    "wrong-sample-rate": "a chunk file at another rate than the transform's (riffusion needs 44.1 kHz)",
    "non-finite-audio": "audio samples that are NaN or infinite",
    # --- clips / chunks ---
    "missing-static": "no usable static valence/arousal for a 46 s clip",
    "longer-than-target": "song longer than the clip length (46.0 s) and policy = 'pad'",
    "missing-dynamic": "no dynamic frame with both valence and arousal for a song to chunk (absent, or conflicting rows blanked at ingest)",
    "too-short": "song shorter than start_s + pad_tail_min_s (15 + 4.5 s): it yields no chunk",
    "under-annotated": "chunk with fewer than min_frames (8 of 10) dynamic frames that have both valence and arousal",
    # --- FoodPics ingest / images ---
    "missing-rating": "an image file whose number has no row in the ratings sheet",
    "non-food": "category column says non-food (or number >= 1000 when there is no category column)",
    "incomplete-va": "fewer than min_groups rater groups with both valence and arousal",
    "missing-image": "a ratings row (or manifest row) whose image file is not there",
    "image-too-large": "more pixels than max_pixels (decompression-bomb guard); never decoded",
    "undecodable-image": "Pillow cannot identify, verify or fully decode the image (corrupt, truncated)",
    "bad-id": "a sheet row whose Image_No is empty or not a whole number; a generic table id that is empty or has '/', '\\', ':' or control characters",
    "unmatched-file": "an image file whose name is not a number",
    "source-changed": "the file's bytes differ from the content hash the ingest recorded",
    "unsupported-mode": "an image mode that cannot be converted to RGB (e.g. LAB without ICC)",
    # --- labels / split ---
    "missing-va": "valence or arousal is missing, NaN or not a number",
    "va-out-of-range": "a raw VA value outside the declared scale (labels.method = 'fixed'; generic.scale)",
    "missing-source-id": "a labelled row without source_id, so it cannot be grouped by song",
    # --- salient / features / pairs (seed recipes) ---
    "silent-audio": "every decoded sample is 0: a broken or placeholder file (no song, no salient segment)",
    "shorter-than-window": "audio shorter than the stage's analysis window (salient with short_policy = 'reject'; features: one n_fft frame)",
    "non-finite-features": "a librosa feature came out NaN or infinite for this clip",
    "missing-label": "an item to pair has no value in the pairing label column",
    "no-image-for-label": "no image with the audio item's label (in its split, with image_pool = 'same-split') to pair it with",
    # --- tokens ---
    "unlabelled": "an input with no label/split row (rejected or filtered upstream)",
    "no-image": "a split-manifest (labelled) id that no image-producing stage produced (rejected or dropped there)",
    "modality-mismatch": "the input's modality flag disagrees with its source",
    "bad-path": "the manifest path is missing or leaves the output root",
    "bad-image-size": "the image is not the tokenizer's input size (224 x 224)",
    "bad-image-mode": "the image is neither 8-bit gray nor RGB",
    "missing-file": "the input file named by the manifest does not exist",
    "unreadable-image": "the 224-px PNG cannot be decoded",
    "non-finite-tokens": "the model produced NaN or infinite values for this input",
    "no-input": "a split-manifest (labelled) id that no input stage of a tokens stage with an audio tokenizer produced",
    "bad-audio-length": "an audio clip that is not the audio tokenizer's exact length (EnCodec: 46.0 s clips)",
}


def describe(code: str) -> str:
    """The meaning of a reason code ('undocumented' for codes not listed here)."""
    return REJECT_CODES.get(code, "undocumented reason code")
