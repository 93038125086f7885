"""Column kinds: the cast the runner applies to every manifest keeps nulls as nulls."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa

from emoprep.pipeline.columns import cast_column, with_kinds


def test_a_missing_string_stays_missing_whatever_the_pandas_version():
    """pandas < 3 casts None to the text 'None' with astype(str): a chunk view's null `path`
    became a file named "None" (found by running the tests at the pandas 2.2 floor)."""
    cast = cast_column(pd.Series(["chunks/a.flac", None, "b"], dtype=object), "str")
    assert cast.isna().tolist() == [False, True, False] and cast.iloc[0] == "chunks/a.flac"
    table = pa.Table.from_pandas(with_kinds(pd.DataFrame({"path": [None, "x"], "n": [1, None]}),
                                            {"path": "str", "n": "int"}), preserve_index=False)
    assert table.column("path").to_pylist() == [None, "x"] and table.column("n").to_pylist() == [1, None]
