"""Reject reason codes of the DEAM audio path (stages deam, clips, chunks), for the lead to
merge into `manifests/schema.py`: code → one-line meaning."""

REJECT_CODES_DEAM = {
    # deam (ingest)
    "missing-annotation": "audio file with no row in the static or dynamic annotation CSVs",
    "missing-audio": "song annotated in the CSVs but MEMD_audio/<id>.mp3 is absent",
    "bad-annotation": "the song's annotation rows exist but hold no usable value (NaN or out of range)",
    "duplicate-annotation": "several annotation rows for one song id that disagree",
    "duplicate-audio": "several audio files map to one song id (e.g. 8.mp3 and 008.mp3)",
    "bad-song-id": "file in MEMD_audio/ whose name is not <integer song id>.mp3",
    # any stage that opens audio
    "unreadable-audio": "file (or zip member) cannot be opened or decoded as audio",
    "empty-audio": "file is 0 bytes or holds no audio frames",
    "truncated-audio": "decoding stops well before the length the file's header announces",
    # clips
    "missing-static": "no usable static valence/arousal for a 46 s clip",
    "longer-than-target": "song longer than the clip length (46.0 s) and policy = 'pad'",
    # chunks
    "missing-dynamic": "no dynamic valence/arousal frames for a song to chunk",
    "too-short": "song shorter than start_s + pad_tail_min_s (15 + 4.5 s): it yields no chunk",
    "under-annotated": "chunk with fewer than min_frames (8) annotated dynamic frames",
}
