"""The embedded demo dataset (SPEC §3.5): small synthetic DEAM, PMEmo and FoodPics trees in
their real formats and quirks (`dataset` writes all three). Input generators, not stages, and
the one source of synthetic media: tests and benchmarks build their trees from `media`
(audio, pictures), `tables` (CSV, XLSX), `signals` and the dataset modules."""
