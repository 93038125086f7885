"""The text-table reader the DEAM, PMEmo and FoodPics parsers share: each quirk of the release
files once (encodings, line endings, delimiters, header spellings, comment rows above the
header, id cells, ragged rows, embedded tabs)."""
from __future__ import annotations

import csv

import pytest

from emoprep.stages.common.text_table import (
    HEADER_SEARCH_ROWS,
    MAX_ID,
    cell_at,
    column_name,
    decode,
    find_header_line,
    find_header_row,
    parse_id,
    parse_number,
    ragged,
    read_rows,
    sniff_delimiter,
    squash,
    text_cell,
)


# ---- decoding -----------------------------------------------------------------------------
def test_decode_takes_utf8_with_or_without_bom():
    assert decode("Möhre".encode()) == ("Möhre", "utf-8-sig")
    assert decode(b"\xef\xbb\xbfsong_id") == ("song_id", "utf-8-sig")


def test_decode_falls_back_in_order_and_never_fails():
    assert decode("标题".encode("gb18030"), ("utf-8-sig", "gb18030")) == ("标题", "gb18030")
    assert decode("Süßes".encode("cp1252"), ("utf-8-sig", "cp1252"), "latin-1") == ("Süßes", "cp1252")
    # 0x81 is undefined in cp1252: the last resort replaces it rather than failing
    assert decode(b"a\x81b") == ("a\ufffdb", "cp1252")
    assert decode(b"a\x81b", ("utf-8-sig", "cp1252"), "latin-1") == ("a\x81b", "latin-1")


def test_a_utf8_bom_in_front_of_another_encoding_is_dropped():
    data = b"\xef\xbb\xbfmusicId,title\n1," + "Süß".encode("cp1252") + b"\n"
    assert decode(data) == ("musicId,title\n1,Süß\n", "cp1252")
    assert decode(data, ("utf-8-sig", "cp1252"), "latin-1")[0].startswith("musicId")


# ---- rows ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_line_endings_give_the_same_rows_and_line_numbers(ending):
    text = ending.join(["song_id, valence_mean", "2, 3.1", "", "3 ,  4.5  ", ""])
    assert list(read_rows(text)) == [(1, ["song_id", "valence_mean"]), (2, ["2", "3.1"]), (4, ["3", "4.5"])]


def test_mixed_endings_and_a_last_line_without_one():
    assert [line for line, _ in read_rows("a,b\r\n1,2\n3,4\r5,6")] == [1, 2, 3, 4]


def test_delimiter_is_sniffed_from_the_header_line():
    assert sniff_delimiter("\n\nImage_No;Valence;Arousal\n1,5;2,5;3\n") == ";"
    assert sniff_delimiter("song_id\tsample_15000ms\n") == "\t"
    assert sniff_delimiter("musicId,title\n") == "," and sniff_delimiter("") == ","
    assert list(read_rows("id;v\n1;6,5\n")) == [(1, ["id", "v"]), (2, ["1", "6,5"])]


def test_quoted_cells_keep_delimiters_and_line_breaks_and_are_numbered_by_their_last_line():
    rows = list(read_rows('id,title\r\n1,"Hello, Goodbye"\r\n2,"two\r\nlines"\r\n3,x\r\n'))
    assert rows == [(1, ["id", "title"]), (2, ["1", "Hello, Goodbye"]), (4, ["2", "two\r\nlines"]), (5, ["3", "x"])]


def test_unstripped_cells_blank_rows_and_a_start_line():
    text = "comment row\n\nImage_No;v\n 1 ; 2\n;\n\n"
    rows = list(read_rows(text, ";", start=2, strip=False, skip_blank=False))
    assert rows == [(3, ["Image_No", "v"]), (4, [" 1 ", " 2"]), (5, ["", ""]), (6, [])]


def test_a_stray_quote_is_reported_with_its_line():
    text = 'id,v\n1,2\n3,"' + "5" * 140_000
    with pytest.raises(csv.Error):
        list(read_rows(text))
    with pytest.raises(ValueError, match=r"^t\.csv line 3: field larger than field limit"):
        list(read_rows(text, on_error=lambda line, exc: ValueError(f"t.csv line {line}: {exc}")))


def test_ragged_rows_stay_as_written():
    rows = dict(read_rows("id,a,b\n1,x\n2,x,y,z\n"))
    assert rows[2] == ["1", "x"] and rows[3] == ["2", "x", "y", "z"]
    assert cell_at(rows[2], 2) is None and cell_at(rows[2], 2, "") == "" and cell_at(rows[2], None) is None
    assert ragged(rows[2], 3) == "2 cells for 3 columns"


def test_embedded_tabs_and_runs_of_spaces_in_text_cells():
    assert text_cell(" Tr\tack  two ") == "Tr ack two"
    assert text_cell(" \t") is None and text_cell(None) is None


# ---- headers ------------------------------------------------------------------------------
def test_header_spellings():
    assert squash("Arousal(mean)") == squash("arousal_mean") == "arousalmean"
    assert squash("Image No") == squash("\ufeffimage_no") == squash("IMAGE-NO") == "imageno"
    assert squash("Größe") == "grösse"  # letters beyond ASCII count (case-folded, NFC)
    assert column_name(" valence_ max_mean") == "valence_max_mean"
    assert column_name("\ufeffSong_ID ") == "song_id"


def test_header_row_below_comment_rows():
    grid: list[list[object]] = [["Bewertungen 2019", None], [None, None], ["Image No", "Valence"], [1, 50.0]]
    assert find_header_row(grid, "Image_No") == 2
    assert find_header_row(grid, "Bild") is None
    below = [["note"]] * HEADER_SEARCH_ROWS + [["Image_No"]]
    assert find_header_row(below, "Image_No") is None


def test_header_line_and_its_delimiter_below_comment_lines():
    text = "Ratings for Image_No below; 2019\r\n;;;\r\nImage_No;Valence;Arousal\r\n1;50;60\r\n"
    assert find_header_line(text, "Image_No") == (2, ";")
    assert find_header_line("x\tImage No\ty\n", "Image_No") == (0, "\t")
    assert find_header_line("a,b\n1,2\n", "Image_No") is None


# ---- cells --------------------------------------------------------------------------------
@pytest.mark.parametrize(("cell", "value"), [
    ("12", 12), (" 12 ", 12), ("0012", 12), ("2.0", 2), ("12,0", 12), (12, 12), (12.0, 12),
    ("9007199254740991", MAX_ID - 1), (str(MAX_ID), None), ("12.5", None), (12.5, None), ("4a", None),
    ("-3", None), (-3, None), ("", None), (None, None), ("nan", None), ("inf", None), (True, None),
])
def test_parse_id(cell, value):
    assert parse_id(cell) == value


@pytest.mark.parametrize(("cell", "value"), [
    (6.5, 6.5), (7, 7.0), ("6,5", 6.5), (" 6.25 ", 6.25), ("1.234,5", 1234.5), ("1,234.5", 1234.5),
    ("-2", -2.0), ("", None), ("n/a", None), ("-", None), (None, None), (float("nan"), None),
    ("inf", None), (True, None), ("6,5,1", None), ("1e2", 100.0),
])
def test_parse_number(cell, value):
    assert parse_number(cell) == value
