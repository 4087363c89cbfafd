"""eznas: discover zero-cost NAS proxies by genetic programming, and score architectures with them.

    import eznas
    eznas.list_proxies()                                       # the registered proxies
    eznas.score(model, images, proxies=("meco", "synflow"))    # {name: value} for your own model
    eznas.score_pool(models, images, proxies=("az_nas",))      # pool-level proxies rank models among themselves

Imports are lazy: ``import eznas`` loads torch only when one of these is first used.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"  # the one place of the version: pyproject.toml reads it (dynamic)
__all__ = ["list_proxies", "score", "score_pool"]


def __getattr__(name: str) -> Any:
    if name in ("score", "score_pool"):
        from eznas import api
        return getattr(api, name)
    if name == "list_proxies":
        from eznas.proxies import list_proxies
        return list_proxies
    raise AttributeError(f"module 'eznas' has no attribute {name!r}")
