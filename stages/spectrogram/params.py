"""The spectrogram stage's parameters: one frozen dataclass for both transforms, so every value
that decides pixels or arrays enters the stage fingerprint."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SpectrogramParams:
    """Every parameter that decides the pixels (riffusion's SpectrogramParams defaults) or the
    seed-001 arrays; all enter the stage fingerprint."""

    kind: Literal["riffusion", "seed001-mel"] = "riffusion"
    # riffusion transform (riffusion/spectrogram_params.py: 10 ms step, 100 ms window,
    # 400 ms padded window, 512 mel bands 0–10 kHz, HTK, no norm, power 0.25)
    sample_rate: int = 44100
    n_fft: int = 17640
    win_length: int = 4410
    hop_length: int = 441
    n_mels: int = 512
    f_min: float = 0.0
    f_max: float = 10000.0
    image_power: float = 0.25
    size: int = 224
    keep_fullres: bool = False
    # seed-001 mel clips (seed paper 001 §3.2; values the paper leaves open are ours, see
    # `seed001_mel`)
    seed001_sample_rate: int = 22050
    seed001_clip_s: float = 3.0
    seed001_n_mels: int = 128
    seed001_n_fft: int = 1024
    seed001_hop_length: int = 512
    seed001_target_rms_dbfs: float = -20.0
    seed001_trim_top_db: float = 60.0
    seed001_top_db: float = 80.0

    def __post_init__(self) -> None:
        positive = ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "size",
                    "seed001_sample_rate", "seed001_n_mels", "seed001_n_fft", "seed001_hop_length")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} = {getattr(self, name)} must be positive")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} exceeds n_fft {self.n_fft}")
        if not 0.0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={self.f_min}, "
                             f"f_max={self.f_max}, sample_rate={self.sample_rate}")
        if not self.image_power > 0:
            raise ValueError(f"image_power = {self.image_power} must be positive")
        if not self.seed001_clip_s > 0:
            raise ValueError(f"seed001_clip_s = {self.seed001_clip_s} must be positive")


DEFAULT_PARAMS = SpectrogramParams()
