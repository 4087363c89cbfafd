"""Root primitives: how a program's per-unit outputs become one network score.

An aggregator reduces each unit's output (``unit``) and combines the units' results (``combine``).
For the mean, sum and mean-of-log a unit's result is the mean of its output (a Scalar stays as it is),
as EZNAS; ``swap_units`` keeps each unit's set of sample-wise patterns and counts their union, which is
SWAP's network-wide count. :func:`aggregate_units` is the one scoring loop, used by ``Program.score``
and by exported ``best_proxy.py`` files alike."""
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
    """The mean in float64: not finite exactly when an element is not (float64 sums of float32 values
    cannot overflow, and a float64 overflow would make the network score not finite anyway)."""
    if out.dim() == 0:
        return float(out)
    return float(out.double().sum() / max(out.numel(), 1))


def unit_patterns(out: torch.Tensor) -> torch.Tensor | float:
    """Each element position's pattern of (out > 0) over the batch (dim 0), packed in an int64; NaN
    when an element is not finite."""
    if out.dim() < 2 or out.shape[0] > 53:
        raise ValueError(f"swap_units needs a (batch <= 53, ...) tensor, got shape {tuple(out.shape)}")
    if not bool(torch.isfinite(out).all()):
        return math.nan
    return pack_patterns((out > 0).flatten(1))


def combine_mean(scores: Sequence[float]) -> float:
    return math.fsum(scores) / len(scores)


def combine_sum(scores: Sequence[float]) -> float:
    return math.fsum(scores)


def combine_meanlog(scores: Sequence[float]) -> float:
    return math.fsum(math.log(abs(v)) if v else 0.0 for v in scores) / len(scores)


def combine_patterns(patterns: Sequence[torch.Tensor]) -> float:
    return float(count_packed(torch.cat(list(patterns)), 62))


def aggregate_units(units: Sequence[Any], unit_output: Callable[[int, Any], torch.Tensor],
                    unit: Callable[[torch.Tensor], Any], combine: Callable[[Sequence[Any]], float],
                    sign: int = 1) -> float:
    """``sign * combine(unit(unit_output(i, units[i])) for each unit)``; NaN when there are no units, at
    the first unit whose output fails or is not finite (``unit`` gives NaN then), and when the result is
    not finite."""
    if not units:
        return math.nan
    parts = []
    for i, u in enumerate(units):
        try:
            part = unit(unit_output(i, u))
        except Exception:  # noqa: BLE001 - a failing op makes the program invalid on this network
            return math.nan
        if isinstance(part, float) and not math.isfinite(part):
            return math.nan
        parts.append(part)
    result = sign * combine(parts)
    return result if math.isfinite(result) else math.nan


def _register(name: str, agg: Aggregator, doc: str) -> None:
    PRIMITIVES.register(name)(PrimitiveSpec(name, agg, (Tensor,), Program, doc))


_register("mean_units", Aggregator(unit_mean, combine_mean), "Mean of the unit scores (EZNAS).")
_register("sum_units", Aggregator(unit_mean, combine_sum),
          "Sum of the unit scores (Sweetimator's network-wide count).")
_register("meanlog_units", Aggregator(unit_mean, combine_meanlog),
          "Mean over units of log|score| (a zero score counts as 0).")
_register("swap_units", Aggregator(unit_patterns, combine_patterns),
          "Number of distinct sample-wise patterns of (output > 0) over all units together (SWAP's count).")
