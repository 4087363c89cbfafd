"""Per-unit network statistics: the named tensors that proxies and evolved programs read.

* :mod:`eznas.stats.units`: the unit rule a network declares and the units a traced forward pass finds;
* :mod:`eznas.stats.passes`: the hooked D, N and P passes that record each unit's tensors (torch only: an
  exported proxy carries them);
* :mod:`eznas.stats.collector`: the names, the collector's config and storage (:func:`collect`), and the
  cache key over everything that changes the numbers (:func:`stats_key`, ``COLLECTOR_VERSION``).

The public API (docs/statistics-and-language.md) is importable from here.
"""
from eznas.stats.collector import COLLECTOR_VERSION, CollectorConfig, collect, stats_key

__all__ = ["COLLECTOR_VERSION", "CollectorConfig", "collect", "stats_key"]
