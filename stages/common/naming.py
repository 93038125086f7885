"""Names: sample ids as file names, file names as storable text.

`safe_name` is the one rule for a file written per sample: injective (two ids never share a
file) and safe (no `/`, no `..`, nothing a filesystem refuses). `nfc` is the normal form
names are compared and stored in; `printable_name` and `is_utf8_name` deal with names that
are not UTF-8 (Linux allows any bytes).
"""
from __future__ import annotations

import unicodedata
from urllib.parse import quote


def safe_name(sample_id: str) -> str:
    """Injective, filesystem-safe file name for an id: every UTF-8 byte outside
    [A-Za-z0-9_~-] is percent-encoded (so `deam:2:0` → `deam%3A2%3A0`, and `..` or `/` can
    never appear); `urllib.parse.unquote` gives the id back."""
    return quote(str(sample_id), safe="-_").replace(".", "%2E")


def nfc(text: str) -> str:
    """`text` in Unicode normal form C, the form manifests store names in."""
    return unicodedata.normalize("NFC", text)


def printable_name(name: str) -> str:
    """A file name as storable text. Linux allows any bytes in names; Python hands the ones
    that are not UTF-8 over as lone surrogates, which Parquet, JSON and fingerprints cannot
    encode (a run would crash on one such file). They become `\\xNN` escapes here, so the
    file can be named in a reject; the escaped name no longer opens the file."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8_name(name: str) -> bool:
    """Can `name` (as os.listdir gives it) be stored and reopened as it is?"""
    return printable_name(name) == name
