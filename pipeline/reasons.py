"""Reject reason codes: their type, how a family documents its codes, and the engine's own.

A code is a stable kebab-case string that users filter on (`manifests/rejects.parquet`:
sample_id, stage, reason, message). Each family of stages documents its codes in a book
(code -> one-line meaning; the built-in stages' book is `emoprep.manifests.reasons`), and the
composition root hands the books to the runner, which warns about a code in none of them.
"""
from __future__ import annotations

from typing import NewType

ReasonCode = NewType("ReasonCode", str)


def define(book: dict[ReasonCode, str], code: str, meaning: str) -> ReasonCode:
    """Document `code` in `book` and return it as a constant (a code defined twice is a bug)."""
    if code in book:
        raise ValueError(f"reason code {code!r} defined twice")
    book[ReasonCode(code)] = meaning
    return ReasonCode(code)


def reason_code(code: str) -> ReasonCode:
    """A code for a plugin stage that keeps no book (the runner warns that it is undocumented)."""
    return ReasonCode(code)


# The codes the engine itself gives an item, whatever the stage.
ENGINE_CODES: dict[ReasonCode, str] = {}
INTERNAL_ERROR = define(
    ENGINE_CODES, "internal-error",
    "the stage raised an exception on this item (a bug or an unforeseen input); message has the error")
WORKER_CRASHED = define(
    ENGINE_CODES, "worker-crashed",
    "the worker process died twice while processing this item (e.g. a decoder segfault, out of memory)")
ITEM_TIMEOUT = define(
    ENGINE_CODES, "timeout",
    "the item ran past the time limit (--item-timeout; e.g. a read that never returns on a stalled mount); "
    "its worker was stopped and the run went on")
NO_OUTPUT = define(
    ENGINE_CODES, "no-output",
    "the stage returned neither an output nor a reason for this item (a stage bug)")
