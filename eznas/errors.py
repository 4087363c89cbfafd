"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""
from __future__ import annotations


def reason(exc: BaseException) -> str:
    """An exception as one line: an EznasError's own first line, else ``Type: first line``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if isinstance(exc, EznasError) else f"{type(exc).__name__}: {text}"


class EznasError(Exception):
    """Base class: bad input (a file, a column, an arch string, a flag value)."""


class DataError(EznasError):
    """A data file or a column is missing or unreadable."""


class ArchError(EznasError, ValueError):
    """An architecture string (NB-201 cell, DARTS genotype, NDS record) is malformed."""
