"""The embedded demo dataset (SPEC §3.5): small synthetic DEAM, PMEmo and FoodPics trees in
their real formats and quirks. Input generators, not stages: `dataset` writes all three."""
