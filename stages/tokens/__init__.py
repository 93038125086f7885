"""The `tokens` stage (`stage.py`): ViT (`vit`) and EnCodec (`encodec`) tokenizers, their weights
(`weights`), what differs between them (`families`), and the parts of the stage: parameters
(`params`), inputs and labels (`inputs`), decoding in DataLoader workers (`decode`), computing
a shard (`encode`) and the index rows (`index_rows`)."""
