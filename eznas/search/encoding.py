"""Kept for old imports: a space's encoding is ``get_space(name).encoding()`` (``eznas.spaces.encoding``)."""
from __future__ import annotations

from eznas.errors import EznasError
from eznas.spaces import get_space, searchable_spaces
from eznas.spaces.encoding import Choices, Encoding

__all__ = ["Choices", "Encoding", "get_encoding"]


def get_encoding(space: str) -> Encoding:
    """The registered space's encoding (EznasError where it has none)."""
    encoding = get_space(space).encoding()
    if encoding is None:
        raise EznasError(f"{space} cannot be searched (no encoding); valid: {', '.join(searchable_spaces())}")
    return encoding
