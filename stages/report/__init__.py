"""The `report` stage and command (SPEC §8): `run_view` reads what a run left on disk,
`stats` turns it into report.json's numbers (`json_values` rounds them, `shapes` types them),
`canvas` and `plots` draw the figures, `page` renders index.html, `card` writes DATASET.md and
recipe.toml, `json_schema` documents report.json, `stage` ties them."""
