"""Architecture search guided by a proxy: strategies (``list_strategies()``), per-space encodings and the
search run (``Search``, ``SearchConfig``); the CLI is ``search.py``."""
from eznas.search.strategies import list_strategies

__all__ = ["list_strategies"]
