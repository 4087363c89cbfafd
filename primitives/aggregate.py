"""Root primitives: how a program's per-unit outputs become one network score.

An aggregator reduces each unit's output (``unit``) and combines the units' results (``combine``).
For the mean, sum and mean-of-log a unit's result is the mean of its output (a Scalar stays as it is),
as EZNAS; ``swap_units`` keeps each unit's set of sample-wise patterns and counts their union, which is
SWAP's network-wide count."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from eznas.proxies.swap import count_packed, pack_patterns
from primitives.base import PRIMITIVES, PrimitiveSpec, Program, Tensor


@dataclass(frozen=True)
class Aggregator:
    unit: Callable[[torch.Tensor], Any]
    combine: Callable[[Sequence[Any]], float]


def unit_mean(out: torch.Tensor) -> float:
    out = out.double()
    return float(out if out.dim() == 0 else out.sum() / max(out.numel(), 1))


def unit_patterns(out: torch.Tensor) -> torch.Tensor:
    """Each element position's pattern of (out > 0) over the batch (dim 0), packed in an int64."""
    if out.dim() < 2 or out.shape[0] > 53:
        raise ValueError(f"swap_units needs a (batch <= 53, ...) tensor, got shape {tuple(out.shape)}")
    return pack_patterns((out > 0).flatten(1))


def _register(name: str, agg: Aggregator, doc: str) -> None:
    PRIMITIVES.register(name)(PrimitiveSpec(name, agg, (Tensor,), Program, doc))


_register("mean_units", Aggregator(unit_mean, lambda s: math.fsum(s) / len(s)),
          "Mean of the unit scores (EZNAS).")
_register("sum_units", Aggregator(unit_mean, math.fsum),
          "Sum of the unit scores (Sweetimator's network-wide count).")
_register("meanlog_units", Aggregator(unit_mean, lambda s: math.fsum(math.log(abs(v)) if v else 0.0 for v in s) / len(s)),
          "Mean over units of log|score| (a zero score counts as 0).")
_register("swap_units", Aggregator(unit_patterns, lambda s: float(count_packed(torch.cat(list(s)), 62))),
          "Number of distinct sample-wise patterns of (output > 0) over all units together (SWAP's count).")
