"""SIGKILL every recipe's stages, not only thesis-v3's: thesis-v12 (clips, EnCodec + patch-28
ViT stores), seed001 (mel arrays), seed002 (pairs), seed003 (features), seed004 (salient,
PMEmo). Each recipe is run once cleanly, then killed at random moments and re-run: the tree
must be byte-identical to the clean one, with no temp files left (`make test-slow`)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.paths import EMOPREP
from tests.helpers.treecmp import diff, done_but_incomplete, snapshot, temp_files

pytestmark = pytest.mark.system  # end to end in subprocesses; `-m 'not slow and not system'` skips them

# the real code paths with tiny models, so a kill lands in every stage within minutes
TINY = {"thesis-v12": ["--set", "tokens.tokenizers={clips = 'encodec-tiny-test', images = 'vit-tiny-test'}"]}
RECIPES = ["thesis-v12", "seed001-mel", "seed002-pairs", "seed003-features", "seed004-salient"]


def _args(recipe: str, demo: Path, out: Path) -> list[str]:
    return [str(EMOPREP), "run", "--recipe", recipe, "--data-root", str(demo), "--out", str(out), "-q",
            *TINY.get(recipe, [])]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_sigkill_anywhere_in_a_recipe_then_rerun_is_byte_identical(recipe, demo_data, tmp_path):
    clean = tmp_path / "clean"
    t0 = time.time()
    done = subprocess.run(_args(recipe, demo_data, clean), capture_output=True, text=True, timeout=1800)
    seconds = time.time() - t0
    assert done.returncode == 0, done.stderr
    expected = snapshot(clean)
    rng = random.Random(recipe)
    for i, delay in enumerate(rng.uniform(0.5, seconds) for _ in range(4)):
        out = tmp_path / f"killed{i}"
        proc = subprocess.Popen(_args(recipe, demo_data, out), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)  # the run and every worker process
        proc.wait()
        assert done_but_incomplete(out) == [], f"{recipe}: killed after {delay:.1f} s"
        again = subprocess.run(_args(recipe, demo_data, out), capture_output=True, text=True, timeout=1800)
        assert again.returncode == 0, again.stderr
        assert diff(expected, snapshot(out)) == [], f"{recipe}: killed after {delay:.1f} s"
        assert temp_files(out) == []
