"""Reject reason codes: one constant per code, each with its one-line meaning.

A code is a stable kebab-case string that users filter on (`manifests/rejects.parquet`:
sample_id, stage, reason, message) and means the same thing in every stage that uses it.
Stages import the constants by name (`from emoprep.manifests.reasons import MISSING_AUDIO`),
so a misspelt code fails at import, and a type checker rejects a bare string where a
`ReasonCode` is expected. Add a new code here, with its meaning, before using it.
"""
from __future__ import annotations

from emoprep.pipeline.reasons import ENGINE_CODES, ReasonCode, define

# code -> meaning, in the order defined (the report and the README list them so): the
# engine's own codes first (emoprep.pipeline.reasons), then those of the built-in stages.
REJECT_CODES: dict[ReasonCode, str] = dict(ENGINE_CODES)


def _code(code: str, meaning: str) -> ReasonCode:
    return define(REJECT_CODES, code, meaning)


def describe(code: str) -> str:
    """The meaning of a reason code ('undocumented' for codes not listed here)."""
    return REJECT_CODES.get(ReasonCode(code), "undocumented reason code")


# --- any stage
DUPLICATE_ID = _code(
    "duplicate-id",
    "the same sample id appears more than once with different content")
PATH_OUTSIDE_ROOT = _code(
    "path-outside-root",
    "a path from a table, manifest or folder listing (absolute, '..', a symlink) that would leave the "
    "dataset root (or the output root, for audio read from an upstream stage); never read")

# --- DEAM ingest
MISSING_ANNOTATION = _code(
    "missing-annotation",
    "audio file with no row in the static or dynamic annotation CSVs")
MISSING_AUDIO = _code(
    "missing-audio",
    "song annotated in the CSVs (or a generic table row) but its audio file (MEMD_audio/<id>.mp3, "
    "chorus/<id>.mp3, the row's path) is absent")
BAD_ANNOTATION = _code(
    "bad-annotation",
    "the song's annotation rows exist but hold no usable value (NaN or out of range)")
DUPLICATE_ANNOTATION = _code(
    "duplicate-annotation",
    "annotation rows for one song id disagree in every kind (static and dynamic), so nothing usable is left")
DUPLICATE_AUDIO = _code(
    "duplicate-audio",
    "several audio files map to one song id (e.g. 8.mp3 and 008.mp3)")
BAD_SONG_ID = _code(
    "bad-song-id",
    "file in MEMD_audio/ (DEAM) or chorus/ (PMEmo) whose name is not <integer song id>.mp3")

# --- any stage that opens audio
UNREADABLE_AUDIO = _code(
    "unreadable-audio",
    "file (or zip member) cannot be opened or decoded as audio")
EMPTY_AUDIO = _code(
    "empty-audio",
    "file is 0 bytes or holds no audio frames")
TRUNCATED_AUDIO = _code(
    "truncated-audio",
    "decoding stops well before the length the file's header announces")
ABSURD_SAMPLE_RATE = _code(
    "absurd-sample-rate",
    "the audio header announces a rate outside 1 kHz-768 kHz (corrupt or hand-made; never resampled)")
SHORT_AUDIO = _code(
    "short-audio",
    "a chunk file shorter than the span it should hold")
WRONG_SAMPLE_RATE = _code(
    "wrong-sample-rate",
    "a chunk file at another rate than the transform's (riffusion needs 44.1 kHz)")
NON_FINITE_AUDIO = _code(
    "non-finite-audio",
    "audio samples that are NaN or infinite")

# --- clips / chunks
MISSING_STATIC = _code(
    "missing-static",
    "no usable static valence/arousal for a 46 s clip")
LONGER_THAN_TARGET = _code(
    "longer-than-target",
    "song longer than the clip length (46.0 s) and policy = 'pad'")
MISSING_DYNAMIC = _code(
    "missing-dynamic",
    "no dynamic frame with both valence and arousal for a song to chunk (absent, or conflicting rows "
    "blanked at ingest)")
TOO_SHORT = _code(
    "too-short",
    "song shorter than start_s + pad_tail_min_s (15 + 4.5 s): it yields no chunk")
UNDER_ANNOTATED = _code(
    "under-annotated",
    "chunk with fewer than min_frames (8 of 10) dynamic frames that have both valence and arousal")
SHORT_TAIL = _code(
    "short-tail",
    "a song's last chunk holds less audio than pad_tail_min_s (4.5 s by default), so it is not padded "
    "but dropped (the thesis's '56 chunks shorter than 5 s')")

# --- FoodPics ingest / images
MISSING_RATING = _code(
    "missing-rating",
    "an image file whose number has no row in the ratings sheet")
NON_FOOD = _code(
    "non-food",
    "category column says non-food (or number >= 1000 when there is no category column)")
INCOMPLETE_VA = _code(
    "incomplete-va",
    "fewer than min_groups rater groups with both valence and arousal")
MISSING_IMAGE = _code(
    "missing-image",
    "a ratings row (or manifest row) whose image file is not there")
IMAGE_TOO_LARGE = _code(
    "image-too-large",
    "more pixels than max_pixels (decompression-bomb guard); never decoded")
UNDECODABLE_IMAGE = _code(
    "undecodable-image",
    "Pillow cannot identify, verify or fully decode the image (corrupt, truncated)")
BAD_ID = _code(
    "bad-id",
    "a sheet row whose Image_No is empty or not a whole number; a generic table id that is empty or has "
    "'/', '\\', ':' or control characters")
UNMATCHED_FILE = _code(
    "unmatched-file",
    "an image file whose name is not a number")
SOURCE_CHANGED = _code(
    "source-changed",
    "the file's bytes differ from the content hash the ingest recorded")
UNSUPPORTED_MODE = _code(
    "unsupported-mode",
    "an image mode that cannot be converted to RGB (e.g. LAB without ICC)")

# --- labels / split
MISSING_VA = _code(
    "missing-va",
    "valence or arousal is missing, NaN or not a number")
VA_OUT_OF_RANGE = _code(
    "va-out-of-range",
    "a raw VA value outside the declared scale (labels.method = 'fixed'; generic.scale)")
MISSING_SOURCE_ID = _code(
    "missing-source-id",
    "a labelled row without source_id, so it cannot be grouped by song")

# --- salient / features / pairs (seed recipes)
SILENT_AUDIO = _code(
    "silent-audio",
    "every decoded sample is 0: a broken or placeholder file (no song, no salient segment)")
SHORTER_THAN_WINDOW = _code(
    "shorter-than-window",
    "audio shorter than the stage's analysis window (salient with short_policy = 'reject'; features: one n_fft frame)")
NON_FINITE_FEATURES = _code(
    "non-finite-features",
    "a librosa feature came out NaN or infinite for this clip")
MISSING_LABEL = _code(
    "missing-label",
    "an item to pair has no value in the pairing label column")
NO_IMAGE_FOR_LABEL = _code(
    "no-image-for-label",
    "no image with the audio item's label (in its split, with image_pool = 'same-split') to pair it with")
CLASS_BALANCE = _code(
    "class-balance",
    "an audio item left unpaired so that every label has as many pairs as the smallest label in its split "
    "(pairs.balance = 'undersample')")

# --- tokens
UNLABELLED = _code(
    "unlabelled",
    "an input with no label/split row (rejected or filtered upstream)")
NO_IMAGE = _code(
    "no-image",
    "a split-manifest (labelled) id that no image-producing stage produced (rejected or dropped there)")
MODALITY_MISMATCH = _code(
    "modality-mismatch",
    "the input's modality flag disagrees with its source")
BAD_PATH = _code(
    "bad-path",
    "the manifest path is missing or leaves the output root")
BAD_IMAGE_SIZE = _code(
    "bad-image-size",
    "the image is not the tokenizer's input size (224 x 224)")
BAD_IMAGE_MODE = _code(
    "bad-image-mode",
    "the image is neither 8-bit gray nor RGB")
MISSING_FILE = _code(
    "missing-file",
    "the input file named by the manifest does not exist")
UNREADABLE_IMAGE = _code(
    "unreadable-image",
    "the 224-px PNG cannot be decoded")
NON_FINITE_TOKENS = _code(
    "non-finite-tokens",
    "the model produced NaN or infinite values for this input")
NO_INPUT = _code(
    "no-input",
    "a split-manifest (labelled) id that no input stage of a tokens stage with an audio tokenizer produced")
BAD_AUDIO_LENGTH = _code(
    "bad-audio-length",
    "an audio clip that is not the audio tokenizer's exact length (EnCodec: 46.0 s clips)")
