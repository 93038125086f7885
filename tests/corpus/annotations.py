"""Broken annotations and annotation files: NaN / blank / text / out-of-range / duplicate
values, ids on one side only, extra and missing columns, short rows, mixed line endings and
UTF-8 byte-order marks, for DEAM, PMEmo, FoodPics and the generic table."""
from __future__ import annotations

import math
from collections.abc import Callable

from tests.corpus import Expect, Kind
from tests.corpus.run import RunResult
from tests.corpus.trees import (
    DEAM_FRAMES,
    DEAM_STATIC,
    FOODPICS_SHEET,
    FOODPICS_VALENCE,
    DeamTree,
    FoodPicsTree,
    GenericTree,
    PmemoTree,
    Tree,
)

DEAM_STATIC_NAME = DEAM_STATIC.rsplit("/", 1)[1]


def _set(**attrs: object) -> Callable[[Tree], None]:
    """An injector that sets file-level attributes of a tree (line endings, BOM)."""
    def inject(tree: Tree) -> None:
        for name, value in attrs.items():
            assert hasattr(tree, name), name
            tree.claim(("file attribute", name))  # two kinds may not fight over one setting
            setattr(tree, name, value)
    return inject


def _cells(value: str) -> tuple[list[str], list[str]]:
    return [value] * DEAM_FRAMES, [value] * DEAM_FRAMES


def _static(value_v: str, value_a: str) -> dict[str, str]:
    return {"valence_mean": value_v, "valence_std": "1", "arousal_mean": value_a, "arousal_std": "1"}


def _deam_bad(kind: str, bad: str, sid: int, static: dict[str, str], dynamic: tuple[list[str], list[str]],
              reason: str, names: str = DEAM_STATIC_NAME) -> Kind:
    def inject(tree: DeamTree) -> None:
        tree.add_song(sid, static=static, dynamic=dynamic)

    return Kind(kind, "deam", bad, inject, (Expect("deam", reason, (f"deam:{sid}",), names=names),))


def _deam_duplicate(tree: DeamTree) -> None:
    tree.add_song(1205)
    tree.static_rows.append({"song_id": "1205", **_static("2.5", "8.5")})   # disagrees with the first row
    v, a = _cells("0.4")
    tree.dynamic_rows["valence"].append(["1205", *v])
    tree.dynamic_rows["arousal"].append(["1205", *a])


def _deam_identical(tree: DeamTree) -> None:
    tree.add_song(1206)
    tree.static_rows.append(dict(tree.static_rows[-1]))
    for dim in ("valence", "arousal"):
        tree.dynamic_rows[dim].append(list(tree.dynamic_rows[dim][-1]))


def _merged_counted(result: RunResult) -> None:
    assert result.counters("deam").get("duplicate-rows-merged", 0) >= 1


def _deam_under(tree: DeamTree) -> None:
    v = ["0.1"] * 4 + [""] * (DEAM_FRAMES - 4)
    tree.add_song(1208, dynamic=(v, list(v)))


def _deam_static_values_exact(result: RunResult) -> None:
    """Every good song's static values read back exactly as written (no row lost or merged)."""
    for sid in (1001, 1002, 1003):
        row = result.row("deam", f"deam:{sid}")
        assert math.isclose(row["static_valence_raw"], 3.0 + sid % 5), row
        assert math.isclose(row["static_arousal_raw"], 7.0 - sid % 4), row


def _deam_dynamic_complete(result: RunResult) -> None:
    for sid in (1001, 1002, 1003):
        assert result.row("deam", f"deam:{sid}")["dyn_n_frames"] == DEAM_FRAMES
        assert result.row("chunks", f"deam:{sid}:0")["n_frames"] == 10


def _deam_extra_column(tree: DeamTree) -> None:
    tree.static_header.append("comment")
    for row in tree.static_rows:
        row["comment"] = "rated twice; see notes"


def _deam_missing_std(tree: DeamTree) -> None:
    tree.static_header.remove("valence_std")
    tree.static_header.remove("arousal_std")


def _deam_no_std(result: RunResult) -> None:
    row = result.row("deam", "deam:1001")
    assert row["static_valence_std"] is None or math.isnan(row["static_valence_std"]), row
    assert math.isclose(row["static_valence_raw"], 3.0 + 1001 % 5)


def _deam_short_row(tree: DeamTree) -> None:
    tree.add_song(1211, static={"valence_mean": "5.5"})  # the row ends after valence_mean


DEAM = [
    _deam_bad("nan-annotation", "static cells `NaN`, every dynamic frame `NaN`", 1201,
              _static("NaN", "NaN"), _cells("NaN"), "bad-annotation"),
    _deam_bad("blank-annotation", "static and dynamic cells empty", 1202, _static("", ""), _cells(""),
              "bad-annotation"),
    _deam_bad("text-annotation", "static `high`/`low`, dynamic `calm`", 1203, _static("high", "low"),
              _cells("calm"), "bad-annotation"),
    _deam_bad("out-of-range-annotation", "static 12.5 / 0.2 (scale 1-9), dynamic 3.0 (scale -1..1)", 1204,
              _static("12.5", "0.2"), _cells("3.0"), "bad-annotation"),
    Kind("duplicate-annotation", "deam", "two static rows and two dynamic rows for one song that disagree",
         _deam_duplicate, (Expect("deam", "duplicate-annotation", ("deam:1205",), names=DEAM_STATIC_NAME),)),
    Kind("duplicate-identical-rows", "deam", "a song's static and dynamic rows repeated verbatim",
         _deam_identical, (Expect("deam", None, ("deam:1206",), check=_merged_counted),
                           Expect("spectrogram", None, ("deam:1206:0",))),
         handling="merged into one row (counted `duplicate-rows-merged`); kept"),
    Kind("nan-static-only", "deam", "static cells `NaN`, dynamic frames fine",
         lambda tree: tree.add_song(1207, static=_static("NaN", "NaN")),
         (Expect("deam", None, ("deam:1207",)), Expect("spectrogram", None, ("deam:1207:0",)),
          Expect("clips", "missing-static", ("deam:1207",), names="MEMD_audio/1207.mp3")),
         handling="kept for chunks (dynamic VA)"),
    Kind("under-annotated", "deam", "only 4 of the chunk's 10 dynamic frames annotated", _deam_under,
         (Expect("deam", None, ("deam:1208",)),
          Expect("chunks", "under-annotated", ("deam:1208:0",), names="MEMD_audio/1208.mp3"))),
    Kind("annotation-without-audio", "deam", "song annotated in the CSVs, no MEMD_audio/<id>.mp3",
         lambda tree: tree.add_song(1209, audio=None),
         (Expect("deam", "missing-audio", ("deam:1209",), names="MEMD_audio/1209.mp3"),)),
    Kind("audio-without-annotation", "deam", "MEMD_audio/<id>.mp3 with no row in any annotation CSV",
         lambda tree: tree.add_song(1210, static=None, dynamic=None),
         (Expect("deam", "missing-annotation", ("deam:1210",), names="MEMD_audio/1210.mp3"),)),
    Kind("short-row", "deam", "a static row that ends after valence_mean (missing cells)", _deam_short_row,
         (Expect("deam", None, ("deam:1211",)), Expect("spectrogram", None, ("deam:1211:0",)),
          Expect("clips", "missing-static", ("deam:1211",), names="MEMD_audio/1211.mp3")),
         handling="missing cells read as NaN; kept for chunks"),
    Kind("mixed-line-endings", "deam", "static CSV lines end in CRLF, LF and CR in turn", _set(static_eol="mixed"),
         (Expect("deam", None, (), check=_deam_static_values_exact),),
         handling="parsed (every row read)"),
    Kind("utf8-bom", "deam", "dynamic valence.csv / arousal.csv start with a UTF-8 BOM", _set(dynamic_bom=True),
         (Expect("deam", None, (), check=_deam_dynamic_complete),), handling="BOM ignored; parsed"),
    Kind("extra-columns", "deam", "static CSV with an extra text column `comment`", _deam_extra_column,
         (Expect("deam", None, (), check=_deam_static_values_exact),), handling="extra column ignored"),
    Kind("missing-columns", "deam", "static CSV without the valence_std / arousal_std columns", _deam_missing_std,
         (Expect("deam", None, (), check=_deam_no_std),), handling="std columns left empty; means used"),
]


# ---------------------------------------------------------------- PMEmo ------------
def _pmemo_bad(kind: str, bad: str, sid: int, static: dict[str, str], reason: str, dynamic: bool = False,
               dyn_value: str | None = None) -> Kind:
    def inject(tree: PmemoTree) -> None:
        tree.add_song(sid, static=static, dynamic=False)
        if dyn_value is not None:
            tree.dynamic_rows += [[str(sid), f"{15.0 + 0.5 * k:g}", dyn_value, dyn_value] for k in range(3)]

    return Kind(kind, "pmemo", bad, inject, (Expect("pmemo", reason, (f"pmemo:{sid}",), names=f"chorus/{sid}.mp3"),))


def _pm(a: str, v: str) -> dict[str, str]:
    return {"Arousal(mean)": a, "Valence(mean)": v}


def _pmemo_duplicate(tree: PmemoTree) -> None:
    tree.add_song(205, dynamic=False)
    tree.static_rows.append({"musicId": "205", **_pm("0.9", "0.1")})


def _pmemo_static_present(result: RunResult) -> None:
    for sid in (1, 2, 3):
        row = result.row("pmemo", f"pmemo:{sid}")
        assert math.isclose(row["static_valence_raw"], 0.2 + 0.1 * (sid % 6)), row


def _pmemo_dynamic_present(result: RunResult) -> None:
    for sid in (1, 2, 3):
        assert result.row("pmemo", f"pmemo:{sid}")["dyn_n_frames"] == 3


def _pmemo_extra(tree: PmemoTree) -> None:
    tree.static_header.insert(1, "comment")
    for row in tree.static_rows:
        row["comment"] = "ok"


def _metadata_issue(result: RunResult) -> None:
    row = result.row("pmemo", "pmemo:208")
    assert row["metadata_issue"] and "unquoted comma" in row["metadata_issue"], row
    assert row["chorus_end_s"] == 70.0


PMEMO = [
    _pmemo_bad("out-of-range-annotation", "static 1.7 / -0.2 (scale 0-1), dynamic 2.0", 201, _pm("1.7", "-0.2"),
               "bad-annotation", dyn_value="2.0"),
    _pmemo_bad("nan-annotation", "static cells `NaN`, no dynamic rows", 202, _pm("NaN", "NaN"), "bad-annotation"),
    _pmemo_bad("text-annotation", "static cells `high` / `calm`", 203, _pm("high", "calm"), "bad-annotation"),
    _pmemo_bad("blank-annotation", "static cells empty", 204, _pm("", ""), "bad-annotation"),
    Kind("duplicate-annotation", "pmemo", "two static rows for one musicId that disagree", _pmemo_duplicate,
         (Expect("pmemo", "duplicate-annotation", ("pmemo:205",), names="chorus/205.mp3"),)),
    Kind("annotation-without-audio", "pmemo", "static row without chorus/<id>.mp3",
         lambda tree: tree.add_song(206, audio=None),
         (Expect("pmemo", "missing-audio", ("pmemo:206",), names="chorus/206.mp3"),)),
    Kind("audio-without-annotation", "pmemo", "chorus/<id>.mp3 without any annotation row",
         lambda tree: tree.add_song(207, static=None, dynamic=False),
         (Expect("pmemo", "missing-annotation", ("pmemo:207",), names="chorus/207.mp3"),)),
    Kind("metadata-unquoted-commas", "pmemo", "metadata.csv row with unquoted commas in title and artist",
         lambda tree: tree.add_song(208, metadata="208,208.mp3,Hello, Goodbye,Band, A,Album,200,40,70"),
         (Expect("pmemo", None, ("pmemo:208",), check=_metadata_issue), Expect("salient", None, ("pmemo:208",))),
         handling="numbers read from both ends, text columns left empty (`metadata_issue`); kept"),
    Kind("utf8-bom-crlf", "pmemo", "static_annotations.csv with a UTF-8 BOM and CRLF line endings",
         _set(static_bom=True, static_eol="crlf"),
         (Expect("pmemo", None, (), check=_pmemo_static_present),), handling="parsed"),
    Kind("mixed-line-endings", "pmemo", "dynamic_annotations.csv lines end in CRLF, LF and CR in turn",
         _set(dynamic_eol="mixed"),
         (Expect("pmemo", None, (), check=_pmemo_dynamic_present),), handling="parsed"),
    Kind("extra-columns", "pmemo", "static CSV with an extra `comment` column between the id and values",
         _pmemo_extra, (Expect("pmemo", None, (), check=_pmemo_static_present),),
         handling="columns matched by name; extra ignored"),
]


# ---------------------------------------------------------------- FoodPics ---------
def _rating_with(n: int, column: str, value: str) -> Callable[[FoodPicsTree], None]:
    def inject(tree: FoodPicsTree) -> None:
        cells = tree.rating(n)
        cells[column] = value
        tree.add_image(n, rating=cells)
    return inject


def _fp_bad(kind: str, bad: str, n: int, value: str, reason: str = "incomplete-va") -> Kind:
    return Kind(kind, "foodpics", bad, _rating_with(n, FOODPICS_VALENCE[0], value),
                (Expect("foodpics", reason, (f"foodpics:{n}",), names=FOODPICS_SHEET),))


def _fp_duplicate(tree: FoodPicsTree) -> None:
    tree.add_image(35)
    other = tree.rating(35)
    other[FOODPICS_VALENCE[1]] = "12,5"
    tree.rows.append({"Image_No": "35", **other})


def _fp_bad_id(tree: FoodPicsTree) -> None:
    tree.claim("sheet-row")
    tree.rows.insert(0, {"Image_No": "abc", **tree.rating(0)})  # the first data row: sheet row 5


def _fp_good_kept(result: RunResult) -> None:
    for n in (1, 2, 3, 4):
        row = result.row("foodpics", f"foodpics:{n}")
        assert row["n_groups"] == 4 and 60 <= row["valence_raw"] <= 75, row


def _fp_extra(tree: FoodPicsTree) -> None:
    tree.header.insert(2, "notes")
    for row in tree.rows:
        row["notes"] = "photographed 2019"


def _fp_no_processing(tree: FoodPicsTree) -> None:
    tree.header.remove("processing")


def _fp_processing_empty(result: RunResult) -> None:
    row = result.row("foodpics", "foodpics:1")
    assert row["processing"] is None and row["taste"] == "sweet", row


FOODPICS = [
    _fp_bad("rating-text", "a rating cell `high`", 31, "high"),
    _fp_bad("rating-blank", "a rating cell left empty", 32, ""),
    _fp_bad("rating-nan", "a rating cell `NaN`", 33, "NaN"),
    _fp_bad("rating-infinite", "a rating cell `1e999` (overflows to infinity)", 34, "1e999"),
    _fp_bad("out-of-range-annotation", "a rating cell `1e6` (outside the default `foodpics.rating_range` "
            "0–100, an assumption: neither the seeds nor SPEC state the scale)", 38, "1e6", "va-out-of-range"),
    Kind("duplicate-annotation", "foodpics", "two ratings rows for one Image_No that disagree", _fp_duplicate,
         (Expect("foodpics", "duplicate-id", ("foodpics:35",), names=FOODPICS_SHEET),)),
    Kind("annotation-without-image", "foodpics", "a ratings row whose picture is absent",
         lambda tree: tree.add_image(36, data=None),
         (Expect("foodpics", "missing-image", ("foodpics:36",), names=FOODPICS_SHEET),)),
    Kind("image-without-annotation", "foodpics", "a numbered picture without a ratings row",
         lambda tree: tree.add_image(37, rating=None),
         (Expect("foodpics", "missing-rating", ("foodpics:37",), names="0037.jpg"),)),
    Kind("bad-id", "foodpics", "a ratings row whose Image_No is `abc`", _fp_bad_id,
         (Expect("foodpics", "bad-id", ("foodpics:sheet-row-5",), names=FOODPICS_SHEET),)),
    Kind("utf8-bom-mixed-line-endings", "foodpics", "ratings CSV with a UTF-8 BOM and CRLF / LF / CR line endings",
         _set(bom=True, eol="mixed"),
         (Expect("foodpics", None, (), check=_fp_good_kept),), handling="parsed"),
    Kind("extra-columns", "foodpics", "ratings CSV with an extra `notes` column", _fp_extra,
         (Expect("foodpics", None, (), check=_fp_good_kept),), handling="columns matched by name; extra ignored"),
    Kind("missing-columns", "foodpics", "ratings CSV without the `processing` category column", _fp_no_processing,
         (Expect("foodpics", None, (), check=_fp_processing_empty),), handling="category left empty; kept"),
]


# ---------------------------------------------------------------- generic ----------
def _row(item: str, va: tuple[str, str]) -> Callable[[GenericTree], None]:
    def inject(tree: GenericTree) -> None:
        tree.add_item(item, f"files/{item}.png", tree.good_file(1), va=va)
    return inject


def _g_bad(kind: str, bad: str, item: str, va: tuple[str, str], reason: str) -> Kind:
    return Kind(kind, "generic-image", bad, _row(item, va),
                (Expect("generic", reason, (f"corpus:{item}",), names="table.csv"),))


def _null_va(item: str, which: tuple[str, ...]) -> Callable[[RunResult], None]:
    def check(result: RunResult) -> None:
        row = result.row("generic", f"corpus:{item}")
        for col in which:
            assert row[col] is None or math.isnan(row[col]), row
    return check


def _g_duplicate(tree: GenericTree) -> None:
    tree.add_item("t5", "files/t5.png", tree.good_file(0), va=("3", "3"))
    tree.rows.append(["t5", "files/t5.png", "7", "7", "calm"])


def _g_short(tree: GenericTree) -> None:
    tree.add_item("t6", "files/t6.png", tree.good_file(2), cells=["t6", "files/t6.png", "5"])


def _g_bad_id(tree: GenericTree) -> None:
    tree.claim("bad-id")
    tree.rows.insert(0, ["a/b", "files/a.png", "5", "5", "calm"])   # table line 2


def _g_orphan(tree: GenericTree) -> None:
    tree.claim("orphan")
    tree.put("files/orphan.png", tree.good_file(0))


def _g_orphan_absent(result: RunResult) -> None:
    for df in result.manifests.values():
        assert not any("orphan" in str(p) for p in df.get("image_path", [])), "a file without a row was ingested"


def _g_good_kept(result: RunResult) -> None:
    for item in ("a", "b", "c"):
        assert result.row("generic", f"corpus:{item}")["valence_raw"] == 6.0


def _g_extra(tree: GenericTree) -> None:
    tree.extra_columns["notes"] = "from the web"


GENERIC = [
    _g_bad("text-annotation", "valence cell `high`", "t1", ("high", "5"), "bad-annotation"),
    _g_bad("nan-annotation", "valence cell `nan`", "t2", ("nan", "5"), "bad-annotation"),
    _g_bad("out-of-range-annotation", "valence 12 on the declared 1-9 scale", "t3", ("12", "5"), "va-out-of-range"),
    Kind("blank-annotation", "generic-image", "valence and arousal cells empty", _row("t4", ("", "")),
         (Expect("generic", None, ("corpus:t4",), check=_null_va("t4", ("valence_raw", "arousal_raw"))),
          Expect("images", None, ("corpus:t4",))),
         handling="kept with null VA (`labels` rejects it `missing-va`)"),
    Kind("duplicate-annotation", "generic-image", "one id on two rows with different VA", _g_duplicate,
         (Expect("generic", "duplicate-id", ("corpus:t5",), names="table.csv"),)),
    Kind("short-row", "generic-image", "a row that ends after the valence cell (missing arousal, label)", _g_short,
         (Expect("generic", None, ("corpus:t6",), check=_null_va("t6", ("arousal_raw",))),
          Expect("images", None, ("corpus:t6",))),
         handling="missing cells empty: kept with null arousal"),
    Kind("annotation-without-file", "generic-image", "a table row whose file is absent",
         lambda tree: tree.add_item("t7", "files/t7.png", None),
         (Expect("generic", "missing-image", ("corpus:t7",), names="files/t7.png"),)),
    Kind("file-without-annotation", "generic-image", "a picture in the folder that no table row names", _g_orphan,
         (Expect("generic", None, (), check=_g_orphan_absent),), handling="not an input (the table is the index)"),
    Kind("bad-id", "generic-image", "id `a/b` (a path separator in an id)", _g_bad_id,
         (Expect("generic", "bad-id", ("corpus:line-2",), names="table.csv"),)),
    Kind("utf8-bom-mixed-line-endings", "generic-image", "table.csv with a UTF-8 BOM and CRLF / LF / CR line endings",
         _set(bom=True, eol="mixed"),
         (Expect("generic", None, (), check=_g_good_kept),), handling="parsed"),
    Kind("extra-columns", "generic-image", "table.csv with an extra `notes` column", _g_extra,
         (Expect("generic", None, (), check=_g_good_kept),), handling="columns matched by name; extra ignored"),
]

KINDS = [*DEAM, *PMEMO, *FOODPICS, *GENERIC]
