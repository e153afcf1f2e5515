"""User-facing error types.

Every error a user can cause by bad input names the file / field, what was expected and what
was found. The CLI prints these as one line (no traceback) and exits with status 2.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """Base class for errors caused by user input (configs, files, arguments)."""


class ConfigError(ToolkitError):
    """A config file or a ``--cfg-options`` entry is missing or malformed."""


class CheckpointError(ToolkitError):
    """A checkpoint file is missing, truncated or not a checkpoint."""


class UnknownComponentError(ToolkitError, KeyError):
    """A ``type=`` name that no registry knows. Subclasses KeyError for mmengine callers."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class EpisodeFileError(ToolkitError):
    """An episode file is corrupt, truncated or inconsistent with its schema."""


class ShapeError(ToolkitError, ValueError):
    """A tensor / array argument has the wrong shape, dtype or size (names the argument)."""
