"""Module hooks that are always removed, however the block that needed them ends."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

from torch.utils.hooks import RemovableHandle


@contextmanager
def attached(handles: Iterable[RemovableHandle]) -> Iterator[None]:
    """``with attached(m.register_forward_hook(f) for m in modules): net(x)``"""
    handles = list(handles)
    try:
        yield
    finally:
        for h in handles:
            h.remove()
