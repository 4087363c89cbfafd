"""Aggregators: how a per-unit expression becomes one network-level value (a ``Net``).

An aggregator reduces each unit's output (``unit``) and combines the units' results (``combine``).
For the mean, sum and mean-of-log a unit's result is the mean of its output (a Scalar stays as it is),
as EZNAS; ``swap_units`` keeps each unit's set of sample-wise patterns and counts their union, which is
SWAP's network-wide count. :func:`aggregate_units` is the one aggregation loop, used by ``Program`` and by
exported ``best_proxy.py`` files alike; it raises :class:`ProgramFailure` with the reason when the value
is not defined on this network."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from eznas.kernels import count_packed, pack_patterns
from eznas.primitives.base import PRIMITIVES, Net, PrimitiveSpec, Tensor


class ProgramFailure(Exception):
    """A program has no value on this network; ``str(exc)`` is the reason (an exception in a primitive,
    or a value that is not finite, and where)."""


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
                    name: str = "aggregator") -> float:
    """``combine(unit(unit_output(i, units[i])) for each unit)``. Raises ProgramFailure when there are
    no units, at the first unit whose output is not finite, when ``combine`` fails (e.g. a sum of
    values near 1e308 overflows) and when the result is not finite. ``unit_output`` raises its own
    ProgramFailure for a failing primitive; any other exception is named here."""
    if not units:
        raise ProgramFailure(f"{name}: the network has no units (convolutions the collector sees: eznas.stats)")
    parts = []
    for i, u in enumerate(units):
        try:
            part = unit(unit_output(i, u))
        except ProgramFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - a failing op makes the program invalid on this network
            raise ProgramFailure(f"{type(exc).__name__} in {name} at unit {i}") from None
        if isinstance(part, float) and not math.isfinite(part):
            raise ProgramFailure(f"not finite at unit {i} ({name})")
        parts.append(part)
    try:
        result = combine(parts)
    except Exception as exc:  # noqa: BLE001
        raise ProgramFailure(f"{type(exc).__name__} in {name}") from None
    if not math.isfinite(result):
        raise ProgramFailure(f"not finite: {name} over all units")
    return result


def _register(name: str, agg: Aggregator, doc: str) -> None:
    PRIMITIVES.register(name)(PrimitiveSpec(name, agg, (Tensor,), Net, doc))


_register("mean_units", Aggregator(unit_mean, combine_mean), "Mean of the unit scores (EZNAS).")
_register("sum_units", Aggregator(unit_mean, combine_sum),
          "Sum of the unit scores (Sweetimator's network-wide count).")
_register("meanlog_units", Aggregator(unit_mean, combine_meanlog),
          "Mean over units of log|score| (a zero score counts as 0).")
_register("swap_units", Aggregator(unit_patterns, combine_patterns),
          "Number of distinct sample-wise patterns of (output > 0) over all units together (SWAP's count).")
