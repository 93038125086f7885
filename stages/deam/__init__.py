"""The `deam` ingest (SPEC §3.1): `layout` finds the parts of a DEAM copy, `parsers` reads
its CSVs, `annotations` combines them per song, `audit` detects swapped static columns,
`stage` indexes songs into one manifest row each."""
