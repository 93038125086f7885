"""Segments of songs: 46 s `clips` and 5 s `chunks` (thesis), the 30 s `salient` window
(seed 004)."""
