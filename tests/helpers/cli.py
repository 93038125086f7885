"""`emoprep` in this process, through click's test runner: for tests of exit codes, messages,
tables and `--help`, where no process boundary is under test (a subprocess costs ~1-2 s of
interpreter start and imports; tests of kills, locks between processes, timeouts and the
installed console script start `tests.helpers.paths.EMOPREP` instead)."""
from __future__ import annotations

from functools import cache
from typing import Any

from click.testing import CliRunner, Result


@cache
def _command() -> Any:
    """The command `emoprep.cli.main` runs: typer's click command, post-processed as there."""
    import typer

    from emoprep.cli import app, without_flag_types

    return without_flag_types(typer.main.get_command(app))


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """`emoprep ARGS`: the result has `exit_code`, `stdout`, `stderr` and any `exception`.
    `env` is set in os.environ for the call only (e.g. EMOPREP_PLUGINS)."""
    return CliRunner().invoke(_command(), list(args), env=env, prog_name="emoprep")


def said(result: Result) -> str:
    """Everything the command printed, and its exception: for assertion messages."""
    return f"exit {result.exit_code}\n{result.output[-3000:]}\n{result.exception!r}"
