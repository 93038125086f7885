"""Benchmark: an up-to-date run, as a user types it (issue 18's no-op bars).

    .venv/bin/python bench/noop.py [--runs 5] [--recipe thesis-v3] [--out emoprep-out]

Runs `make tokens` once (sets up, brings the output up to date, warms the page cache and
writes bytecode), then times `--runs` no-op runs each of `emoprep run --recipe R -q`,
`emoprep validate` and `make tokens` (run + validate), wall clock of the whole command, and
prints min / median / max. Fails if a "no-op" run did any work. To compare commits, check each
out in turn in the same clone and run this after it (interleave them: this VM's speed drifts).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMOPREP = Path(sys.executable).with_name("emoprep")


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, done.stdout + done.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--recipe", default="thesis-v3")
    ap.add_argument("--out", default="emoprep-out")
    a = ap.parse_args()
    make = ["make", "tokens", f"RECIPE={a.recipe}", f"OUT={a.out}"]
    timed(make)
    commands = {"emoprep run (no-op)": [str(EMOPREP), "run", "--recipe", a.recipe, "--out", a.out, "-q"],
                "emoprep validate": [str(EMOPREP), "validate", "--out", a.out],
                "make tokens (no-op run + validate)": make}
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
          f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}")
    for name, cmd in commands.items():
        walls = []
        for _ in range(a.runs):
            wall, output = timed(cmd)
            # the run's table: stage │ status │ items │ kept │ rejected │ resumed │ seconds │ reasons
            rows = [line.split("│") for line in output.splitlines() if line.startswith("│")]
            statuses = {cells[2].strip() for cells in rows if len(cells) == 10 and cells[1].strip()}
            if statuses - {"up-to-date"}:
                raise SystemExit(f"not a no-op ({sorted(statuses)}): {output[-1500:]}")
            walls.append(wall)
        print(f"{name:36s} min {min(walls):.2f} s, median {statistics.median(walls):.2f} s, "
              f"max {max(walls):.2f} s ({a.runs} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
