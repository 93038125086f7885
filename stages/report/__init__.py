"""The `report` stage and command (SPEC §8): `run_view` reads what a run left on disk,
`stats` turns it into report.json's numbers (`json_values` rounds them, `models` declares
them and generates the schema), `canvas` and `plots` draw the figures, `page` renders
index.html and `card` DATASET.md (from `templates/`, package data) and recipe.toml, `stage`
ties them."""
