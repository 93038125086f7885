"""The `foodpics` ingest (SPEC §3.2): the ratings sheet, its column mapping, the image
folder and the keep/reject rules, indexed into one manifest row per image."""
