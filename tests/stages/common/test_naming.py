"""`safe_name`: the one rule for a file written per sample must be injective and safe."""
from __future__ import annotations

from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from emoprep.stages.common.naming import nfc, safe_name


def test_ids_that_an_older_rule_merged_get_different_files() -> None:
    # sid.replace(":", "_") gave both of these "deam_2_0"
    assert safe_name("deam:2:0") != safe_name("deam_2:0") != safe_name("deam_2_0")
    assert safe_name("deam:2:0") == "deam%3A2%3A0"


@given(st.text(min_size=1))
def test_names_are_safe_and_decode_back_to_the_id(sample_id: str) -> None:
    name = safe_name(sample_id)
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert name not in (".", "..") and "." not in name
    assert set(name) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~%")
    assert unquote(name, errors="strict") == sample_id  # injective: the id comes back


def test_nfc_joins_composed_and_decomposed_names() -> None:
    assert nfc("cafe\u0301") == nfc("caf\u00e9") == "caf\u00e9"
