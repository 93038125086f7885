"""Hostile names and paths: odd Unicode (NFC vs NFD, emoji, right-to-left, digits that are
not ASCII), spaces, bytes that are not UTF-8, symlinks and `..` / absolute paths that lead
out of the data root, duplicates under two names."""
from __future__ import annotations

import unicodedata

from tests.corpus import Expect, Kind, media
from tests.corpus.run import RunResult
from tests.corpus.trees import (
    DEAM_SECONDS,
    FOODPICS_SHEET,
    PMEMO_SECONDS,
    DeamTree,
    FoodPicsTree,
    GenericTree,
    PmemoTree,
)

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: what follows displays reversed (disguises extensions)


def _deam_file(kind: str, bad: str, name: str, sid_key: str, reason: str, annotate: int | None = None) -> Kind:
    """A file `MEMD_audio/<name>` (optionally an annotated song id too)."""
    def inject(tree: DeamTree) -> None:
        tree.claim(name)
        tree.put(f"MEMD_audio/{name}", media.tone_file(DEAM_SECONDS, 450.0))
        if annotate is not None:
            tree.add_song(annotate, audio=None)

    expects: tuple[Expect, ...] = (Expect("deam", reason, (sid_key,), names=name),)
    if annotate is not None:
        expects += (Expect("deam", "missing-audio", (f"deam:{annotate}",), names=f"MEMD_audio/{annotate}.mp3"),)
    return Kind(kind, "deam", bad, inject, expects)


def _deam_symlink_out(tree: DeamTree) -> None:
    target = tree.outside_file("secret.mp3", media.tone_file(DEAM_SECONDS, 880.0))
    tree.add_song(1306, audio=None)
    tree.link("MEMD_audio/1306.mp3", target)


def _deam_symlink_in(tree: DeamTree) -> None:
    tree.put("elsewhere/1309.mp3", media.tone_file(DEAM_SECONDS, 300.0))
    tree.add_song(1309, audio=None)
    tree.link("MEMD_audio/1309.mp3", tree.root / "elsewhere" / "1309.mp3")


def _deam_two_names(tree: DeamTree) -> None:
    tree.add_song(1307)
    tree.put("MEMD_audio/01307.mp3", media.tone_file(DEAM_SECONDS, 930.0))


def _deam_wav(tree: DeamTree) -> None:
    tree.add_song(1308, audio=None)
    tree.put("MEMD_audio/1308.wav", media.tone_file(DEAM_SECONDS, 450.0, "WAV"))


def _deam_non_utf8(tree: DeamTree) -> None:
    tree.claim("non-utf8")
    tree.put_raw(b"MEMD_audio/\xff\xfe1305.mp3", media.tone_file(DEAM_SECONDS, 450.0))


DEAM = [
    _deam_file("superscript-digit-name", "MEMD_audio/¹³⁰¹.mp3: digits, but not ASCII ones",
               "¹³⁰¹.mp3", "deam:¹³⁰¹.mp3", "bad-song-id"),
    _deam_file("arabic-digit-name", "MEMD_audio/١٣٠٢.mp3 (Arabic-Indic digits for 1302; song 1302 annotated)",
               "١٣٠٢.mp3", "deam:١٣٠٢.mp3", "bad-song-id", annotate=1302),
    _deam_file("emoji-name", "MEMD_audio/🎵 1303.mp3", "🎵 1303.mp3", "deam:🎵 1303.mp3", "bad-song-id"),
    _deam_file("rtl-name", "MEMD_audio/<U+202E>3031.mp3 (a right-to-left override in the name)",
               f"{RLO}3031.mp3", f"deam:{RLO}3031.mp3", "bad-song-id"),
    _deam_file("space-in-name", "MEMD_audio/1304 .mp3 (a space before the extension)", "1304 .mp3",
               "deam:1304 .mp3", "bad-song-id"),
    Kind("non-utf8-name", "deam", "MEMD_audio/<0xFF 0xFE>1305.mp3: a file name that is not UTF-8", _deam_non_utf8,
         (Expect("deam", "bad-song-id", ("deam:\\xff\\xfe1305.mp3",), names="\\xff\\xfe1305.mp3"),)),
    Kind("symlink-out-of-root", "deam", "MEMD_audio/<id>.mp3 is a symlink to an MP3 outside the data root",
         _deam_symlink_out, (Expect("deam", "path-outside-root", ("deam:1306",), names="MEMD_audio/1306.mp3"),)),
    Kind("symlink-inside-root", "deam", "MEMD_audio/<id>.mp3 is a symlink to a file elsewhere in the data root",
         _deam_symlink_in, (Expect("deam", None, ("deam:1309",)), Expect("spectrogram", None, ("deam:1309:0",))),
         handling="followed (stays inside the root); kept"),
    Kind("duplicate-audio", "deam", "MEMD_audio/1307.mp3 and MEMD_audio/01307.mp3 (two files, one id)",
         _deam_two_names, (Expect("deam", "duplicate-audio", ("deam:1307",), names="01307.mp3"),)),
    Kind("wav-instead-of-mp3", "deam", "an annotated song whose only file is MEMD_audio/<id>.wav", _deam_wav,
         (Expect("deam", "missing-audio", ("deam:1308",), names="MEMD_audio/1308.mp3"),),
         handling="the .wav is ignored (listed as a warning in the audit)"),
]


# ---------------------------------------------------------------- PMEmo ------------
def _pmemo_file(kind: str, bad: str, rel: bytes | str, key: str, reason: str, names: str) -> Kind:
    def inject(tree: PmemoTree) -> None:
        tree.claim(rel)
        data = media.tone_file(PMEMO_SECONDS, 660.0)
        if isinstance(rel, bytes):
            tree.put_raw(rel, data)
        else:
            tree.put(rel, data)

    return Kind(kind, "pmemo", bad, inject, (Expect("pmemo", reason, (key,), names=names),))


def _pmemo_symlink_out(tree: PmemoTree) -> None:
    target = tree.outside_file("secret-chorus.mp3", media.tone_file(PMEMO_SECONDS, 990.0))
    tree.add_song(302, audio=None)
    tree.link("chorus/302.mp3", target)


def _pmemo_two_names(tree: PmemoTree) -> None:
    tree.add_song(304)
    tree.put("chorus/0304.mp3", media.tone_file(PMEMO_SECONDS, 770.0))


PMEMO = [
    _pmemo_file("bad-song-id", "chorus/12a.mp3 (name is not a number)", "chorus/12a.mp3", "pmemo:12a.mp3",
                "bad-song-id", "chorus/12a.mp3"),
    _pmemo_file("superscript-digit-name", "chorus/³⁰¹.mp3: digits, but not ASCII ones", "chorus/³⁰¹.mp3",
                "pmemo:³⁰¹.mp3", "bad-song-id", "³⁰¹.mp3"),
    _pmemo_file("non-utf8-name", "chorus/<0xFE>303.mp3: a file name that is not UTF-8", b"chorus/\xfe303.mp3",
                "pmemo:\\xfe303.mp3", "bad-song-id", "\\xfe303.mp3"),
    Kind("symlink-out-of-root", "pmemo", "chorus/<id>.mp3 is a symlink to an MP3 outside the data root",
         _pmemo_symlink_out, (Expect("pmemo", "path-outside-root", ("pmemo:302",), names="chorus/302.mp3"),)),
    Kind("duplicate-audio", "pmemo", "chorus/304.mp3 and chorus/0304.mp3 (two files, one id)", _pmemo_two_names,
         (Expect("pmemo", "duplicate-audio", ("pmemo:304",), names="0304.mp3"),)),
]


# ---------------------------------------------------------------- FoodPics ---------
def _fp_file(kind: str, bad: str, name: str, key: str, reason: str | None, handling: str = "",
             number: int | None = None) -> Kind:
    def inject(tree: FoodPicsTree) -> None:
        if number is None:
            tree.claim(name)
            tree.put(name, media.jpeg((30, 30, 200)))
        else:
            tree.add_image(number, name=name)

    if reason is None:
        return Kind(kind, "foodpics", bad, inject,
                    (Expect("foodpics", None, (key,)), Expect("images", None, (key,))), handling)
    return Kind(kind, "foodpics", bad, inject, (Expect("foodpics", reason, (key,), names=name),))


def _fp_symlink_out(tree: FoodPicsTree) -> None:
    target = tree.outside_file("secret.jpg", media.jpeg((0, 0, 0)))
    tree.add_image(43, data=None)
    tree.link("0043.jpg", target)


def _fp_dir_link_out(tree: FoodPicsTree) -> None:
    tree.outside_file("pics/0044.jpg", media.jpeg((1, 2, 3)))
    tree.add_image(44, data=None)
    tree.link("more", tree.outside / "pics")


def _fp_nfd_folder(tree: FoodPicsTree) -> None:
    folder = unicodedata.normalize("NFD", "Café")
    tree.add_image(42, name=f"{folder}/0042.jpg")


def _fp_nfd_nfc_path(result: RunResult) -> None:
    assert result.row("foodpics", "foodpics:42")["image_path"] == unicodedata.normalize("NFC", "Café/0042.jpg")


def _fp_non_utf8(tree: FoodPicsTree) -> None:
    tree.claim("non-utf8")
    tree.put_raw(b"\xff\xfe.jpg", media.jpeg((5, 5, 5)))


FOODPICS = [
    _fp_file("emoji-name", "a picture named 🍰 cake.jpg", "🍰 cake.jpg", "foodpics:file:🍰 cake.jpg", "unmatched-file"),
    _fp_file("rtl-name", "a picture named עוגה.jpg (Hebrew, right-to-left)", "עוגה.jpg", "foodpics:file:עוגה.jpg",
             "unmatched-file"),
    _fp_file("space-in-name", "a picture named `0041 .jpg`", "0041 .jpg", "foodpics:41", None,
             handling="number read from the stripped name; kept", number=41),
    Kind("nfd-name", "foodpics", "picture in a subfolder named Café in NFD (as macOS unpacks it)", _fp_nfd_folder,
         (Expect("foodpics", None, ("foodpics:42",), check=_fp_nfd_nfc_path), Expect("images", None, ("foodpics:42",))),
         handling="path stored NFC, file found by NFC equality; kept"),
    Kind("symlink-out-of-root", "foodpics", "0043.jpg is a symlink to a picture outside the data root",
         _fp_symlink_out, (Expect("foodpics", "path-outside-root", ("foodpics:file:0043.jpg",), names="0043.jpg"),
                           Expect("foodpics", "missing-image", ("foodpics:43",), names=FOODPICS_SHEET))),
    Kind("symlinked-folder-out-of-root", "foodpics", "subfolder `more/` is a symlink to a folder outside the root",
         _fp_dir_link_out, (Expect("foodpics", "path-outside-root", ("foodpics:file:more/0044.jpg",),
                                   names="more/0044.jpg"),
                            Expect("foodpics", "missing-image", ("foodpics:44",), names=FOODPICS_SHEET))),
    Kind("non-utf8-name", "foodpics", "a picture whose file name is the bytes 0xFF 0xFE (not UTF-8)", _fp_non_utf8,
         (Expect("foodpics", "unmatched-file", ("foodpics:file:\\xff\\xfe.jpg",), names="\\xff\\xfe.jpg"),)),
]


# ---------------------------------------------------------------- generic ----------
def _g_path(kind: str, bad: str, item: str, path: str, reason: str | None, handling: str = "",
            on_disk: str | None = None, dataset: str = "generic-image") -> Kind:
    """A row naming `path`; the file is written at `on_disk` (default: `path`) if inside."""
    def inject(tree: GenericTree) -> None:
        data = tree.good_file(2)
        if on_disk is not None or not (path.startswith("/") or ".." in path):
            tree.put(on_disk or path, data)
        tree.add_item(item, path, None)

    sid = f"corpus:{item}"
    last = "images" if dataset == "generic-image" else "salient"
    if reason is None:
        return Kind(kind, dataset, bad, inject, (Expect("generic", None, (sid,)), Expect(last, None, (sid,))), handling)
    return Kind(kind, dataset, bad, inject, (Expect("generic", reason, (sid,), names="table.csv"),))


def _g_dotdot(tree: GenericTree) -> None:
    tree.outside_file("secret.png", media.png((0, 0, 0)))
    tree.add_item("p1", "../outside/secret.png", None)


def _g_absolute(tree: GenericTree) -> None:
    target = tree.outside_file("secret-abs.png", media.png((0, 0, 0)))
    tree.add_item("p2", str(target), None)


def _g_symlink(tree: GenericTree, item: str = "p3", ext: str = ".png") -> None:
    target = tree.outside_file(f"secret-link{ext}", tree.good_file(0))
    tree.link(f"files/{item}{ext}", target)
    tree.add_item(item, f"files/{item}{ext}", None)


def _nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


GENERIC = [
    Kind("dotdot-path", "generic-image", "path `../outside/secret.png` (leaves the root)", _g_dotdot,
         (Expect("generic", "path-outside-root", ("corpus:p1",), names="table.csv"),)),
    Kind("absolute-path", "generic-image", "an absolute path to a picture outside the root", _g_absolute,
         (Expect("generic", "path-outside-root", ("corpus:p2",), names="table.csv"),)),
    Kind("symlink-out-of-root", "generic-image", "files/p3.png is a symlink to a picture outside the root",
         _g_symlink, (Expect("generic", "path-outside-root", ("corpus:p3",), names="table.csv"),)),
    _g_path("nfd-name", "table names files/Café.png in NFC, the file on disk is NFD", "p4", "files/Café.png",
            None, handling="found by NFC equality; kept", on_disk=_nfd("files/Café.png")),
    _g_path("emoji-name", "file files/🎨 art.png", "p5", "files/🎨 art.png", None, handling="kept"),
    _g_path("rtl-name", "file files/<U+202E>عربي.png (right-to-left text and override)", "p6",
            f"files/{RLO}عربي.png", None, handling="kept"),
    _g_path("spaces-in-name", "file `files/my  picture (1).png`", "p7", "files/my  picture (1).png", None,
            handling="kept"),
    _g_path("windows-separator", "path written `files\\p8.png`", "p8", "files\\p8.png", None,
            handling="`\\` read as `/`; kept", on_disk="files/p8.png"),
]
GENERIC_AUDIO = [
    Kind("symlink-out-of-root", "generic-audio", "files/ln.wav is a symlink to audio outside the root",
         lambda tree: _g_symlink(tree, "ln", ".wav"),
         (Expect("generic", "path-outside-root", ("corpus:ln",), names="table.csv"),)),
]

KINDS = [*DEAM, *PMEMO, *FOODPICS, *GENERIC, *GENERIC_AUDIO]
