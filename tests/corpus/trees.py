"""Small, valid dataset trees that the corpus kinds are injected into, and the recipe each
tree runs.

A tree is a model (files and annotation rows) that kinds mutate, then `write()` turns into
files under `root`, in the real layout of its dataset (SPEC §3): DEAM's `MEMD_audio/` and
annotation CSVs, PMEmo's `chorus/` and `annotations/`, a FoodPics folder with a ratings
sheet (CSV export), a generic `id,path,valence,arousal,label` table. `outside` is a folder
next to the root (never inside it) that symlinks and `..` paths point into.

Every tree starts with a few good items (`good`: (stage, sample id) pairs that must reach
the last stages of its recipe whatever the kinds do to their neighbours) and names its
stages' consumers (`consumers`), so a test can tell where a rejected id must not reappear.
Audio is ~20 s at 22.05 kHz and pictures are 64 x 48 px, so the whole corpus runs in seconds.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from emoprep.pipeline.atomic import atomic_write_bytes
from emoprep.stages.demo import foodpics as demo_foodpics
from emoprep.stages.demo.deam_files import DYNAMIC_DIR, SONG_LEVEL, STATIC_1, STATIC_HEADER
from emoprep.stages.demo.pmemo import METADATA_HEADER
from emoprep.stages.demo.tables import csv_bytes, fmt
from emoprep.stages.foodpics.params import THESIS_AROUSAL, THESIS_VALENCE
from tests.corpus import Kind, media


# ---------------------------------------------------------------- shared -----------
def write_csv(path: Path, lines: list[str], eol: str = "lf", bom: bool = False) -> None:
    """Lines with the given line endings ('mixed' cycles CRLF, LF, CR), after a BOM if `bom`."""
    atomic_write_bytes(path, csv_bytes(lines, eol=eol, bom=bom))


class Tree:
    """Files (relative path -> bytes), symlinks (relative path -> target) and good ids."""

    dataset = ""
    recipe = ""                                 # TOML text
    # (stage, reason) of rejects the tree's own shape makes, whatever the kinds do
    routine_rejects: ClassVar[frozenset[tuple[str, str]]] = frozenset()
    consumers: ClassVar[dict[str, tuple[str, ...]]] = {}   # stage -> the recipe's stages that read it

    def __init__(self, root: Path, outside: Path):
        self.root, self.outside = Path(root), Path(outside)
        self.files: dict[str, bytes] = {}
        self.raw_names: dict[bytes, bytes] = {}   # non-UTF-8 file names (os.fsencode paths)
        self.symlinks: dict[str, Path] = {}
        self.good: list[tuple[str, str]] = []   # (last stage, sample id) of the good items
        self.used: set[Any] = set()

    def claim(self, key: Any) -> None:
        """Kinds use disjoint ids; a clash is a corpus bug, not a pipeline one."""
        if key in self.used:
            raise ValueError(f"{self.dataset}: id {key!r} used by two corpus kinds")
        self.used.add(key)

    def put(self, rel: str, data: bytes) -> None:
        self._new_path(rel)
        self.files[rel] = data

    def put_raw(self, rel: bytes, data: bytes) -> None:
        """A file whose name is given as bytes (e.g. not valid UTF-8)."""
        self._new_path(rel)
        self.raw_names[rel] = data

    def link(self, rel: str, target: Path) -> None:
        self._new_path(rel)
        self.symlinks[rel] = Path(target)

    def _new_path(self, rel: str | bytes) -> None:
        if rel in self.files or rel in self.raw_names or rel in self.symlinks:
            raise ValueError(f"{self.dataset}: two corpus kinds write {rel!r}")

    def outside_file(self, name: str, data: bytes) -> Path:
        """A file next to (not inside) the dataset root, for links and `..` paths."""
        path = self.outside / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def write_files(self) -> None:
        for rel, data in sorted(self.files.items()):
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        for raw_rel, raw_data in sorted(self.raw_names.items()):
            raw_path = os.path.join(os.fsencode(self.root), raw_rel)
            os.makedirs(os.path.dirname(raw_path), exist_ok=True)
            with open(raw_path, "wb") as fh:
                fh.write(raw_data)
        for rel, target in sorted(self.symlinks.items()):
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)

    def write(self) -> None:
        raise NotImplementedError

    def downstream(self, stage: str) -> set[str]:
        """Every stage that reads `stage`'s output, directly or not."""
        out: set[str] = set()
        todo = list(self.consumers.get(stage, ()))
        while todo:
            s = todo.pop()
            if s not in out:
                out.add(s)
                todo += self.consumers.get(s, ())
        return out


# ---------------------------------------------------------------- DEAM -------------
DEAM_STATIC = f"{SONG_LEVEL}/{STATIC_1}"
DEAM_SECONDS = 20.5          # one full 5 s chunk from 15 s (the 0.5 s tail is dropped)
DEAM_FRAMES = 11             # 2 Hz from 15.0 s while inside the audio: 15.0 … 20.0 s


class DeamTree(Tree):
    """DEAM layout: MEMD_audio/<id>.mp3, the 1–2000 static CSV, valence/arousal.csv."""

    dataset = "deam"
    consumers: ClassVar[dict[str, tuple[str, ...]]] = {"deam": ("chunks", "clips"), "chunks": ("spectrogram",)}
    # every 20.5 s song ends in a 0.5 s tail: a `short-tail` reject of its chunk 1
    routine_rejects: ClassVar[frozenset[tuple[str, str]]] = frozenset({("chunks", "short-tail")})
    recipe = """
[recipe]
name = "corpus-deam"
targets = ["spectrogram", "clips"]

[deam]
static_fix = "none"

[chunks]
sample_rate = 44100

[clips]
target_s = 46.0
"""

    def __init__(self, root: Path, outside: Path):
        super().__init__(root, outside)
        self.static_header = STATIC_HEADER.split(", ")
        self.static_rows: list[dict[str, str]] = []
        self.dynamic_rows: dict[str, list[list[str]]] = {"valence": [], "arousal": []}
        self.static_eol, self.static_bom = "crlf", False
        self.dynamic_eol, self.dynamic_bom = "lf", False
        for sid in (1001, 1002, 1003):
            self.add_song(sid)
            self.good += [("clips", f"deam:{sid}"), ("spectrogram", f"deam:{sid}:0")]

    # -- building blocks kinds use
    def add_song(self, sid: int, *, audio: bytes | Literal["tone"] | None = "tone",
                 static: dict[str, str] | Literal["default"] | None = "default",
                 dynamic: tuple[list[str], list[str]] | Literal["default"] | None = "default") -> None:
        """A song: MP3 tone (or the bytes given, or none), a static row (or cells, or none),
        dynamic rows (or (valence cells, arousal cells), or none)."""
        self.claim(sid)
        v, a = 3.0 + (sid % 5), 7.0 - (sid % 4)
        if audio == "tone":
            audio = media.tone_file(DEAM_SECONDS, 220.0 + 40 * (sid % 7))
        if audio is not None:
            self.put(f"MEMD_audio/{sid}.mp3", audio)
        if static == "default":
            static = {"valence_mean": fmt(v), "valence_std": "1.1", "arousal_mean": fmt(a), "arousal_std": "0.9"}
        if static is not None:
            self.static_rows.append({"song_id": str(sid), **static})
        if dynamic == "default":
            dynamic = ([fmt((v - 5) / 4 + 0.01 * k) for k in range(DEAM_FRAMES)],
                       [fmt((a - 5) / 4 - 0.01 * k) for k in range(DEAM_FRAMES)])
        if dynamic is not None:
            self.dynamic_rows["valence"].append([str(sid), *dynamic[0]])
            self.dynamic_rows["arousal"].append([str(sid), *dynamic[1]])

    def write(self) -> None:
        self.write_files()
        head = ", ".join(self.static_header)  # DEAM's header: a space after every comma
        lines = [head] + [",".join(r.get(c, "") for c in self.static_header) for r in self.static_rows]
        write_csv(self.root / DEAM_STATIC, lines, self.static_eol, self.static_bom)
        header = "song_id," + ",".join(f"sample_{15000 + 500 * k}ms" for k in range(DEAM_FRAMES))
        for dim, rows in self.dynamic_rows.items():
            write_csv(self.root / DYNAMIC_DIR / f"{dim}.csv", [header] + [",".join(r) for r in rows],
                      self.dynamic_eol, self.dynamic_bom)


# ---------------------------------------------------------------- PMEmo ------------
PMEMO_SECONDS = 8.0


class PmemoTree(Tree):
    """PMEmo layout: chorus/<id>.mp3, annotations/static + dynamic CSVs, metadata.csv."""

    dataset = "pmemo"
    consumers: ClassVar[dict[str, tuple[str, ...]]] = {"pmemo": ("salient",)}
    recipe = """
[recipe]
name = "corpus-pmemo"
targets = ["salient"]

[salient]
sources = ["pmemo"]
window_s = 5.0
hop_s = 1.0
"""

    def __init__(self, root: Path, outside: Path):
        super().__init__(root, outside)
        self.static_header = ["musicId", "Arousal(mean)", "Valence(mean)"]
        self.static_rows: list[dict[str, str]] = []
        self.dynamic_rows: list[list[str]] = []
        self.metadata_lines: list[str] = []
        self.static_eol, self.static_bom = "lf", False
        self.dynamic_eol = "lf"
        for sid in (1, 2, 3):
            self.add_song(sid)
            self.good.append(("salient", f"pmemo:{sid}"))

    def add_song(self, sid: int, *, audio: bytes | Literal["tone"] | None = "tone",
                 static: dict[str, str] | Literal["default"] | None = "default",
                 dynamic: bool = True, metadata: str | None = None) -> None:
        self.claim(sid)
        v, a = 0.2 + 0.1 * (sid % 6), 0.8 - 0.1 * (sid % 5)
        if audio == "tone":
            audio = media.tone_file(PMEMO_SECONDS, 300.0 + 30 * (sid % 9))
        if audio is not None:
            self.put(f"chorus/{sid}.mp3", audio)
        if static == "default":
            static = {"Arousal(mean)": fmt(a), "Valence(mean)": fmt(v)}
        if static is not None:
            self.static_rows.append({"musicId": str(sid), **static})
        if dynamic:
            self.dynamic_rows += [[str(sid), fmt(15.0 + 0.5 * k), fmt(a), fmt(v)] for k in range(3)]
        self.metadata_lines.append(metadata or f"{sid},{sid}.mp3,Title {sid},Artist {sid},Album {sid},200,40,70")

    def write(self) -> None:
        self.write_files()
        lines = [",".join(self.static_header)] + [",".join(r.get(c, "") for c in self.static_header)
                                                  for r in self.static_rows]
        write_csv(self.root / "annotations/static_annotations.csv", lines, self.static_eol, self.static_bom)
        write_csv(self.root / "annotations/dynamic_annotations.csv",
                  ["musicId,frameTime,Arousal(mean),Valence(mean)"] + [",".join(r) for r in self.dynamic_rows],
                  self.dynamic_eol)
        write_csv(self.root / "metadata.csv",
                  [METADATA_HEADER, *self.metadata_lines])


# ---------------------------------------------------------------- FoodPics ---------
FOODPICS_VALENCE = THESIS_VALENCE
FOODPICS_SHEET = "FoodPics_ratings.csv"


class FoodPicsTree(Tree):
    """One folder: numbered pictures and a ratings CSV export (comment rows above the
    `Image_No` header, `;` separators, decimal commas, as spreadsheets write it)."""

    dataset = "foodpics"
    consumers: ClassVar[dict[str, tuple[str, ...]]] = {"foodpics": ("images",)}
    recipe = """
[recipe]
name = "corpus-foodpics"
targets = ["images"]

[images]
size = 224
fit = "stretch"
"""

    def __init__(self, root: Path, outside: Path):
        super().__init__(root, outside)
        self.header = list(demo_foodpics.HEADER)
        self.rows: list[dict[str, str]] = []
        self.eol, self.bom = "crlf", False
        for n in (1, 2, 3, 4):
            self.add_image(n)
            self.good.append(("images", f"foodpics:{n}"))

    def add_image(self, n: int, *, data: bytes | Literal["jpeg"] | None = "jpeg", name: str | None = None,
                  rating: dict[str, str] | Literal["default"] | None = "default") -> None:
        """Picture `name` (default 000n.jpg) and its ratings row (or cells, or none)."""
        self.claim(n)
        if data == "jpeg":
            data = media.jpeg((40 * (n % 6), 120, 200 - 10 * (n % 9)))
        if data is not None:
            self.put(name or f"{n:04d}.jpg", data)
        if rating == "default":
            rating = self.rating(n)
        if rating is not None:
            self.rows.append({"Image_No": str(n), **rating})

    @staticmethod
    def rating(n: int) -> dict[str, str]:
        """A complete food row: four rater groups, decimal commas."""
        cells = {"item": f"dish {n}", "type": "Sweets", "taste": "sweet", "processing": "processed"}
        for k, (vc, ac) in enumerate(zip(THESIS_VALENCE, THESIS_AROUSAL, strict=True)):
            cells[vc] = f"{60 + n % 9 + k},5".replace(".", ",")
            cells[ac] = f"{40 + n % 7 + k},25"
        return cells

    def write(self) -> None:
        self.write_files()
        demo_foodpics.write_foodpics_ratings_csv(  # the demo's comment rows, then the header
            self.root / FOODPICS_SHEET, [[r.get(c, "") for c in self.header] for r in self.rows],
            header=self.header, bom=self.bom, newline=self.eol)


# ---------------------------------------------------------------- generic ----------
class GenericTree(Tree):
    """A folder with `table.csv` (`id,path,valence,arousal,label`, VA on 1–9) and the files."""

    modality = "image"
    dataset = "generic-image"
    last_stage = "images"
    consumers: ClassVar[dict[str, tuple[str, ...]]] = {"generic": ("images",)}

    def __init__(self, root: Path, outside: Path):
        super().__init__(root, outside)
        self.header = ["id", "path", "valence", "arousal", "label"]
        self.rows: list[list[str]] = []
        self.extra_columns: dict[str, str] = {}   # name -> value, written after `path`
        self.eol, self.bom = "lf", False
        for i, item in enumerate(("a", "b", "c")):
            self.add_item(item, f"files/{item}{self.ext}", self.good_file(i))
            self.good.append((self.last_stage, f"corpus:{item}"))

    ext = ".png"

    def good_file(self, i: int) -> bytes:
        return media.png((60 * i, 200 - 50 * i, 90))

    def add_item(self, item_id: str, path: str | None, data: bytes | None, *, va: tuple[str, str] = ("6", "4"),
                 label: str = "calm", cells: list[str] | None = None) -> None:
        """A table row (id, path, VA, label, or the raw `cells`) and the file at `path`."""
        self.claim(item_id)
        if data is not None and path is not None:
            self.put(path, data)
        self.rows.append(cells if cells is not None else [item_id, path or "", va[0], va[1], label])

    def write(self) -> None:
        self.write_files()
        extra_names, extra_cells = list(self.extra_columns), list(self.extra_columns.values())
        lines = [",".join(self.header[:2] + extra_names + self.header[2:])]
        lines += [",".join(r[:2] + extra_cells + r[2:]) for r in self.rows]
        write_csv(self.root / "table.csv", lines, self.eol, self.bom)

    recipe = """
[recipe]
name = "corpus-generic-image"
targets = ["images"]

[generic]
dataset_name = "corpus"
modality = "image"
scale = [1.0, 9.0]

[images]
dataset = "generic"
"""


class GenericAudioTree(GenericTree):
    """The generic table over audio files (WAV, FLAC, MP3), read by `salient`."""

    modality = "audio"
    dataset = "generic-audio"
    ext = ".wav"
    last_stage = "salient"
    consumers: ClassVar[dict[str, tuple[str, ...]]] = {"generic": ("salient",)}

    def good_file(self, i: int) -> bytes:
        return media.tone_file(6.0, 250.0 + 70 * i, "WAV")

    recipe = """
[recipe]
name = "corpus-generic-audio"
targets = ["salient"]

[generic]
dataset_name = "corpus"
modality = "audio"
scale = [1.0, 9.0]

[salient]
sources = ["generic"]
window_s = 5.0
hop_s = 1.0
"""


TREES = {"deam": DeamTree, "pmemo": PmemoTree, "foodpics": FoodPicsTree,
         "generic-image": GenericTree, "generic-audio": GenericAudioTree}


def build(dataset: str, base: Path, kinds: list[Kind]) -> Tree:
    """Write the dataset's tree under `base/data` with every kind in `kinds` injected;
    `base/outside` holds what links and `..` paths point at."""
    tree = TREES[dataset](base / "data", base / "outside")
    tree.outside.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        kind.inject(tree)
    tree.root.mkdir(parents=True, exist_ok=True)
    tree.write()
    return tree
