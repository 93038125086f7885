"""Stage families: the science of each step (the engine does the bookkeeping)."""
