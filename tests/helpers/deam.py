"""DEAM test material: the demo DEAM tree (once per session), small hand-made trees, and the
`deam` ingest driven in this process. Shared by the deam, segments and demo tests."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emoprep.pipeline.atomic import atomic_write_bytes
from emoprep.stages.demo.deam import write_deam_demo
from emoprep.stages.demo.deam_files import SONG_LEVEL, STATIC_1
from emoprep.stages.demo.media import audio_bytes, tone
from tests.helpers.catalog import stage as get_stage
from tests.helpers.stage_run import StageRun, run_stage


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """(root, truth) of the demo DEAM tree, written once per test session."""
    return demo_tree(tmp_path_factory)


def demo_tree(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.getbasetemp() / "deam-demo-seed0"
    info_file = root.with_name("deam-demo-seed0.json")
    if not info_file.exists():
        info = write_deam_demo(root, seed=0)
        info_file.write_text(json.dumps(info, default=str))
    info = json.loads(info_file.read_text())
    info["songs"] = {int(k): v for k, v in info["songs"].items()}
    return root, info


def ingest(root: Path, out: Path, **params) -> StageRun:
    stage = get_stage("deam")
    return run_stage("deam", out, params=stage.Params(**params), roots={"deam": root})


def mp3(path: Path, seconds: float = 2.0, sr: int = 16000, channels: int = 1, silent: bool = False) -> None:
    """A steady 330 Hz sine (or silence) as MP3."""
    atomic_write_bytes(path, audio_bytes(tone(seconds, 330.0, sr, 0.0 if silent else 0.3, channels, 0.0), sr))


def write_csv(root: Path, rel: str, text: str, newline: str = "\n") -> Path:
    atomic_write_bytes(root / rel, text.replace("\n", newline).encode())
    return root / rel


def mini_tree(root: Path, ids=(2, 3), annotations=True) -> Path:
    """A small DEAM tree: one-second MP3s for `ids` and, with `annotations`, a static CSV."""
    for i in ids:
        mp3(root / "MEMD_audio" / f"{i}.mp3", seconds=1.0)
    if annotations:
        body = "".join(f"{i},5,1,5,1\n" for i in ids)
        write_csv(root, f"{SONG_LEVEL}/{STATIC_1}",
                  "song_id, valence_mean, valence_std, arousal_mean, arousal_std\n" + body)
    return root
