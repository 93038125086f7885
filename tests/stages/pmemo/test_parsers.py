"""PMEmo 2019's CSV parsers (SPEC §3.3): static and dynamic annotations, metadata with
unquoted commas, text encodings and time cells."""
from __future__ import annotations

import math

import numpy as np
import pytest

from emoprep.stages.pmemo.parsers import (
    PmemoFormatError,
    decode_text,
    frame_index,
    parse_dynamic,
    parse_metadata,
    parse_seconds,
    parse_static,
)


def test_static_csv_with_crlf_duplicates_and_junk():
    text = ("musicId,Arousal(mean),Valence(mean)\r\n1,0.8,0.7\r\n2,0.1,abc\r\nx,0.5,0.5\r\n"
            "3,0.4,0.4\r\n3,0.4,0.4\r\n4,0.2,0.2\r\n4,0.3,0.2\r\n")
    t = parse_static(text, "static.csv")
    assert t.values[1] == {"valence": 0.7, "arousal": 0.8}
    assert math.isnan(t.values[2]["valence"])
    assert t.merged_duplicates == {3: 1} and set(t.conflicts) == {4}
    assert t.problems == ["static.csv line 4: musicId 'x' is not an id"]
    with pytest.raises(PmemoFormatError, match="Valence"):
        parse_static("musicId,Arousal(mean)\n1,0.5\n", "static.csv")


def test_dynamic_csv_long_format_on_the_2hz_grid():
    text = ("musicId,frameTime,Arousal(mean),Valence(mean)\n"
            "5,15.0,0.1,0.2\n5,15.5,0.3,0.4\n5,16.5,0.5,0.6\n"   # 16.0 missing → NaN
            "5,15.25,0.9,0.9\n"                                   # off the grid → skipped
            "6,15,0.1,0.1\n6,15,0.2,0.1\n")                       # repeated frame, different → conflict
    t = parse_dynamic(text, "dyn.csv")
    np.testing.assert_array_equal(t.arousal[5], [0.1, 0.3, np.nan, 0.5])
    np.testing.assert_array_equal(t.valence[5], [0.2, 0.4, np.nan, 0.6])
    assert set(t.conflicts) == {6} and len(t.problems) == 1 and "15.25" in t.problems[0]
    assert frame_index(15.0) == 0 and frame_index(44.5) == 59 and frame_index(14.5) is None
    assert frame_index(15.004) == 0 and frame_index(15.2) is None


def test_metadata_with_unquoted_commas_never_fails():
    text = ("musicId,fileName,title,artist,album,duration,chorus_start_time,chorus_end_time\n"
            "1,1.mp3,Plain,Band,Album,200,40,70.5\n"
            "2,2.mp3,Hello, Goodbye,Band, Two,Album,210,1:05,1:35\n"
            "3,3.mp3,Short\n"
            "junk line without id\n")
    m = parse_metadata(text)
    assert m.rows[1]["title"] == "Plain" and m.rows[1]["chorus_end_s"] == 70.5
    two = m.rows[2]
    assert two["title"] is None and two["artist"] is None and two["file_name"] is None
    assert (two["song_duration_s"], two["chorus_start_s"], two["chorus_end_s"]) == (210.0, 65.0, 95.0)
    assert "unquoted comma" in two["metadata_issue"] and two["metadata_text"] == "2.mp3,Hello, Goodbye,Band, Two,Album"
    assert m.rows[3]["title"] == "Short" and m.rows[3]["song_duration_s"] is None
    assert len(m.problems) == 1 and "line 5" in m.problems[0]
    assert parse_metadata("").rows == {} and parse_metadata("a,b\n1,2\n").problems


def test_text_decoding_and_seconds():
    assert decode_text("标题".encode("gb18030")) == "标题"
    assert decode_text("\ufefftitle".encode("utf-8")) == "title"
    assert parse_seconds("1:23.5") == 83.5 and parse_seconds("0:01:00") == 60.0
    assert math.isnan(parse_seconds("n/a")) and parse_seconds("12") == 12.0
