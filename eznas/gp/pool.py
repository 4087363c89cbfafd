"""A program's scores of the networks of a pool, from rows of network-level values (one row per network).

``pool_scores`` combines each network's frontier values (``Program.network_values``): pool ops rank the
networks, the other ops run network by network. ``table_scores`` gives the same numbers from rows of cached
network-level values (features, proxy terminals, aggregates), a column (one node over every network) at a
time, as fitness scores. :class:`PoolScoring` is mixed into :class:`eznas.gp.program.Program`.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from deap import gp

from eznas.gp.pset import is_aggregator, is_pool_op
from eznas.primitives import PRIMITIVES
from eznas.primitives.aggregate import ProgramFailure
from eznas.primitives.network import checked


class PoolScoring:
    """``pool_scores`` and ``table_scores``, over the program's ``tree``, ``sign``, subtree keys (``key``),
    subtree ends (``stops``), ``pooled`` nodes and frontier (``_frontier``), which ``Program`` defines."""

    tree: gp.PrimitiveTree
    sign: int

    def pool_scores(self, rows: Sequence[Mapping[str, float | str]]) -> list[float | str]:
        """The score of each network of a pool from its ``network_values`` (one row per network): a float,
        or the reason the program is not defined on that network. A network where a frontier value is not
        defined has no score and takes no part in the pool (as AZ-NAS's pool: the archs every component
        is defined on); pool ops rank the others."""
        keys = self.frontier()
        reasons = [next((r for r in (_defined(row[k], k) if k in row else _missing(k) for k in keys)
                         if isinstance(r, str)), None) for row in rows]
        scored = iter(self._pool(0, [row for row, r in zip(rows, reasons) if r is None]))
        return [r if r is not None else (v if isinstance(v := next(scored), str) else self.sign * v)
                for r in reasons]

    def _pool(self, i: int, rows: Sequence[Mapping[str, float | str]]) -> list[float | str]:
        node = self.tree[i]
        if isinstance(node, gp.Terminal) and not isinstance(node.value, str):
            return [float(node.value)] * len(rows)
        if not self.pooled[i]:
            key = self.key(i)
            return [row[key] for row in rows]
        args, j = [], i + 1
        for _ in node.args:
            args.append(self._pool(j, rows))
            j = self.stops[j]
        if is_pool_op(node):
            (arg,) = args
            ranked = PRIMITIVES.get(node.name).fn([math.nan if isinstance(v, str) else v for v in arg])
            return [v if isinstance(v, str) else r for v, r in zip(arg, ranked)]
        return _apply(node.name, args)

    def table_scores(self, rows: Sequence[Mapping[str, float | str]],
                     shared: dict[str, list[float | str] | None] | None = None) -> list[float | str]:
        """``pool_scores`` of each row's ``network_values``, for rows of cached network-level values (the
        features, proxy terminals and aggregates of each network of a pool): the same numbers, computed a
        column (one node over every network) at a time. ``shared`` holds the columns of the subtrees whose
        keys it has (a key mapped to None: computed here, then kept), for programs that share subtrees on
        the same rows (blends of the same parts)."""
        parts: dict[str, list[float | str]] = {}
        for i in self._frontier():
            parts[self.key(i)] = [_defined(v, self.key(i)) for v in self._column(i, rows, shared)]
        return self.pool_scores([dict(zip(parts, values)) for values in zip(*parts.values())])

    def _column(self, i: int, rows: Sequence[Mapping[str, float | str]],
                shared: dict[str, list[float | str] | None] | None) -> list[float | str]:
        """Node ``i``'s value on each row, a string where it is not defined (as ``Program._net`` raises it)."""
        key, node = self.key(i), self.tree[i]
        if shared is not None and (found := shared.get(key)) is not None:
            return found
        if isinstance(node, gp.Terminal):
            column = [float(node.value)] * len(rows) if not isinstance(node.value, str) else \
                [row_terminal(row, node.name) for row in rows]
        elif is_aggregator(node):
            column = [_aggregate(row, key) for row in rows]
        else:
            args, j = [], i + 1
            for _ in node.args:
                args.append(self._column(j, rows, shared))
                j = self.stops[j]
            column = _apply(node.name, args)
        if shared is not None and key in shared:
            shared[key] = column
        return column


def row_terminal(row: Mapping[str, float | str], name: str) -> float | str:
    """A network terminal's value in a network's row: a float, or the reason it failed there."""
    if name not in row:
        raise KeyError(f"network terminal {name!r} was not computed")
    found = row[name]
    return found if isinstance(found, str) else float(found)


def _apply(name: str, args: Sequence[Sequence[float | str]]) -> list[float | str]:
    """A network-level op network by network over its argument columns: the first argument's reason where
    one is not defined, the op's where its result is not finite."""
    fn, out = PRIMITIVES.get(name).fn, []
    for per in zip(*args):
        for a in per:
            if isinstance(a, str):
                out.append(a)
                break
        else:
            try:
                out.append(checked(fn(*per), name))
            except ProgramFailure as exc:
                out.append(str(exc))
    return out


def _aggregate(row: Mapping[str, float | str], key: str) -> float | str:
    found = row.get(key)
    if found is None:
        raise KeyError(f"aggregate {key!r} is neither cached nor computable (no statistics)")
    return found


def _defined(value: float | str, key: str) -> float | str:
    return value if isinstance(value, str) or math.isfinite(value) else f"not finite: {key}"


def _missing(key: str) -> float:
    raise KeyError(f"pool row lacks the value of {key!r} (rows come from network_values)")
