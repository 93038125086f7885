"""The `tokens` stage: ViT (`vit`) and EnCodec (`encodec`) tokenizers, their weights
(`weights`), what differs between them (`families`), and the stage that writes token stores."""
