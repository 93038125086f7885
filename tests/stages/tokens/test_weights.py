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
