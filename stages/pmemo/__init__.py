"""The `pmemo` ingest (SPEC §3.3): `layout` finds the parts of a PMEmo 2019 copy, `parsers`
reads its quirky CSVs, `annotations` decides what each song takes from them, `stage` indexes
songs into one manifest row each."""
