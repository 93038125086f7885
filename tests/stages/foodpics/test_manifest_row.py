"""The kept row: exact group means over the complete groups, column kinds independent of the data."""
from __future__ import annotations

from fractions import Fraction

from emoprep.stages.demo import foodpics as demo
from emoprep.stages.foodpics.params import THESIS_AROUSAL, THESIS_VALENCE
from tests.helpers.foodpics import (
    STAGE,
    demo_tree,
    jpeg,
    make_ctx,
    run,
    table_row,
)


def test_means_are_exact_and_min_groups_uses_complete_pairs(tmp_path):
    """Dyadic values are exact in binary, so the means must match to the last bit."""
    root = tmp_path / "fp"
    for n in (1, 2, 3):
        jpeg(root / f"{n:04d}.jpg")
    rows = [
        table_row(1, [6.125, 7.5, 5.25, 6.0], [3.75, 4.5, 2.0, 5.125]),
        table_row(2, [6.125, None, 5.25, 6.0], [3.75, 4.5, 2.0, 5.125]),  # group 2 lacks V
        table_row(3, [1.0, 2.0, 3.0, 4.0], [None, 2.0, None, 4.0]),  # 2 complete groups
    ]
    demo.write_foodpics_ratings_xlsx(root / "r.xlsx", rows)
    _, df, rejects, _ = run(make_ctx(tmp_path, root, min_groups=3))
    got = df.set_index("image_no")
    assert got.loc[1, "valence_raw"] == (6.125 + 7.5 + 5.25 + 6.0) / 4
    assert got.loc[1, "arousal_raw"] == (3.75 + 4.5 + 2.0 + 5.125) / 4
    # image 2: the mean runs over the three groups having both V and A (1, 3, 4)
    assert got.loc[2, "valence_raw"] == float(Fraction(6125 + 5250 + 6000, 3000))
    assert got.loc[2, "arousal_raw"] == float(Fraction(3750 + 2000 + 5125, 3000))
    assert got.loc[2, "n_groups"] == 3
    assert [(r.sample_id, r.reason) for r in rejects] == [("foodpics:3", "incomplete-va")]
    assert "Arousal_omnivore_Male" in rejects[0].message


def test_manifest_column_types_do_not_depend_on_the_data(tmp_path):
    """A sheet without category columns and with an empty rating group (min_groups = 3) gives
    the same Parquet schema as the demo, where every cell is filled."""
    import pyarrow as pa

    from emoprep.stages.foodpics.manifest_row import manifest_kinds

    def schema(df):
        return {f.name: f.type for f in pa.Table.from_pandas(df, preserve_index=False).schema}

    root, _ = demo_tree(tmp_path / "demo", "xlsx")
    _, full, _, _ = run(make_ctx(tmp_path / "demo", root))
    bare = tmp_path / "bare"
    jpeg(bare / "0001.jpg")
    header = ["Image_No", *THESIS_VALENCE, *THESIS_AROUSAL]
    demo.write_foodpics_ratings_xlsx(bare / "r.xlsx", [[1, None, 5, 5, 5, None, 5, 5, 5]], header=header)
    _, sparse, rejects, _ = run(make_ctx(tmp_path / "bare", bare, min_groups=3))
    assert not rejects and sparse.iloc[0]["n_groups"] == 3
    assert schema(sparse) == schema(full)
    assert list(schema(full)) == list(manifest_kinds(STAGE.Params()))
    assert schema(full)["type"] == pa.large_string() and schema(full)[THESIS_VALENCE[0]] == pa.float64()
