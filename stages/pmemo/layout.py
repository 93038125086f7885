"""Where the parts of a PMEmo 2019 copy are (SPEC §3.3): `chorus/<musicId>.mp3`, the
annotation CSVs (in `annotations/` or next to `chorus/`) and `metadata.csv`, under the root
given (`--set pmemo.root=…`) or found up to two wrapper folders below `--data-root`. Files
are named by paths relative to the PMEmo root, so manifests are portable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from emoprep.pipeline.errors import ConfigError
from emoprep.stages.common.dataset_files import visible_subdirs
from emoprep.stages.common.naming import is_utf8_name, printable_name

AUDIO_DIR = "chorus"
STATIC_FILE = "static_annotations.csv"
STATIC_STD_FILE = "static_annotations_std.csv"
DYNAMIC_FILE = "dynamic_annotations.csv"
METADATA_FILE = "metadata.csv"
LAYOUT_HELP = ("expected the PMEmo 2019 layout in SPEC §3.3: chorus/<musicId>.mp3, "
               "annotations/static_annotations.csv and/or annotations/dynamic_annotations.csv, "
               "metadata.csv")


@dataclass
class PmemoLayout:
    """The parts of a PMEmo copy, as paths relative to `root` (None when absent)."""

    root: Path
    audio: list[str]
    ignored: list[str]
    static: str | None
    static_std: str | None
    dynamic: str | None
    metadata: str | None
    # files in chorus/ whose names are not UTF-8, \xNN-escaped: rejected by name, never read
    undecodable: list[str] = field(default_factory=list)

    @property
    def has_annotations(self) -> bool:
        return self.static is not None or self.dynamic is not None

    def files(self) -> list[str]:
        return sorted({*self.audio, *(f for f in (self.static, self.static_std, self.dynamic,
                                                    self.metadata) if f)})


def _find(root: Path, name: str) -> str | None:
    for rel in (f"annotations/{name}", name):
        if (root / rel).is_file():
            return rel
    return None


def find_layout(root: Path) -> PmemoLayout | None:
    """The PMEmo files directly under `root`, or None without a `chorus/` folder."""
    adir = Path(root) / AUDIO_DIR
    if not adir.is_dir():
        return None
    audio: list[str] = []
    ignored: list[str] = []
    undecodable: list[str] = []
    for p in sorted(adir.iterdir(), key=lambda p: p.name):
        if not p.is_file() or p.name.startswith((".", "~")):
            continue
        if not is_utf8_name(p.name):
            undecodable.append(f"{AUDIO_DIR}/{printable_name(p.name)}")
            continue
        (audio if p.suffix.lower() == ".mp3" else ignored).append(f"{AUDIO_DIR}/{p.name}")
    return PmemoLayout(Path(root), audio, ignored, _find(root, STATIC_FILE), _find(root, STATIC_STD_FILE),
                       _find(root, DYNAMIC_FILE), METADATA_FILE if (Path(root) / METADATA_FILE).is_file() else None,
                       undecodable)


def locate_pmemo_root(root_param: str, data_root: Path | None) -> Path:
    """`root_param` if set, else the one folder holding `chorus/` at most two levels below
    `data_root`. Raises ConfigError naming the folder and the expected layout."""
    if root_param:
        root = Path(root_param).expanduser()
        layout = find_layout(root) if root.is_dir() else None
        if layout is None:
            raise ConfigError(f"pmemo.root={root}: no {AUDIO_DIR}/ folder there; {LAYOUT_HELP}")
        if not layout.has_annotations:
            raise ConfigError(f"pmemo.root={root}: no annotations/{STATIC_FILE} or annotations/"
                              f"{DYNAMIC_FILE}; {LAYOUT_HELP}")
        return root
    if data_root is None:
        raise ConfigError(f"PMEmo needs --data-root DIR or --set pmemo.root=DIR; {LAYOUT_HELP}")
    data_root = Path(data_root).expanduser()
    if not data_root.is_dir():
        raise ConfigError(f"--data-root {data_root}: not a folder")
    levels = [[data_root], visible_subdirs(data_root)]
    levels.append([d for p in levels[1] for d in visible_subdirs(p)])
    for level in levels:
        found = [d for d in level if find_layout(d) is not None]
        if len(found) > 1:
            raise ConfigError(f"several PMEmo folders under {data_root}: {[str(d) for d in found]}; "
                              "choose one with --set pmemo.root=DIR")
        if found:
            return locate_pmemo_root(str(found[0]), None)
    raise ConfigError(f"no {AUDIO_DIR}/ folder under {data_root}: {LAYOUT_HELP}")


def audio_music_id(ref: str) -> int | None:
    """`chorus/12.mp3` → 12; None when the stem is not a number."""
    stem = PurePosixPath(ref).name.rsplit(".", 1)[0]
    # ASCII digits only: str.isdigit() accepts '²', which int() refuses
    return int(stem) if stem.isascii() and stem.isdigit() else None

