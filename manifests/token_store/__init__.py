"""The token store on disk (SPEC §5.3): sharded NPY arrays plus a Parquet index."""
