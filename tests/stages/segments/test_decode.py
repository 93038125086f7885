"""Decoding songs as `clips` and `chunks` do (`audio_io.decode_mono`): every rate and channel
layout, reason codes for broken files, and fidelity to the encoded signal."""
from __future__ import annotations

import numpy as np
import pytest

from emoprep.stages.common.audio_io import AudioError, decode_mono
from tests.helpers.deam import mp3


@pytest.mark.parametrize(("sr", "channels"), [(44100, 2), (48000, 2), (22050, 1), (16000, 1), (48000, 1)])
def test_decode_mono_rates_and_channels(tmp_path, sr, channels):
    mp3(tmp_path / "x.mp3", seconds=3.0, sr=sr, channels=channels)
    dec = decode_mono(tmp_path, "x.mp3", 44100)
    assert dec.samples.dtype == np.float32 and dec.samples.ndim == 1
    assert len(dec.samples) == 3 * 44100 and dec.source_rate == sr and dec.channels == channels
    # a 330 Hz tone stays a 330 Hz tone
    spec = np.abs(np.fft.rfft(dec.samples[44100:88200]))
    assert abs(np.argmax(spec) - 330) <= 1


def test_decode_failures_have_reason_codes(tmp_path):
    mp3(tmp_path / "ok.mp3", seconds=20.0, sr=44100)
    data = (tmp_path / "ok.mp3").read_bytes()
    (tmp_path / "trunc.mp3").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.mp3").write_bytes(b"")
    (tmp_path / "text.mp3").write_text("hello")
    cases = {"trunc.mp3": "truncated-audio", "empty.mp3": "empty-audio", "text.mp3": "unreadable-audio",
             "missing.mp3": "unreadable-audio", "../escape.mp3": "path-outside-root"}
    for ref, reason in cases.items():
        with pytest.raises(AudioError) as err:
            decode_mono(tmp_path, ref, 44100)
        assert err.value.reason == reason and ref in err.value.message


def test_decode_reproduces_the_encoded_signal(demo):
    """Decoding gives back what was encoded, up to MP3 coding noise. (Reading an MP3 through
    libsndfile in blocks does not: that path has an RMS error ~15× larger.)"""
    from emoprep.stages.demo.music import synth_music

    root, truth = demo
    for sid in (3, 2001):  # mono and stereo, both 44.1 kHz so no resampler is involved
        s = truth["songs"][sid]
        orig = synth_music(s["valence"], s["arousal"], s["duration_s"], s["sample_rate"], s["channels"],
                           truth["seed"] * 100_003 + sid).mean(axis=1)
        dec = decode_mono(root, f"MEMD_audio/{sid}.mp3", 44100).samples
        assert len(dec) == len(orig)
        assert np.sqrt(np.mean((dec - orig) ** 2)) < 0.02
