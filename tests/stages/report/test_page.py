"""index.html (page.py) rendered by a real headless browser (Chromium) on the demo data."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def dump_dom(page: Path, profile: Path) -> str:
    assert CHROMIUM is not None
    proc = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; "
                                               ".ci/run installs it): the browser test cannot run here")
def test_report_page_renders_in_headless_chromium(demo_run, tmp_path):
    index = demo_run / "report" / "index.html"
    r = json.loads((demo_run / "report" / "report.json").read_text())
    dom = dump_dom(index, tmp_path / "profile")
    attrs = dict(re.findall(r'data-images-(total|loaded|failed)="(\d+)"', dom))
    assert attrs, "the page's image check did not run (no data-images-* attributes)"
    assert int(attrs["failed"]) == 0
    assert int(attrs["loaded"]) == int(attrs["total"]) == len(r["figures"]) >= 7
    assert not re.search(r'(src|href)="(https?:)?//', dom)           # nothing from the network
    rejects = pd.read_parquet(demo_run / "manifests" / "rejects.parquet")
    for (stage, reason), n in Counter(zip(rejects["stage"], rejects["reason"], strict=True)).items():
        row = re.search(rf'<tr data-reason="{re.escape(reason)}" data-stage="{re.escape(stage)}">(.*?)</tr>', dom)
        assert row and f'<td class="num">{n}</td>' in row.group(1), (stage, reason)
    assert re.search(r'<tr data-block="1-1000" data-verdict="crossed"', dom)
    n_fixed = int(pd.read_parquet(demo_run / "manifests" / "deam.parquet")["static_fixed"].sum())
    assert f'<b id="n-fixed">{n_fixed}</b>' in dom
    split = pd.read_parquet(demo_run / "manifests" / "split.parquet")
    for name, n in Counter(split["split"]).items():
        assert f'<div class="card"><b>{n:,}</b>{name} split</div>' in dom
