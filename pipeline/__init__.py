"""emoprep: emotion-annotated music and image datasets to train-ready token stores."""
__version__ = "0.1.0"
