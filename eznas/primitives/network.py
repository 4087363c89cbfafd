"""Network-level primitives: arithmetic on one float per network (aggregated sub-programs, network
terminals, constants). Safe forms: every op maps finite inputs to a finite output or to NaN (never an
exception), so a program is invalid on a network exactly when its value there is not finite.

**Pool-level ops** (:class:`PoolOp`, e.g. ``net_rank``) map the values of a whole pool of networks (those
scored together) to one value per network, as AZ-NAS's sum of log ranks does: a program that has one scores
pools, not single networks (``Program.pool_scores``)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from eznas.primitives.aggregate import ProgramFailure
from eznas.primitives.base import PRIMITIVES, Exponent, Factor, Net, PrimitiveSpec, primitive
from eznas.primitives.elementwise import add, mul, neg, sub

N2 = (Net, Net)


def checked(value: float, name: str) -> float:
    """``value`` if it is finite, else ProgramFailure naming the operation that made it."""
    if not math.isfinite(value):
        raise ProgramFailure(f"not finite in {name}")
    return value


# the element-wise forms compute the same on floats: one function, registered at both levels
for _name, _fn in (("net_add", add), ("net_sub", sub), ("net_mul", mul)):
    primitive(_name, N2, Net)(_fn)
primitive("net_neg", (Net,), Net)(neg)


@primitive("net_div", N2, Net)
def net_div(a: float, b: float) -> float:
    """a / b where b != 0, else 0."""
    return a / b if b != 0 else 0.0


@primitive("net_log", (Net,), Net)
def net_log(a: float) -> float:
    """log |a| where a != 0, else 0."""
    return math.log(abs(a)) if a != 0 and math.isfinite(a) else (0.0 if a == 0 else math.nan)


@primitive("net_exp", (Net,), Net)
def net_exp(a: float) -> float:
    """exp(min(a, 30))."""
    return math.exp(min(a, 30.0)) if not math.isnan(a) else math.nan


@primitive("net_pow", (Net, Exponent), Net)
def net_pow(a: float, e: float) -> float:
    """sign(a) |a|^e (0 where a = 0 and e < 0); NaN where it overflows."""
    if a == 0:
        return 0.0
    try:
        return math.copysign(abs(a) ** e, a)
    except OverflowError:
        return math.nan


@primitive("net_scale", (Net, Factor), Net)
def net_scale(a: float, c: float) -> float:
    """c * a."""
    return c * a


@primitive("net_shift", (Net, Factor), Net)
def net_shift(a: float, c: float) -> float:
    """a + c."""
    return a + c


@dataclass(frozen=True)
class PoolOp:
    """A pool-level op: ``fn(values)`` maps one value per network of a pool (NaN where a network has none)
    to one per network (NaN where the input was)."""

    fn: Callable[[Sequence[float]], list[float]]

    def __call__(self, values: Sequence[float]) -> list[float]:
        return self.fn(values)


def log_ranks(values: Sequence[float]) -> list[float]:
    """log(rank / m) of each finite value among the m finite ones (rank 1 the smallest, ties share their
    average rank: the largest value gets log 1 = 0); NaN where the value is not finite."""
    finite = sorted((v, i) for i, v in enumerate(values) if math.isfinite(v))
    out = [math.nan] * len(values)
    start = 0
    while start < len(finite):
        end = start
        while end + 1 < len(finite) and finite[end + 1][0] == finite[start][0]:
            end += 1
        rank = (start + end) / 2 + 1  # the average of ranks start+1 .. end+1
        for _, i in finite[start:end + 1]:
            out[i] = math.log(rank / len(finite))
        start = end + 1
    return out


PRIMITIVES.register("net_rank")(PrimitiveSpec(
    "net_rank", PoolOp(log_ranks), (Net,), Net,
    "Pool-level: log(rank / m) of the network's value among the m networks of the pool scored together "
    "(AZ-NAS's combination; a sum of these is a rank ensemble)."))


def each(fn: Callable[..., float], name: str, *columns: Sequence[float]) -> list[float]:
    """``fn`` network by network over a pool's columns (the exported form of a pool program's arithmetic):
    NaN where an input is NaN or the result is not finite."""
    out = []
    for args in zip(*columns):
        value = fn(*args) if all(math.isfinite(a) for a in args) else math.nan
        out.append(value if math.isfinite(value) else math.nan)
    return out
