"""Write the README's bad-input table from the catalogue: `.venv/bin/python -m tests.corpus.table`.

The table sits in README.md between two marker comments; tests/system/test_corpus.py checks that it
is current, so the README never promises what the corpus does not test."""
from __future__ import annotations

from pathlib import Path

from tests.corpus import render_table

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- bad-inputs:start -->\n", "<!-- bad-inputs:end -->\n"


def readme_table(text: str | None = None) -> str:
    """The block between the markers in README.md."""
    text = README.read_text(encoding="utf-8") if text is None else text
    _, sep, rest = text.partition(START)
    if not sep or END not in rest:
        raise ValueError(f"{README}: the bad-input markers are missing")
    return rest.partition(END)[0]


def write_readme_table() -> None:
    text = README.read_text(encoding="utf-8")
    old = readme_table(text)
    README.write_text(text.replace(START + old + END, START + render_table() + END), encoding="utf-8")


if __name__ == "__main__":
    write_readme_table()
    print(f"updated the bad-input table in {README}")
