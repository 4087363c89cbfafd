"""The primitive registry and the GP types.

Types (DEAP's typed GP treats a subclass as usable wherever its parent type is required):

* ``Tensor``   - a per-unit tensor of any shape (a statistic, or what an op made of one);
* ``Scalar``   - a 0-d per-unit tensor (a reduction's result, or a constant); a Scalar is also a Tensor;
* ``Net``      - a network-level value, one float per network: an aggregator's result over all units, a
  network terminal (``params``, ``flops``, ``n_units``, ``depth``), or arithmetic on such values. The root
  of every program is a Net;
* ``Factor``, ``Exponent`` - network-level constants (``net_scale``/``net_shift`` and ``net_pow``).

Every primitive is pure: it never modifies its inputs, and its dims are explicit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from eznas.registry import Registry, doc_line


class Tensor:
    """A per-unit tensor of any shape."""


class Scalar(Tensor):
    """A 0-d tensor."""


class Net:
    """A network-level value (a float per network); the type of every program's root."""


class Factor:
    """A network-level constant: a scale or a shift."""


class Exponent:
    """A network-level constant: a power."""


@dataclass(frozen=True)
class PrimitiveSpec:
    name: str
    fn: Callable
    args: tuple[type, ...]
    ret: type
    doc: str


PRIMITIVES: Registry[PrimitiveSpec] = Registry("primitive")


def primitive(name: str, args: tuple[type, ...], ret: type) -> Callable[[Callable], Callable]:
    """Register ``fn`` as primitive ``name`` with argument and return types."""

    def decorator(fn: Callable) -> Callable:
        PRIMITIVES.register(name)(PrimitiveSpec(name, fn, args, ret, doc_line(fn)))
        return fn

    return decorator


def list_primitives(pattern: str = "*") -> list[str]:
    return PRIMITIVES.names(pattern)


def get_primitive(name: str) -> PrimitiveSpec:
    return PRIMITIVES.get(name)
