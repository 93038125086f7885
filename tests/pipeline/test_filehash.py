"""The stat-keyed cache of raw-file facts: content hashes and `probe` results are reused while
a file's stat is unchanged, recomputed when it changes, and survive in the cache file."""
from __future__ import annotations

import os

from emoprep.pipeline.filehash import FileHasher, hash_file


def test_hashes_and_probes_are_remembered_until_the_file_changes(tmp_path):
    data = tmp_path / "sheet.csv"
    data.write_text("Image;Valence\n1;5\n")
    cache = tmp_path / "cache.json"
    calls: list[str] = []

    def look() -> str:
        calls.append("look")
        return "yes" if "Image" in data.read_text() else "no"

    hasher = FileHasher(cache)
    assert hasher.hash(data) == hash_file(data)
    assert hasher.probe(data, "has-image", look) == "yes" and hasher.probe(data, "has-image", look) == "yes"
    assert calls == ["look"]
    assert hasher.probe(data, "other-fact", lambda: "x") == "x"  # facts are kept apart by tag
    hasher.save()

    again = FileHasher(cache)  # a later run: answered from the cache file, no look at the file
    assert again.probe(data, "has-image", look) == "yes" and calls == ["look"]
    data.write_text("Bild;Valence\n1;5\n")
    os.utime(data, ns=(1, 1))  # another size and time: the file changed
    assert again.probe(data, "has-image", look) == "no" and calls == ["look", "look"]
    assert again.hash(data) == hash_file(data)
