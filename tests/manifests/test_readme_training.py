"""The README's "Training on the tokens" snippets run as written, on tiny-model outputs (the
store's and tokenizers' names substituted, nothing else)."""
from __future__ import annotations

import re
import shlex
from typing import Any

import torch.distributed as dist

from emoprep.manifests.reader import TokenDataset
from tests.helpers.cli import invoke, said
from tests.helpers.fixtures import TINY_AUDIO as AUDIO
from tests.helpers.fixtures import TINY_IMAGE as IMAGE
from tests.helpers.paths import REPO


def snippets() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Training on the tokens", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def commands() -> list[list[str]]:
    """The section's `emoprep …` command lines (```sh blocks)."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Training on the tokens", 1)[1]
    section = section.split("\n## ", 1)[0]
    return [shlex.split(line) for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S)
            for line in block.splitlines() if line.startswith("emoprep ")]


def test_the_v3_loop_runs(store):
    root, _ = store
    v3 = snippets()[0].replace('TokenDataset("emoprep-out"', f'TokenDataset({str(root)!r}, tokenizer="{IMAGE}"')
    scope: dict[str, Any] = {}
    exec(compile(v3, "README.md (V3)", "exec"), scope)  # noqa: S102 - the README's own code
    assert scope["tokens"].shape == (32, 197, 35) and scope["valence"].shape == (32,)


def test_the_v12_loop_and_the_ddp_sampler_run(v12, tmp_path):
    v12_code, ddp_code = snippets()[1], snippets()[2]
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


def _as_tiny(text: str, out: str, tokenizer: str) -> str:
    return text.replace("emoprep-out", out).replace("vit-base-patch16-224", tokenizer)


def test_the_export_commands_and_their_readers_run(v3, tmp_path, monkeypatch):
    hf_cmd, wds_cmd = commands()
    assert hf_cmd[:2] == ["emoprep", "export"] and "hf" in hf_cmd and "webdataset" in wds_cmd
    import datasets

    monkeypatch.chdir(tmp_path)  # the README's relative export folders
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")  # not the user's cache
    for cmd in (hf_cmd, wds_cmd):
        done = invoke(*(_as_tiny(a, str(v3), IMAGE) for a in cmd[1:]))
        assert done.exit_code == 0, said(done)
    hf_code, wds_code = snippets()[4], snippets()[5]
    scope: dict[str, Any] = {}
    exec(compile(_as_tiny(hf_code, str(v3), IMAGE), "README.md (HF)", "exec"), scope)  # noqa: S102
    assert scope["item"]["patches"].shape == (196, 32) and scope["item"]["cls"].shape == (32,)
    assert scope["ds"].features["emotion"].names[scope["item"]["emotion"]] in scope["ds"].features["emotion"].names
    exec(compile(_as_tiny(wds_code, str(v3), IMAGE), "README.md (WebDataset)", "exec"), scope)  # noqa: S102
    first = TokenDataset(v3, tokenizer=IMAGE, split="train")
    assert scope["tokens"].shape == (197, 32) and str(scope["tokens"].dtype) == "float16"
    assert scope["labels"]["sample_id"] == first.sample_ids[0]
    assert (scope["tokens"].astype("float32") == first.tokens(0)).all()
