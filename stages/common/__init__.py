"""The stage author's shared toolkit on the science side: audio and image I/O, reading
upstream audio, files named by a dataset's tables, and names (sample id -> file name)."""
