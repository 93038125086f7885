"""Fixtures of the segment-stage tests: the demo DEAM tree ingested once, and a small tree of
broken songs that both `clips` and `chunks` must account for."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from emoprep.stages.demo.deam_files import DYNAMIC_DIR, SONG_LEVEL, STATIC_1
from tests.helpers.deam import ingest, mp3, write_csv


@pytest.fixture(scope="session")
def demo_manifest(demo: tuple[Path, dict[str, Any]],
                  tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], pd.DataFrame]:
    root, truth = demo
    out = tmp_path_factory.mktemp("deam-out")
    return root, truth, ingest(root, out).rows


@pytest.fixture
def broken_tree(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """(root, deam manifest) of six songs, each broken in its own way for clips or chunks."""
    root = tmp_path / "deam"
    audio = root / "MEMD_audio"
    mp3(audio / "2.mp3", seconds=21.0)                      # 1 chunk, 1 s tail dropped
    mp3(audio / "3.mp3", seconds=21.0, silent=True)         # all-zero: broken, rejected
    mp3(audio / "4.mp3", seconds=17.0)                      # too short for a chunk
    mp3(audio / "5.mp3", seconds=30.0, sr=44100)
    data = (audio / "5.mp3").read_bytes()
    (audio / "5.mp3").write_bytes(data[: len(data) // 3])   # truncated after the probe's header
    mp3(audio / "6.mp3", seconds=21.0)                      # no static annotation
    mp3(audio / "7.mp3", seconds=21.0)                      # no dynamic annotation
    write_csv(root, f"{SONG_LEVEL}/{STATIC_1}", "song_id, valence_mean, valence_std, arousal_mean, arousal_std\n"
              + "".join(f"{i},6,1,4,1\n" for i in (2, 3, 4, 5, 7)))
    frames = ",".join(f"sample_{15000 + 500 * i}ms" for i in range(12))
    body = "".join(f"{i}," + ",".join(["0.25"] * 12) + "\n" for i in (2, 3, 4, 5, 6))
    write_csv(root, f"{DYNAMIC_DIR}/valence.csv", f"song_id,{frames}\n{body}")
    write_csv(root, f"{DYNAMIC_DIR}/arousal.csv", f"song_id,{frames}\n{body}")
    deam = ingest(root, tmp_path / "o").rows
    assert set(deam["song_id"]) == {2, 3, 4, 5, 6, 7}
    return root, deam
