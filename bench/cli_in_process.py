"""Benchmark: what one CLI call costs a test, as a subprocess vs in this process.

    .venv/bin/python bench/cli_in_process.py [--runs 7]

Times `emoprep ARGS` started as the test suite used to (`subprocess.run` of the venv's console
script) and through `tests/helpers/cli.py` (click's test runner, the command `main()` runs),
for `--help`, `run --help` and a refused `run --executor threads`; prints min / median / max
wall seconds per call. The first in-process call pays the CLI's imports once per test session.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `tests.helpers.*`

from tests.helpers.cli import invoke  # noqa: E402 - after the path above
from tests.helpers.paths import EMOPREP  # noqa: E402

CALLS = (("--help",), ("run", "--help"), ("run", "--executor", "threads"))


def _stats(times: list[float]) -> str:
    return f"{min(times):6.3f} / {statistics.median(times):6.3f} / {max(times):6.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    t0 = time.perf_counter()
    invoke("--help")
    print(f"first in-process call (imports the CLI): {time.perf_counter() - t0:.3f} s")
    print(f"{'call':32} {'subprocess min/median/max s':>30} {'in-process min/median/max s':>30}")
    for args in CALLS:
        sub, inproc = [], []
        for _ in range(runs):
            t = time.perf_counter()
            done = subprocess.run([str(EMOPREP), *args], capture_output=True, text=True)
            sub.append(time.perf_counter() - t)
            t = time.perf_counter()
            res = invoke(*args)
            inproc.append(time.perf_counter() - t)
            if done.returncode != res.exit_code:
                raise SystemExit(f"{args}: exit {done.returncode} as a subprocess, {res.exit_code} in-process")
        print(f"{' '.join(args):32} {_stats(sub):>30} {_stats(inproc):>30}")


if __name__ == "__main__":
    main()
