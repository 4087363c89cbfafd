"""Programs: a typed tree whose root aggregates a per-unit expression over a network's units.

    prog = parse_program("sum_units(count_in(weight_grad_D, 0.0001, 0.0005))")
    prog.score(stats)        # one float per network (NaN when a unit fails or is not finite)
    str(prog)                # round-trips through parse_program

A leading ``-`` negates the network score (how an anti-correlated program is exported).

Terminals are bound by name to the collector's tensors; constants become 0-d float32 tensors.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
from deap import gp

from eznas.errors import EznasError
from eznas.gp.pset import make_pset
from eznas.stats import NAMES, NetworkStats, Unit, statistic
from primitives import PRIMITIVES, Scalar
from primitives.aggregate import aggregate_units
from primitives import Program as ProgramType


class ProgramError(EznasError):
    """A program string that does not parse, or whose root is not an aggregator."""


@dataclass
class Program:
    tree: gp.PrimitiveTree
    sign: int = 1  # -1: the network score is negated
    _keys: list[str] = field(default_factory=list, repr=False)  # subtree string per node (cache keys)
    _stops: list[int] = field(default_factory=list, repr=False)  # where each node's subtree ends

    def __post_init__(self) -> None:
        if not self.tree or self.tree[0].ret is not ProgramType:
            raise ProgramError(f"program {str(self.tree)!r} must start with an aggregator "
                               f"({', '.join(n for n in PRIMITIVES if PRIMITIVES.get(n).ret is ProgramType)})")

    def __str__(self) -> str:
        return ("-" if self.sign < 0 else "") + str(self.tree)

    def negated(self) -> "Program":
        return Program(self.tree, -self.sign)

    @property
    def terminals(self) -> set[str]:
        return {n.name for n in self.tree if isinstance(n, gp.Terminal) and n.name in NAMES}

    @property
    def aggregator(self):  # noqa: ANN201 - primitives.aggregate.Aggregator
        return PRIMITIVES.get(self.tree[0].name).fn

    def unit_output(self, tensors: dict[str, torch.Tensor], cache: dict[str, Any] | None = None) -> torch.Tensor:
        """The per-unit expression (the tree below the root) on one unit's tensors."""
        return self._eval(1, tensors, cache)[0]

    def score(self, stats: NetworkStats, caches: list[dict[str, Any]] | None = None) -> float:
        """Aggregate over units; NaN at the first unit that fails or whose output is not finite."""
        def output(i: int, unit: Unit) -> torch.Tensor:
            return self.unit_output(unit.tensors, caches[i] if caches is not None else None)

        agg = self.aggregator
        return aggregate_units(stats.units, output, agg.unit, agg.combine, self.sign)

    def _eval(self, i: int, env: dict[str, torch.Tensor], cache: dict[str, Any] | None) -> tuple[torch.Tensor, int]:
        node = self.tree[i]
        if cache is not None and isinstance(node, gp.Primitive):
            key = self.key(i)
            if key in cache:
                return cache[key], self._stops[i]
        if isinstance(node, gp.Primitive):
            args, j = [], i + 1
            for _ in node.args:
                value, j = self._eval(j, env, cache)
                args.append(value)
            value = PRIMITIVES.get(node.name).fn(*args)
            if cache is not None:
                cache[self.key(i)] = value
            return value, j
        if node.name in NAMES and node.name not in env:
            raise KeyError(f"statistic {node.name!r} was not collected")
        key = self.key(i)  # a leaf: a terminal's name or a constant's value
        if cache is not None and key in cache:  # read as a statistic (or made a tensor) once per unit
            return cache[key], i + 1
        value = statistic(env[node.name]) if node.name in env else torch.tensor(float(node.value))
        if cache is not None:
            cache[key] = value
        return value, i + 1

    def key(self, i: int) -> str:
        if not self._keys:
            subtrees = [self.tree.searchSubtree(k) for k in range(len(self.tree))]
            self._stops = [sub.stop for sub in subtrees]
            self._keys = [str(gp.PrimitiveTree(self.tree[sub])) for sub in subtrees]
        return self._keys[i]


def parse_program(text: str, pset: gp.PrimitiveSetTyped | None = None) -> Program:
    """Parse a program string (prefix order, as ``str(program)`` prints it); an unknown name, a type
    mismatch, a missing argument or a trailing token raises ProgramError naming it."""
    pset = pset or make_pset()
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    tokens = [t for t in re.split(r"[\s(),]+", body[1:] if sign < 0 else body) if t]
    expr: list = []
    expected: list[type] = [ProgramType]
    for tok in tokens:
        if not expected:
            raise ProgramError(f"program {text.strip()!r}: unexpected {tok!r} after a complete program")
        want = expected.pop(0)
        node = pset.mapping.get(tok)
        if node is None:
            try:
                node = gp.Terminal(float(tok), False, Scalar)
            except ValueError:
                raise ProgramError(f"program {text.strip()!r}: unknown name {tok!r}") from None
        if not issubclass(node.ret, want):
            raise ProgramError(f"program {text.strip()!r}: {tok!r} gives a {node.ret.__name__} where a "
                               f"{want.__name__} is needed")
        expr.append(node)
        if isinstance(node, gp.Primitive):
            expected[0:0] = list(node.args)
    if expected:
        raise ProgramError(f"program {text.strip()!r} is incomplete: {len(expected)} argument(s) missing")
    return Program(gp.PrimitiveTree(expr), sign)
