"""Every error autocompress raises on purpose derives from :class:`AutocompressError`.

The CLI prints ``str(error)`` as one line and exits non-zero; messages therefore say what
failed, what was expected and what was found, and give a hint where there is one.
"""

from __future__ import annotations


class AutocompressError(Exception):
    """Base class of all autocompress errors."""


class ConfigError(AutocompressError, ValueError):
    """A config, plan, search space or target file is invalid."""


class CheckpointError(AutocompressError):
    """A model file cannot be read: not a checkpoint, corrupt, wrong kind, unsupported."""


class DataError(AutocompressError):
    """An experiment folder or dataset item is missing or malformed."""


class CompressionError(AutocompressError):
    """A compression plan cannot be applied to a model."""


class ScoringError(AutocompressError):
    """A metric cannot be computed."""


class ExportError(AutocompressError):
    """An ONNX bundle cannot be built or fails its own checks."""


class StoreError(AutocompressError):
    """The database cannot be read or written, or holds an incompatible study."""


class SearchError(AutocompressError):
    """A search cannot start or continue."""


__all__ = [
    "AutocompressError",
    "CheckpointError",
    "CompressionError",
    "ConfigError",
    "DataError",
    "ExportError",
    "ScoringError",
    "SearchError",
    "StoreError",
]
