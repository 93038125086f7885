"""Finding a DEAM copy: plain folders, wrapper folders, split downloads, the official zips
read in place (checksums, damage), and audio folders linked to another disk."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from emoprep.pipeline.errors import ConfigError
from emoprep.stages.common.audio_io import LINKABLE_AUDIO_DIRS
from emoprep.stages.deam.layout import AUDIO_DIR, OFFICIAL_ZIPS, check_zip, find_layout, locate_deam_root
from emoprep.stages.demo.deam_files import SONG_LEVEL, STATIC_1
from emoprep.stages.pmemo.layout import AUDIO_DIR as PMEMO_AUDIO_DIR
from tests.helpers.deam import ingest, mini_tree, mp3, write_csv


def test_audio_folder_symlinked_to_another_disk_is_read_but_file_links_may_not_leave_it(tmp_path):
    """`MEMD_audio` itself may be a symlink (the audio lives elsewhere); a file link inside
    it that leads out of both the root and that folder is still `path-outside-root`."""
    assert {AUDIO_DIR, PMEMO_AUDIO_DIR} == LINKABLE_AUDIO_DIRS
    root = mini_tree(tmp_path / "root", ids=(2, 3, 4))
    elsewhere = tmp_path / "disk2" / "MEMD_audio"
    elsewhere.parent.mkdir()
    (root / "MEMD_audio").rename(elsewhere)
    (root / "MEMD_audio").symlink_to(elsewhere, target_is_directory=True)
    mp3(tmp_path / "secret" / "x.mp3", seconds=1.0)
    (elsewhere / "4.mp3").unlink()
    (elsewhere / "4.mp3").symlink_to(tmp_path / "secret" / "x.mp3")
    run = ingest(root, tmp_path / "out")
    assert sorted(run.rows["sample_id"]) == ["deam:2", "deam:3"]
    assert [(r.sample_id, r.reason) for r in run.rejects] == [("deam:4", "path-outside-root")]


def test_locate_root_plain_wrapper_and_split_wrappers(tmp_path):
    plain = mini_tree(tmp_path / "a")
    assert locate_deam_root("", plain) == plain
    wrapped = tmp_path / "b"
    mini_tree(wrapped / "DEAM")
    assert locate_deam_root("", wrapped) == wrapped / "DEAM"
    # Kaggle-style: each download unpacked into its own folder
    split = tmp_path / "c"
    mini_tree(split / "DEAM_audio", annotations=False)
    write_csv(split / "DEAM_Annotations", f"{SONG_LEVEL}/{STATIC_1}",
              "song_id, valence_mean, valence_std, arousal_mean, arousal_std\n2,5,1,5,1\n")
    assert locate_deam_root("", split) == split
    layout = find_layout(split)
    assert layout is not None and layout.audio == ["DEAM_audio/MEMD_audio/2.mp3", "DEAM_audio/MEMD_audio/3.mp3"]
    assert locate_deam_root(str(plain), None) == plain


def test_locate_root_errors_name_the_folder_and_the_layout(tmp_path):
    with pytest.raises(ConfigError, match=r"no MEMD_audio/ under .*expected the DEAM layout in SPEC §3\.1"):
        locate_deam_root("", tmp_path)
    mini_tree(tmp_path / "x", annotations=False)
    with pytest.raises(ConfigError, match="no annotations"):
        locate_deam_root("", tmp_path)
    with pytest.raises(ConfigError, match="not a folder"):
        locate_deam_root(str(tmp_path / "nope"), None)

def _zip_tree(src: Path, dst: Path, audio_wrapper: str = "") -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for zname, top, wrap in (("DEAM_audio.zip", "MEMD_audio", audio_wrapper),
                             ("DEAM_Annotations.zip", "annotations", ""), ("metadata.zip", "metadata", "")):
        with zipfile.ZipFile(dst / zname, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted((src / top).rglob("*")):
                if p.is_file():
                    zf.write(p, (f"{wrap}/" if wrap else "") + p.relative_to(src).as_posix())
    return dst


@pytest.mark.parametrize("wrapper", ["", "DEAM_audio"])
def test_official_zips_are_read_in_place_with_the_same_result(demo, tmp_path, wrapper):
    root, _ = demo
    zroot = _zip_tree(root, tmp_path / "zips", wrapper)
    assert locate_deam_root("", tmp_path) == zroot
    plain = ingest(root, tmp_path / "o1")
    zipped = ingest(zroot, tmp_path / "o2")
    cols = ["sample_id", "content_hash", "duration_s", "sample_rate", "channels", "static_valence_raw",
            "static_arousal_raw", "static_fixed", "genre"]
    pd.testing.assert_frame_equal(plain.rows[cols], zipped.rows[cols])
    assert plain.reasons() == zipped.reasons()
    assert all(p.startswith("DEAM_audio.zip::") for p in zipped.rows["audio_path"])
    assert not list(zroot.glob("MEMD_audio"))  # nothing was unpacked


def test_zip_checksums_mismatch_is_a_warning_not_an_error(demo, tmp_path, monkeypatch):
    root, _ = demo
    zroot = _zip_tree(root, tmp_path / "zips")
    run = ingest(zroot, tmp_path / "out")
    audit = json.loads((run.ctx.out_dir / "audit.json").read_text())
    checks = {c["file"]: c for c in audit["zip_checks"]}
    assert set(checks) == {"DEAM_audio.zip", "DEAM_Annotations.zip", "metadata.zip"}
    assert not any(c["ok"] for c in checks.values())
    assert len(audit["warnings"]) == 3 and "differs from the official download" in audit["warnings"][0]
    # with the recorded values matching the file, the check passes
    z = zroot / "metadata.zip"
    digest = run.ctx.hasher.hash(z).upper()
    monkeypatch.setitem(OFFICIAL_ZIPS, "metadata.zip", (z.stat().st_size, digest))
    assert check_zip(z, digest)["ok"] is True and "warning" not in check_zip(z, digest)

def test_damaged_zips(demo, tmp_path):
    root, _ = demo
    zroot = _zip_tree(root, tmp_path / "zips")
    (zroot / "metadata.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    run = ingest(zroot, tmp_path / "out")
    audit = json.loads((run.ctx.out_dir / "audit.json").read_text())
    assert any("metadata.zip: not a readable zip" in w for w in audit["warnings"])
    assert run.rows["genre"].isna().all() and len(run.rows) > 0
    (zroot / "DEAM_audio.zip").write_bytes(b"PK\x03\x04 truncated download")
    with pytest.raises(ConfigError, match=r"DEAM_audio\.zip: not a readable zip"):
        locate_deam_root("", zroot)
