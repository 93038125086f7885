"""Reading one shard's input files in DataLoader workers: the map-style dataset over the files,
the collate step that stacks a batch and sets the rejects aside, and the PNG decoder of the
ViT tokenizers (EnCodec's clip loader is `encodec.load_clip`).

A loader returns (array or None, (reason, detail) or None, SHA-256 of the bytes it decoded);
a file that cannot be read has the digest `MISSING` or `UNREADABLE` instead, which still keys
the shard object (its record holds the reject), so a file that appears later changes the key.
Everything here is module-level and picklable (DataLoader workers import it by name).
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

from emoprep.manifests.reasons import BAD_IMAGE_MODE, BAD_IMAGE_SIZE, MISSING_FILE, UNREADABLE_IMAGE
from emoprep.pipeline.lazy import np
from emoprep.pipeline.reasons import ReasonCode

# Digests of inputs that cannot be read.
MISSING, UNREADABLE = "missing", "unreadable"

# What a loader gives for one file: (decoded array | None, (reason, detail) | None, digest).
Decoded: TypeAlias = "tuple[np.ndarray | None, tuple[ReasonCode, str] | None, str]"


def read_input(path: Path, unreadable: ReasonCode) -> tuple[bytes | None, Decoded]:
    """The bytes of one input file, or None and the reject a loader returns for it (the file
    is missing, or cannot be read: `unreadable`). The Decoded of a readable file carries its
    SHA-256 and no reject yet."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None, (None, (MISSING_FILE, "file not found"), MISSING)
    except OSError as exc:
        return None, (None, (unreadable, f"cannot read ({exc.strerror or type(exc).__name__})"), UNREADABLE)
    return data, (None, None, hashlib.sha256(data).hexdigest())


def decode_image(path: Path, size: int) -> Decoded:
    """A 224-px PNG → (uint8 [H, W] gray or [H, W, 3] RGB, None, SHA-256 of the bytes decoded),
    or (None, (reason, detail), digest) for a reject. `detail` names no path (the caller
    prefixes the manifest path). The size is checked from the header before pixels are
    decoded, so a huge file is refused without being decompressed."""
    from PIL import Image, UnidentifiedImageError

    data, unread = read_input(path, UNREADABLE_IMAGE)
    if data is None:
        return unread
    sha = unread[2]
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size != (size, size):
                return None, (BAD_IMAGE_SIZE, f"{im.size[0]}x{im.size[1]} px, expected {size}x{size}"), sha
            if im.mode not in ("L", "RGB"):
                return None, (BAD_IMAGE_MODE, f"mode {im.mode}, expected L (spectrogram) or RGB (image)"), sha
            return np.asarray(im), None, sha
    except UnidentifiedImageError:
        return None, (UNREADABLE_IMAGE, "cannot decode (not an image format Pillow knows)"), sha
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return None, (UNREADABLE_IMAGE, f"cannot decode ({exc})"), sha


# One decoded input as the dataset hands it to the collate step: (position, *Decoded).
Item: TypeAlias = "tuple[int, np.ndarray | None, tuple[ReasonCode, str] | None, str]"
# A collated batch: (kept positions, model input, [(position, reason, detail)], [(position, sha256)]).
Batch = tuple[list[int], Any, list[tuple[int, ReasonCode, str]], list[tuple[int, str]]]


class InputShard:
    """Map-style dataset over one shard's inputs (DataLoader needs only these two): files, or
    whatever else the family's loader takes (EnCodec: views of songs)."""

    def __init__(self, paths: list[Any], load: Callable[..., Decoded], args: list[tuple[Any, ...]]):
        self.paths, self.load, self.args = paths, load, args

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Item:
        arr, err, sha = self.load(self.paths[i], *self.args[i])
        return i, arr, err, sha


def _decoded(array: np.ndarray | None) -> np.ndarray:
    """The array of an input its loader reported no reject for (a loader gives one or the other)."""
    if array is None:
        raise ValueError("a loader returned neither an array nor a reject reason")
    return array


def collate_inputs(prepare: Callable[[list[np.ndarray]], Any], batch: list[Item]) -> Batch:
    """One batch of decoded inputs → (kept positions, model input, [(position, reason, detail)],
    [(position, sha256)])."""
    ok = [(i, a) for i, a, e, _s in batch if e is None]
    errors = [(i, *e) for i, _a, e, _s in batch if e is not None]
    inputs = prepare([_decoded(a) for _i, a in ok]) if ok else None
    return [i for i, _a in ok], inputs, errors, [(i, s) for i, _a, _e, s in batch]
