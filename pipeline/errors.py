"""Errors the CLI maps to exit codes: 2 for usage/configuration, 1 for data/validation."""
from __future__ import annotations


class EmoprepError(Exception):
    exit_code = 1


class ConfigError(EmoprepError):
    """Wrong recipe, parameter, path or layout: the user must change the command (exit 2)."""

    exit_code = 2


class DataError(EmoprepError):
    """The data cannot be processed as a whole (exit 1); single bad items are rejects instead."""

    exit_code = 1
