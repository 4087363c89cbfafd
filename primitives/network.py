"""Network-level primitives: arithmetic on one float per network (aggregated sub-programs, network
terminals, constants). Safe forms: every op maps finite inputs to a finite output or to NaN (never an
exception), so a program is invalid on a network exactly when its value there is not finite."""
from __future__ import annotations

import math

from primitives.aggregate import ProgramFailure
from primitives.base import Exponent, Factor, Net, primitive
from primitives.elementwise import add, mul, neg, sub

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
