"""Error types of the data layer: each names the file, URL or key that fixes it."""

from __future__ import annotations


class DataError(Exception):
    """Base class of every data-layer error."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """An archive is neither in the data directory nor downloadable (offline, manual source)."""


class ChecksumError(DataError, ValueError):
    """A downloaded file's checksum differs from the upstream one (corrupt or truncated)."""


class DatasetLayoutError(DataError, ValueError):
    """An archive lacks expected members or holds the wrong number of classes/images."""


class PreparedDataError(DataError, ValueError):
    """A prepared dataset differs from what ``prepare`` wrote (truncated, overwritten, corrupted)
    or records no checksums to tell (made before they were recorded)."""


class IndexValidationError(DataError, ValueError):
    """A retrieval index breaks the contract in :mod:`dmlstudy.data.index`."""
