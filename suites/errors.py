"""Data errors of the suites package; ``str(error)`` is the one line shown to the user."""
from __future__ import annotations


class DataError(Exception):
    """A dataset cannot be used; the message is one line naming what and how to fix it."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))   # always one line


class MissingDatasetError(DataError):
    """The Minari dataset is not in the local datasets folder (and was not to be downloaded)."""


class CorruptDatasetError(DataError):
    """A dataset file exists but cannot be read (truncated HDF5, bad metadata, ...)."""


class UnknownDatasetError(DataError, ValueError):
    """A dataset key that no suite YAML defines (also a ValueError: it is bad input)."""
