"""`emoprep probe`: frozen-token probes of a run's token stores (`step.py`). `features` pools
each item's tokens to one vector per layer, `protocol` holds the split, grouped folds and fits
(`models`: the MLP), `metrics` the scores, `schema` documents probe.json, `plot` draws score
against layer for the report."""
