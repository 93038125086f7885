"""The DEAM CSV parsers: static, dynamic and metadata files with the real files' quirks
(CRLF, padding, BOM, the 2015 header typo, ragged rows, per-year metadata headers)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emoprep.stages.deam.parsers import (
    AnnotationFormatError,
    frame_grid,
    parse_dynamic_csv,
    parse_metadata_csv,
    parse_static_csv,
)
from emoprep.stages.demo.deam_files import STATIC_2

STATIC_TEXT = """song_id, valence_mean, valence_std, arousal_mean, arousal_std
2,3.1,0.94,3,0.63
3,3.5,1.75,3.3,1.62
1001,6.2,1.1,7.4,0.9
"""


# ---- static CSVs ------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["plain", "crlf", "padded", "bom", "padded+crlf"])
def test_static_csv_variants_parse_to_the_same_values(variant):
    text = STATIC_TEXT
    if "padded" in variant:
        lines = text.splitlines()
        text = "\n".join([lines[0]] + [",".join(c.rjust(8) + "  " for c in ln.split(",")) for ln in lines[1:]]) + "\n"
    if "crlf" in variant:
        text = text.replace("\n", "\r\n")
    data = text.encode()
    if variant == "bom":
        data = b"\xef\xbb\xbf" + data
    df = parse_static_csv(data, "static.csv")
    assert list(df["song_id"]) == [2, 3, 1001]
    assert df[["valence_mean", "valence_std", "arousal_mean", "arousal_std"]].iloc[0].tolist() == [3.1, 0.94, 3.0, 0.63]
    assert df.loc[2, "arousal_mean"] == 7.4
    assert df.attrs["problems"] == []


def test_static_csv_2015_file_with_13_columns_and_typo():
    text = ("song_id, valence_mean, valence_std, valence_ max_mean, valence_max_std, valence_min_mean, "
            "valence_min_std, arousal_mean, arousal_std, arousal_max_mean, arousal_max_std, "
            "arousal_min_mean, arousal_min_std\n"
            "2001,3.2,0.98,5.0,1.41,2.2,0.98,6.6,0.8,8.6,0.49,3.4,1.02\n"
            "2002,6.4,0.49,8.2,0.98,5.0,1.1,5.2,1.17,7.4,1.36,2.2,1.17\n")
    df = parse_static_csv(text.encode(), STATIC_2)
    assert "valence_max_mean" in df.columns  # the typo'd header is normalised
    assert len(df.columns) == 13 + 1  # 13 + source_line
    by_id = df.set_index("song_id")
    assert [by_id[c][2001] for c in ("valence_mean", "arousal_mean", "valence_max_mean")] == [3.2, 6.6, 5.0]


def test_static_csv_bad_lines_are_skipped_and_reported():
    text = STATIC_TEXT + "abc,1,1,1,1\n4,x,1.0,5.0,1.0\n5,4.0\n"
    df = parse_static_csv(text.encode(), "s.csv")
    assert list(df["song_id"]) == [2, 3, 1001, 4, 5]
    assert np.isnan(df.set_index("song_id")["valence_mean"][4])
    assert np.isnan(df.set_index("song_id")["arousal_mean"][5])
    probs = " ".join(df.attrs["problems"])
    assert "s.csv:5" in probs and "'x' is not a number" in probs and "s.csv:7" in probs


def test_static_csv_without_the_needed_columns_is_a_format_error():
    with pytest.raises(AnnotationFormatError, match="valence_mean"):
        parse_static_csv(b"song_id,foo,bar\n2,1,2\n", "weird.csv")


# ---- dynamic and metadata CSVs ------------------------------------------------------------
def frames(df: pd.DataFrame, song_id: int) -> pd.Series:
    """The frames of one song in a dense dynamic table (one row per song id)."""
    row = df.loc[song_id]
    assert isinstance(row, pd.Series)
    return row


def test_dynamic_csv_ragged_rows_and_empty_cells_read_as_nan_tails():
    text = ("song_id,sample_15000ms,sample_15500ms,sample_16000ms,sample_16500ms,\r\n"
            "2,0.1,-0.2,0.3,0.4\r\n"
            "3,0.5,0.25\r\n"          # ragged: missing trailing cells
            "4, 0.1 ,,0.2,\r\n")       # padded values, empty interior and trailing cells
    df = parse_dynamic_csv(text.encode(), "valence.csv")
    times = df.columns.to_numpy()
    assert times.tolist() == [15000, 15500, 16000, 16500]
    assert frames(df, 2).tolist() == [0.1, -0.2, 0.3, 0.4]
    assert frames(df, 3).tolist()[:2] == [0.5, 0.25] and frames(df, 3).isna().tolist() == [False, False, True, True]
    assert frames(df, 4).isna().tolist() == [False, True, False, True]
    assert frame_grid(times) == (15000, 500)


def test_dynamic_csv_unknown_header_and_irregular_grid_are_errors():
    with pytest.raises(AnnotationFormatError):
        parse_dynamic_csv(b"song_id,t1,t2\n2,0.1,0.2\n")
    with pytest.raises(AnnotationFormatError):
        frame_grid([15000, 15500, 16500])


def test_metadata_csvs_with_per_year_headers_ragged_rows_and_tabs():
    m13 = parse_metadata_csv(b"song_id,file_name,Artist,Song title,start,end,Genre\n2,2.mp3,A,T,0,1,Rock\n",
                               "metadata_2013.csv")
    m14 = parse_metadata_csv(b"Id,Artist,Album,Track,Genre\n1001,B,Al,Tr\tack,Pop,extra,extra2\n1002,C\n",
                               "metadata_2014.csv")
    m15 = parse_metadata_csv(b"id,file_name,title,artist,album,genre\n2001,x.mp3,Ti,Ar,Al,Jazz\n",
                               "metadata_2015.csv")
    assert m13.iloc[0].to_dict() == {"song_id": 2, "metadata_year": "2013", "artist": "A", "title": "T",
                                     "genre": "Rock"}
    assert m14.set_index("song_id").loc[1001, "title"] == "Tr ack"
    assert pd.isna(m14.set_index("song_id")["genre"][1002])
    assert m15.iloc[0]["genre"] == "Jazz" and m15.iloc[0]["metadata_year"] == "2015"


def test_metadata_never_raises():
    for junk in (b"", b"\xff\xfe\x00garbage", b"no,ident,here\n1,2,3\n"):
        df = parse_metadata_csv(junk, "metadata_2014.csv")
        assert df.empty
