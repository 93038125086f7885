"""Broken and odd audio files: DEAM and PMEmo MP3s, generic WAV / FLAC / MP3.

Where a kind is rejected depends on what reads the bytes: the ingest stages (`deam`,
`pmemo`, `generic`) only probe the header, so a file whose header lies (a truncated MP3
whose Xing tag announces the full length) passes ingest and is rejected by the stage that
decodes it (`chunks` / `clips`, `salient`).
"""
from __future__ import annotations

from collections.abc import Callable

from tests.corpus import Content, Expect, Kind, media
from tests.corpus.run import RunResult
from tests.corpus.trees import DEAM_SECONDS, PMEMO_SECONDS, DeamTree, GenericTree, PmemoTree

DEAM_MP3 = "MEMD_audio/{}.mp3"


def _format_is(stage: str, sample_id: str, fmt: str) -> Callable[[RunResult], None]:
    """Check: the ingest row records the format the bytes really are (not the extension's)."""
    def check(result: RunResult) -> None:
        assert result.row(stage, sample_id)["audio_format"] == fmt
    return check


def _deam(kind: str, bad: str, sid: int, audio: Content, stage: str, reason: str | None,
          handling: str = "", check: Callable[[RunResult], None] | None = None) -> Kind:
    """Song `sid` with the given MP3 bytes (or a function making them)."""
    def inject(tree: DeamTree) -> None:
        tree.add_song(sid, audio=audio() if callable(audio) else audio)

    expects: tuple[Expect, ...] = (Expect(stage, reason, (f"deam:{sid}",), names=DEAM_MP3.format(sid), check=check),)
    if reason is None:  # handled: the song also reaches its chunk and spectrogram
        expects += (Expect("spectrogram", None, (f"deam:{sid}:0",)),)
    return Kind(kind, "deam", bad, inject, expects, handling)


def _chunks_and_clips(kind: str, bad: str, sid: int, audio: Callable[[], bytes], reason: str) -> Kind:
    """A song that ingest keeps (its header is fine) and both decoding stages reject."""
    def inject(tree: DeamTree) -> None:
        tree.add_song(sid, audio=audio())

    name = DEAM_MP3.format(sid)
    return Kind(kind, "deam", bad, inject, (
        Expect("deam", None, (f"deam:{sid}",)),
        Expect("chunks", reason, (f"deam:{sid}",), names=name),
        Expect("clips", reason, (f"deam:{sid}",), names=name)))


DEAM = [
    _chunks_and_clips("truncated-mp3", "MP3 cut at 45 % of its bytes (its Xing header still announces 20.5 s)",
                      1101, lambda: media.truncated(media.tone_file(DEAM_SECONDS, 500.0)), "truncated-audio"),
    _deam("zero-length-mp3", "MEMD_audio/<id>.mp3 of 0 bytes", 1102, b"", "deam", "empty-audio"),
    _deam("empty-mp3", "an MP3 that is only an ID3 tag: not one audio frame", 1103, media.id3_only,
          "deam", "unreadable-audio"),
    _deam("wrong-extension", "a WAV file named <id>.mp3", 1104, lambda: media.tone_file(DEAM_SECONDS, 610.0, "WAV"),
          "deam", None, handling="decoded by content (libsndfile sniffs the format); kept",
          check=_format_is("deam", "deam:1104", "WAV")),
    _deam("non-audio-mp3", "a text file named <id>.mp3", 1105, b"this is not audio\n" * 200, "deam",
          "unreadable-audio"),
    _chunks_and_clips("all-silent", "every sample is 0 (a silent MP3)", 1106,
                      lambda: media.silent_file(DEAM_SECONDS), "silent-audio"),
    _deam("clipped", "a sine driven 4x past full scale, hard-clipped at ±1", 1107,
          lambda: media.clipped_file(DEAM_SECONDS), "deam", None,
          handling="kept as decoded (a materialised FLAC chunk clips to ±1)"),
    _deam("too-short", "a 10 s song: no 5 s chunk from 15 s", 1108, lambda: media.tone_file(10.0, 700.0),
          "chunks", "too-short"),
]


def _pmemo(kind: str, bad: str, sid: int, audio: Content, stage: str, reason: str | None, handling: str = "",
           check: Callable[[RunResult], None] | None = None) -> Kind:
    def inject(tree: PmemoTree) -> None:
        tree.add_song(sid, audio=audio() if callable(audio) else audio)

    expects: tuple[Expect, ...] = (Expect(stage, reason, (f"pmemo:{sid}",), names=f"chorus/{sid}.mp3"),)
    if stage != "pmemo":
        expects = (Expect("pmemo", None, (f"pmemo:{sid}",), check=check), *expects)
    return Kind(kind, "pmemo", bad, inject, expects, handling)


PMEMO = [
    _pmemo("truncated-mp3", "chorus MP3 cut at 45 % of its bytes", 101,
           lambda: media.truncated(media.tone_file(PMEMO_SECONDS, 520.0)), "salient", "truncated-audio"),
    _pmemo("zero-length-mp3", "chorus/<id>.mp3 of 0 bytes", 102, b"", "pmemo", "empty-audio"),
    _pmemo("non-audio-mp3", "a PNG picture named <id>.mp3", 103, media.png, "pmemo", "unreadable-audio"),
    _pmemo("all-silent", "every sample is 0", 104, lambda: media.silent_file(PMEMO_SECONDS), "salient",
           "silent-audio"),
    _pmemo("clipped", "hard-clipped square-ish wave at ±1", 105, lambda: media.clipped_file(PMEMO_SECONDS),
           "salient", None, handling="kept as decoded"),
    _pmemo("wrong-extension", "a FLAC file named <id>.mp3", 106, lambda: media.tone_file(PMEMO_SECONDS, 640.0, "FLAC"),
           "salient", None, handling="decoded by content; kept", check=_format_is("pmemo", "pmemo:106", "FLAC")),
]


def _generic(kind: str, bad: str, item: str, name: str, data: Content, stage: str, reason: str | None,
             handling: str = "", check: Callable[[RunResult], None] | None = None) -> Kind:
    path = f"files/{name}"

    def inject(tree: GenericTree) -> None:
        tree.add_item(item, path, data() if callable(data) else data)

    expects: tuple[Expect, ...] = (Expect(stage, reason, (f"corpus:{item}",), names=path),)
    if stage != "generic":
        expects = (Expect("generic", None, (f"corpus:{item}",), check=check), *expects)
    return Kind(kind, "generic-audio", bad, inject, expects, handling)


GENERIC = [
    _generic("wav-zero-channels", "RIFF/WAVE header with 0 channels (crafted with struct)", "ch0", "ch0.wav",
             lambda: media.wav_bytes(0, 22050), "generic", "unreadable-audio"),
    _generic("wav-too-many-channels", "WAV header announcing 2,000 channels", "ch2000", "ch2000.wav",
             lambda: media.wav_bytes(2000, 22050, n_frames=4), "generic", "unreadable-audio"),
    _generic("wav-rate-0", "WAV header with a 0 Hz sample rate", "sr0", "sr0.wav",
             lambda: media.wav_bytes(1, 0), "generic", "unreadable-audio"),
    _generic("wav-rate-1hz", "WAV header with a 1 Hz sample rate (100 frames = 100 s)", "sr1", "sr1.wav",
             lambda: media.wav_bytes(1, 1, n_frames=100), "generic", "absurd-sample-rate"),
    _generic("wav-rate-2ghz", "WAV header with a 2,147,483,647 Hz sample rate", "sr2g", "sr2g.wav",
             lambda: media.wav_bytes(1, 2**31 - 1, n_frames=4000), "generic", "absurd-sample-rate"),
    _generic("flac-rate-0", "FLAC STREAMINFO sample rate rewritten to 0", "flac0", "flac0.flac",
             lambda: media.flac_with_rate(0), "generic", "unreadable-audio"),
    _generic("flac-rate-1mhz", "FLAC STREAMINFO sample rate rewritten to 1,048,575 Hz", "flac1m", "flac1m.flac",
             lambda: media.flac_with_rate((1 << 20) - 1), "generic", "absurd-sample-rate"),
    _generic("truncated-flac", "FLAC cut at 45 % of its bytes", "cutflac", "cut.flac",
             lambda: media.truncated(media.tone_file(6.0, 410.0, "FLAC")), "salient", "truncated-audio"),
    _generic("zero-length-wav", "a WAV file of 0 bytes", "empty", "empty.wav", b"", "generic", "empty-audio"),
    _generic("all-silent", "a WAV whose samples are all 0", "silent", "silent.wav",
             lambda: media.silent_file(6.0, "WAV"), "salient", "silent-audio"),
    _generic("nan-samples", "32-bit float WAV whose second half is NaN", "nan", "nan.wav",
             media.float_wav_with_nan, "salient", "non-finite-audio"),
    _generic("wrong-extension", "an MP3 file named .wav", "mp3wav", "song.wav",
             lambda: media.tone_file(6.0, 370.0, "MP3"), "salient", None, handling="decoded by content; kept",
             check=_format_is("generic", "corpus:mp3wav", "MP3")),
]

KINDS = [*DEAM, *PMEMO, *GENERIC]
