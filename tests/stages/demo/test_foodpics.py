"""The FoodPics demo folder: byte-identical across runs, different for another seed."""
from __future__ import annotations

import hashlib
from pathlib import Path

from emoprep.stages.demo import foodpics as demo


def test_demo_is_byte_identical_across_runs(tmp_path):
    def digests(root: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}
    demo.write_foodpics_demo(tmp_path / "a")
    demo.write_foodpics_demo(tmp_path / "b")
    demo.write_foodpics_ratings_csv(tmp_path / "a" / "r.csv")
    demo.write_foodpics_ratings_csv(tmp_path / "b" / "r.csv")
    a, b = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert a == b and len(a) == 40
    demo.write_foodpics_demo(tmp_path / "c", seed=1)
    assert digests(tmp_path / "c")[demo.SHEET_NAME] != a[demo.SHEET_NAME]
