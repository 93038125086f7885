"""run.json: runs with the same settings add their targets; other settings start over."""
from __future__ import annotations

from emoprep.pipeline.run_record import RECORD_FILE, RunRecord, read_run_record, record_run


def test_targets_accumulate_until_the_settings_change(tmp_path):
    first = RunRecord("thesis-v3", "/data", ("chunks.min_frames=2",), "cpu", ("spectrogram",))
    record_run(tmp_path, first)
    record_run(tmp_path, RunRecord("thesis-v3", "/data", ("chunks.min_frames=2",), "cpu", ("images",)))
    assert read_run_record(tmp_path) == RunRecord("thesis-v3", "/data", ("chunks.min_frames=2",), "cpu",
                                                  ("spectrogram", "images"))
    other = RunRecord("thesis-v3", "/data", (), "cpu", ("tokens", "report"))
    assert record_run(tmp_path, other) == other and read_run_record(tmp_path) == other


def test_an_unreadable_record_is_no_record(tmp_path):
    assert read_run_record(tmp_path) is None
    (tmp_path / RECORD_FILE).write_text('{"recipe": null}')
    assert read_run_record(tmp_path) is None
