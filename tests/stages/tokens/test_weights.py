"""Weights and compute shared by the tokenizers: resolving the device and autocast dtype."""
from __future__ import annotations

import pytest

from emoprep.pipeline.errors import ConfigError
from emoprep.stages.tokens import weights


def test_compute_resolution():
    assert weights.resolve_compute("cpu", "auto") == weights.Compute("cpu", None)
    assert weights.resolve_compute("cpu", "bf16").dtype_name == "bfloat16"
    assert weights.resolve_compute("auto", "none").device in ("cpu", "cuda")
    for device, autocast in (("cpu", "float16"), ("tpu", "auto"), ("cpu", "int8")):
        with pytest.raises(ConfigError):
            weights.resolve_compute(device, autocast)


def test_looking_up_the_hf_cache_leaves_the_process_online(monkeypatch, tmp_path):
    """A notebook that imports emoprep keeps its Hub access: the cache lookup sets no
    offline switch, and finds a cached snapshot without any network call."""
    import os
    import socket

    from emoprep.stages.tokens.weights import hf_cache_dir

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # read at import
    snap = tmp_path / "models--org--tiny" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (snap / "model.safetensors").write_bytes(b"x")
    (tmp_path / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "models--org--tiny" / "refs" / "main").write_text("abc123")

    def no_network(*args, **kwargs):
        raise AssertionError("network access during a cache lookup")

    monkeypatch.setattr(socket, "create_connection", no_network)
    assert hf_cache_dir("org/tiny") == snap
    assert hf_cache_dir("org/absent") is None
    assert "HF_HUB_OFFLINE" not in os.environ
