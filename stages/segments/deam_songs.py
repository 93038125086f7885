"""What `clips` and `chunks` share: both plan one item per song of the `deam` manifest and
decode its raw audio, so both stream the same manifest rows, check the same output formats and
reject digitally silent songs alike."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, TypeVar

from emoprep.manifests.reasons import SILENT_AUDIO
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.stage import Outcome
from emoprep.stages.common.audio_io import AUDIO_SUFFIX

AudioFormat = Literal["flac", "npy"]

P = TypeVar("P")


def deam_rows(ctx: StageContext[P], stage: str, columns: tuple[str, ...], optional: tuple[str, ...] = ()
              ) -> tuple[int, Iterator[Any]]:
    """The deam manifest's rows (as namedtuples of `columns` and whichever `optional` ones it
    has) streamed one row group at a time, with their number: at 10× DEAM, reading it whole
    cost the planning process ~100 MB of Arrow buffers for columns no plan uses."""
    names = ctx.manifest_columns("deam")
    missing = [c for c in columns if c not in names]
    if missing:
        raise ConfigError(f"{stage}: the deam manifest has no column(s) {', '.join(missing)}; "
                          "re-run the deam stage")
    if ctx.roots.get("deam") is None:
        raise ConfigError(f"{stage} decodes raw DEAM audio: the DEAM root must be known "
                          "(--data-root or --set deam.root=...)")
    wanted = [*columns, *(c for c in optional if c in names)]
    count = ctx.manifest_rows("deam")
    rows = (r for batch in ctx.iter_manifest("deam", wanted) for r in batch.itertuples(index=False))
    return count, rows


def check_format(stage: str, audio_format: str) -> None:
    if audio_format not in AUDIO_SUFFIX:
        raise ConfigError(f"{stage}.audio_format must be 'flac' or 'npy', not {audio_format!r}")


def silent(sid: str, ref: str) -> Outcome:
    # Digital silence from end to end is a broken or placeholder file, never a song: its
    # blank spectrograms would teach a model that silence carries the song's emotion.
    return Outcome.rejected(sid, SILENT_AUDIO, f"{ref}: every decoded sample is 0 (a broken or placeholder file)")
