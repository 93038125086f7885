"""The `spectrogram` stage: riffusion's mel image (thesis v3) and seed 001's mel clips."""
