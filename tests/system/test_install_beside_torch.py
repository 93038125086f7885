"""`pip install emoprep` into a training environment keeps the torch it already holds, and
the reader works there (issue 20). Slow: the other torch is this machine's torch 2.14.1
(a CUDA build with its NVIDIA wheels, ~5.5 GB in the venv), installed from local disk."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emoprep.manifests.reader import TokenDataset
from tests.helpers.paths import REPO
from tests.helpers.token_fixtures import build_store

pytestmark = pytest.mark.system  # end to end in subprocesses; `-m 'not slow and not system'` skips them

OTHER_TORCH = "2.14.1"


@pytest.mark.slow
def test_pip_install_keeps_the_environments_torch_and_reads_a_store(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_store(out, tokenizer="vit-tiny-test")
    expected = TokenDataset(out, tokenizer="vit-tiny-test")
    np.save(tmp_path / "expected.npy", np.stack([expected[i]["tokens"].numpy() for i in range(len(expected))]))

    venv = tmp_path / "trainer-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    done = subprocess.run([*pip, f"torch=={OTHER_TORCH}"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"torch {OTHER_TORCH} is not installable here: {done.stderr[-500:]}")
    src = tmp_path / "src"  # a copy: setuptools writes build/ into the source folder
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "emoprep-out", "bench", "__pycache__"))
    done = subprocess.run([*pip, str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    code = ("import json, sys, numpy as np, torch\n"
            "from emoprep.manifests.reader import TokenDataset\n"
            f"ds = TokenDataset({str(out)!r}, tokenizer='vit-tiny-test')\n"
            "got = np.stack([ds[i]['tokens'].numpy() for i in range(len(ds))])\n"
            f"same = bool(np.array_equal(got, np.load({str(tmp_path / 'expected.npy')!r})))\n"
            "print(json.dumps({'torch': torch.__version__, 'same': same, 'n': len(ds)}))")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["torch"].split("+")[0] == OTHER_TORCH, info
    assert info["same"] and info["n"] == len(expected), info
