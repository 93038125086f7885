"""The README's "Training on the tokens" snippets run as written, on tiny-model outputs (the
store's and tokenizers' names substituted, nothing else)."""
from __future__ import annotations

import re
from typing import Any

import torch.distributed as dist

from tests.helpers.paths import REPO
from tests.manifests.conftest import AUDIO, IMAGE


def _snippets() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Training on the tokens", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_v3_loop_runs(store):
    root, _ = store
    v3 = _snippets()[0].replace('TokenDataset("emoprep-out"', f'TokenDataset({str(root)!r}, tokenizer="{IMAGE}"')
    scope: dict[str, Any] = {}
    exec(compile(v3, "README.md (V3)", "exec"), scope)  # noqa: S102 - the README's own code
    assert scope["tokens"].shape == (32, 197, 35) and scope["valence"].shape == (32,)


def test_the_v12_loop_and_the_ddp_sampler_run(v12, tmp_path):
    v12_code, ddp_code = _snippets()[1], _snippets()[2]
    for real, tiny in (("emoprep-out", str(v12)), ("encodec-24khz", AUDIO), ("vit-patch28-h2048", IMAGE)):
        v12_code = v12_code.replace(real, tiny)
    scope: dict[str, Any] = {}
    exec(compile(v12_code, "README.md (V1-2)", "exec"), scope)  # noqa: S102 - the README's own code
    assert scope["audio"].shape == (2, 4, 753) and scope["image"].shape == (6, 196, 35)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        exec(compile(ddp_code, "README.md (DDP)", "exec"), scope)  # noqa: S102 - the README's own code
    finally:
        dist.destroy_process_group()
    assert scope["sampler"].num_replicas == 1 and len(scope["sampler"]) == len(scope["sampler"].batches(0))
