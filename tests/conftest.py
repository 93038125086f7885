"""Shared fixtures. Tests import their helpers as `tests.helpers.*` (the repository root is
on sys.path because `tests/` is a package); fixture modules shared across folders are plugins
listed here, so no test module imports a fixture by name."""
import os

# Tests must not depend on the machine's thread count or a GPU.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = ["tests.helpers.fixtures", "tests.helpers.deam"]
