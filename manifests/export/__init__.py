"""`emoprep export`: a run's token stores as a Hugging Face dataset folder or WebDataset tar
shards. `step.py` runs an export (keyed, resumable); `source.py` reads the stores;
`hf_dataset.py` + `hf_card.py` and `webdataset.py` write the two formats; `hub.py` pushes a
folder to the Hugging Face Hub."""
