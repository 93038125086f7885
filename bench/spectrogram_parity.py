"""Pixel parity of the spectrogram stage with riffusion's converter on real-format audio.

Runs on the demo dataset's chunks (MP3-decoded, like DEAM) and prints, per chunk set, how
often the stage, riffusion's float32 converter (the torch replica in tests/) and the exact
float64 transform disagree. Usage: python bench/spectrogram_parity.py [--out DIR]
(DIR = an output root where the chunks stage has run; default: runs it on the demo data).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import tests.helpers.riffusion_reference as rr  # noqa: E402
from emoprep.stages.spectrogram.riffusion import riffusion_image  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "parity")
    args = ap.parse_args()
    if not (args.out / "manifests" / "chunks.parquet").exists():
        subprocess.run([str(Path(sys.executable).with_name("emoprep")), "run", "--stage", "chunks",
                        "--out", str(args.out), "-q"], check=True)
    chunks = pq.read_table(args.out / "manifests" / "chunks.parquet").to_pandas()
    stats = {"ours-riffusion": [], "riffusion-exact": [], "ours-exact": []}
    worst = 0
    for path in chunks["path"]:
        audio, _ = sf.read(args.out / path, dtype="float32")
        ours = riffusion_image(audio)[0].astype(int)
        riff = np.asarray(rr.image_from_float_audio(audio)[0], dtype=int)
        exact = np.asarray(rr.image_from_float_audio(audio, exact=True)[0], dtype=int)
        worst = max(worst, int(np.abs(ours - riff).max()))
        stats["ours-riffusion"].append((ours != riff).mean())
        stats["riffusion-exact"].append((riff != exact).mean())
        stats["ours-exact"].append((ours != exact).mean())
    print(f"{len(chunks)} demo chunks (MP3-decoded synthetic music), 512 x 501 px each")
    print(f"max |stage - riffusion| = {worst} gray level(s)")
    for k, v in stats.items():
        v = np.array(v) * 100
        print(f"  {k:16s} pixels differing: median {np.median(v):.3f} %, max {v.max():.3f} %")


if __name__ == "__main__":
    main()
