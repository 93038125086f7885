"""Finding a PMEmo copy: up to two wrapper folders deep, flattened copies, and the errors
that name the folder and the expected layout."""
from __future__ import annotations

from pathlib import Path

import pytest

from emoprep.pipeline.errors import ConfigError
from emoprep.stages.pmemo.layout import find_layout, locate_pmemo_root


def _touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_root_is_found_up_to_two_wrapper_levels(tmp_path):
    root = tmp_path / "data" / "PMEmo" / "PMEmo2019"
    _touch(root / "chorus" / "1.mp3")
    _touch(root / "annotations" / "static_annotations.csv", "musicId,Arousal(mean),Valence(mean)\n")
    assert locate_pmemo_root("", tmp_path / "data") == root
    assert locate_pmemo_root(str(root), None) == root
    # flattened copies: annotation files next to chorus/
    flat = tmp_path / "flat"
    _touch(flat / "chorus" / "1.mp3")
    _touch(flat / "dynamic_annotations.csv", "musicId,frameTime,Arousal(mean),Valence(mean)\n")
    layout = find_layout(flat)
    assert layout is not None and layout.dynamic == "dynamic_annotations.csv"
    assert locate_pmemo_root("", tmp_path) == flat      # the shallowest level that has one
    with pytest.raises(ConfigError, match="no chorus/ folder"):
        locate_pmemo_root("", tmp_path / "data" / "PMEmo" / "PMEmo2019" / "annotations")
    bare = tmp_path / "bare"
    _touch(bare / "chorus" / "1.mp3")
    with pytest.raises(ConfigError, match="several PMEmo folders"):
        locate_pmemo_root("", tmp_path)
    with pytest.raises(ConfigError, match=r"static_annotations\.csv"):
        locate_pmemo_root(str(bare), None)
