"""The one error hierarchy of unsupseg.

Every error the library raises on purpose is an :class:`UnsupsegError`; its message says
what was wrong and what is accepted, in one line, so the command line prints it as it is
(exit status 2). The subclasses tell apart what a caller may want to catch on its own.
They also derive from :class:`ValueError`, the built-in for "a value I cannot use", so
``except ValueError`` keeps working for callers that expect it.

======================  ================================================================
``ConfigError``         invalid settings or option values, a clash with an earlier run
``ImageReadError``      an image file that is missing, truncated or not an image
``DatasetError``        a data set that is missing, incomplete or in another layout
``CheckpointError``     a file that is not an unsupseg checkpoint, or of another model
``RunFolderError``      a run folder or summary (config.json, metrics.csv, JSON) that
                        is missing or corrupt
======================  ================================================================
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "ImageReadError",
    "RunFolderError",
    "UnsupsegError",
]


class UnsupsegError(ValueError):
    """Base of every error unsupseg raises on purpose; the message is one line."""


class ConfigError(UnsupsegError):
    """Settings or option values that cannot be used; the message says what to change."""


class ImageReadError(UnsupsegError):
    """An input file is missing, is not an image, or cannot be decoded."""


class DatasetError(UnsupsegError):
    """A data set is missing, incomplete or not in the expected on-disk layout."""


class CheckpointError(UnsupsegError):
    """A file that is not an unsupseg checkpoint, or one of another preset or model."""


class RunFolderError(UnsupsegError):
    """A run folder or a summary file that is missing, incomplete or corrupt."""
