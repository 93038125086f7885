"""CONTRIBUTING.md's layout section names every package folder and module, so it cannot drift
from the tree unnoticed."""
from __future__ import annotations

import re

from tests.helpers.paths import REPO


def _layout_block() -> str:
    text = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def test_layout_section_names_every_folder_and_module() -> None:
    block = _layout_block()
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", block))
    missing = []
    for top in ("api", "pipeline", "stages", "manifests"):
        missing += [path.relative_to(REPO).as_posix() for path in sorted((REPO / top).rglob("*.py"))
                    if path.name != "__init__.py" and "__pycache__" not in path.parts and path.stem not in words]
        for folder in sorted(p for p in (REPO / top).rglob("*") if p.is_dir() and p.name != "__pycache__"):
            if f"{folder.name}/" not in block:
                missing.append(folder.relative_to(REPO).as_posix() + "/")
    assert missing == []
