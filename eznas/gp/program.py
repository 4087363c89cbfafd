"""Programs: typed trees with a network-level root over aggregated per-unit expressions, and their
per-network evaluation (parsed by :mod:`eznas.gp.parse`; a pool's scores by :mod:`eznas.gp.pool`).

    prog = parse_program("net_add(sum_units(corr_min_eig(pre_N)), net_log(params))")
    prog.score(stats)            # one float per network (NaN where it is not defined)
    prog.evaluate(stats)         # (value, None) or (NaN, reason)
    str(prog)                    # round-trips through parse_program

    pool = parse_program("net_add(net_rank(zc_synflow), net_rank(sum_units(corr_min_eig(pre_N))))")
    rows = [pool.network_values(s.units, s.features) for s in stats_of_each_network]
    pool.pool_scores(rows)       # one float (or the reason it has none) per network of the pool
    pool.table_scores(cached)    # the same from each network's cached values, a column at a time (fitness)

Levels, from the root down: network-level nodes (``net_*`` arithmetic, the terminals of
:mod:`eznas.features`, proxy terminals ``zc_<proxy>`` when a run names them, ``Factor``/``Exponent``
constants), then aggregators (``sum_units(...)``: a per-unit
expression aggregated over the network's units), then the per-unit expression over the collector's named
tensors. One recursive evaluator serves fitness, ``verify_scores.py --program`` and (compiled to Python)
the export. A leading ``-`` negates the network score (how an anti-correlated program is exported).

``values``, when given, is a per-network cache of network-level results keyed by subtree string: an
aggregate found there is not recomputed (fitness keeps these scalars across programs and generations);
a string there is the reason the aggregate failed on that network.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, MutableMapping, Sequence

import torch
from deap import gp

from eznas.errors import EznasError
from eznas.gp.pool import PoolScoring, row_terminal
from eznas.gp.pset import PROXY_PREFIX, is_aggregator, is_pool_op
from eznas.stats.collector import NAMES, NetworkStats, statistic
from eznas.primitives import PRIMITIVES, Net
from eznas.primitives.aggregate import ProgramFailure, aggregate_units
from eznas.primitives.network import checked


class ProgramError(EznasError):
    """A program string that does not parse, or whose root is not a network-level value."""


@dataclass
class Program(PoolScoring):
    tree: gp.PrimitiveTree
    sign: int = 1  # -1: the network score is negated
    _keys: list[str] = field(default_factory=list, repr=False)  # subtree string per node (cache keys)
    _stops: list[int] = field(default_factory=list, repr=False)  # where each node's subtree ends
    _pooled: list[bool] = field(default_factory=list, repr=False)  # whether each node's subtree has a pool op
    _front: list[int] = field(default_factory=list, repr=False)  # the frontier's nodes (never empty once known)

    def __post_init__(self) -> None:
        if not self.tree or self.tree[0].ret is not Net:
            raise ProgramError(f"program {str(self.tree)!r} must be a network-level value (an aggregator such "
                               f"as sum_units(...), a net_* operation or a network terminal)")

    def __str__(self) -> str:
        return ("-" if self.sign < 0 else "") + str(self.tree)

    def negated(self) -> "Program":
        return Program(self.tree, -self.sign)

    @property
    def terminals(self) -> set[str]:
        """The collector's statistics the program reads."""
        return {n.name for n in self.tree if isinstance(n, gp.Terminal) and n.name in NAMES}

    @property
    def proxies(self) -> tuple[str, ...]:
        """The proxy terminals the program reads (``zc_<proxy>``: a registered proxy's network score)."""
        return tuple(sorted({n.name for n in self.tree if isinstance(n, gp.Terminal)
                             and str(n.name).startswith(PROXY_PREFIX)}))

    def aggregates(self) -> list[str]:
        """The distinct aggregated sub-programs (``sum_units(...)`` subtrees), in tree order."""
        return list(dict.fromkeys(self.key(i) for i, n in enumerate(self.tree) if is_aggregator(n)))

    def values(self) -> list[str]:
        """The network-level values a score needs besides the features: its aggregates and proxy terminals
        (the keys of a network's value cache)."""
        return self.aggregates() + list(self.proxies)

    @property
    def is_pool(self) -> bool:
        """Whether the program has a pool-level op (its score of a network depends on the pool)."""
        return any(is_pool_op(n) for n in self.tree)

    def frontier(self) -> list[str]:
        """The network-level parts ``pool_scores`` combines: the largest subtrees without a pool op (constants
        aside), distinct, in tree order; a per-network program's is the program itself (without its sign)."""
        return list(dict.fromkeys(self.key(i) for i in self._frontier()))

    def _frontier(self) -> list[int]:
        if self._front:
            return self._front
        pooled = self.pooled
        out: list[int] = []

        def walk(i: int) -> None:
            node = self.tree[i]
            if not pooled[i]:
                if not (isinstance(node, gp.Terminal) and not isinstance(node.value, str)):
                    out.append(i)
                return
            j = i + 1
            for _ in node.args:
                walk(j)
                j = self.stops[j]

        walk(0)
        self._front = out
        return out

    @property
    def pooled(self) -> list[bool]:
        """Per node: whether its subtree has a pool op."""
        if not self._pooled:
            self._pooled = [any(is_pool_op(self.tree[k]) for k in range(i, self.stops[i])) for i in range(len(self.tree))]
        return self._pooled

    # ------------------------------------------------------------------------------------ evaluation
    def network_values(self, units: Sequence[Any] | None, features: dict[str, float],
                       values: MutableMapping[str, float | str] | None = None,
                       caches: list[dict[str, Any]] | None = None) -> dict[str, float | str]:
        """The frontier's values on one network (a string: the reason one is not defined there); the
        arguments as for ``value``."""
        out: dict[str, float | str] = {}
        for i in self._frontier():
            try:
                v = self._net(i, units, features, values, caches)
                out[self.key(i)] = v if math.isfinite(v) else f"not finite: {self.key(i)}"
            except ProgramFailure as exc:
                out[self.key(i)] = str(exc)
        return out

    def value(self, units: Sequence[Any] | None, features: dict[str, float],
              values: MutableMapping[str, float | str] | None = None,
              caches: list[dict[str, Any]] | None = None) -> float:
        """The network score; raises ProgramFailure with the reason where it is not defined. ``units`` may
        be None when every aggregate is in ``values``; ``caches`` (one dict per unit) share per-unit
        subtree results between programs."""
        v = self.sign * self._net(0, units, features, values, caches)
        if not math.isfinite(v):
            raise ProgramFailure("not finite: the network score")
        return v

    def evaluate(self, stats: NetworkStats, values: MutableMapping[str, float | str] | None = None,
                 caches: list[dict[str, Any]] | None = None) -> tuple[float, str | None]:
        """(score, None), or (NaN, the reason) where the program is not defined on this network."""
        try:
            return self.value(stats.units, stats.features, values, caches), None
        except ProgramFailure as exc:
            return math.nan, str(exc)

    def score(self, stats: NetworkStats, caches: list[dict[str, Any]] | None = None) -> float:
        """The network score, NaN where it is not defined."""
        return self.evaluate(stats, None, caches)[0]

    def unit_output(self, i: int, tensors: dict[str, torch.Tensor], cache: dict[str, Any] | None = None) -> torch.Tensor:
        """The per-unit expression whose root is node ``i`` on one unit's tensors."""
        return self._eval(i, tensors, cache)[0]

    def _net(self, i: int, units, features, values, caches) -> float:  # noqa: ANN001
        node = self.tree[i]
        if isinstance(node, gp.Terminal):
            if not isinstance(node.value, str):
                return float(node.value)  # a Factor or Exponent constant
            found = row_terminal(features, node.name)  # a network feature or a proxy terminal
            if isinstance(found, str):  # the reason a proxy terminal failed on this network
                raise ProgramFailure(found)
            return found
        if is_pool_op(node):
            raise ProgramError(f"program {self} is pool-level ({node.name} ranks a network among those scored "
                               f"with it): score a pool of networks (network_values, then pool_scores)")
        if is_aggregator(node):
            key = self.key(i)
            found = values.get(key) if values is not None else None
            if found is None:
                if units is None:
                    raise KeyError(f"aggregate {key!r} is neither cached nor computable (no statistics)")
                try:
                    found = self.aggregate(i, units, caches)
                except ProgramFailure as exc:
                    found = str(exc)
                if values is not None:
                    values[key] = found
            if isinstance(found, str):
                raise ProgramFailure(found)
            return found
        args, j = [], i + 1
        for _ in node.args:
            args.append(self._net(j, units, features, values, caches))
            j = self.stops[j]
        return checked(PRIMITIVES.get(node.name).fn(*args), node.name)

    def aggregate(self, i: int, units: Sequence[Any], caches: list[dict[str, Any]] | None = None) -> float:
        """The aggregator at node ``i`` over ``units`` (each with ``.tensors``)."""
        agg = PRIMITIVES.get(self.tree[i].name).fn
        return aggregate_units(units, lambda k, u: self.unit_output(i + 1, u.tensors, caches[k] if caches else None),
                               agg.unit, agg.combine, self.tree[i].name)

    def _eval(self, i: int, env: dict[str, torch.Tensor], cache: dict[str, Any] | None) -> tuple[torch.Tensor, int]:
        node = self.tree[i]
        key = self.key(i)
        if cache is not None and key in cache:  # a subtree, or a leaf read as a statistic, once per unit
            return cache[key], self._stops[i]
        if isinstance(node, gp.Primitive):
            args, j = [], i + 1
            for _ in node.args:
                value, j = self._eval(j, env, cache)
                args.append(value)
            try:
                value = PRIMITIVES.get(node.name).fn(*args)
            except Exception as exc:  # noqa: BLE001 - a failing op makes the program invalid on this network
                raise ProgramFailure(f"{type(exc).__name__} in {node.name}") from None
        else:
            value, j = self._leaf(node, env), i + 1
        if cache is not None:
            cache[key] = value
        return value, j

    @staticmethod
    def _leaf(node: gp.Terminal, env: dict[str, torch.Tensor]) -> torch.Tensor:
        if node.name in NAMES:
            if node.name not in env:
                raise KeyError(f"statistic {node.name!r} was not collected")
            return statistic(env[node.name])
        return torch.tensor(float(node.value))

    def key(self, i: int) -> str:
        if not self._keys:
            subtrees = [self.tree.searchSubtree(k) for k in range(len(self.tree))]
            self._stops = [sub.stop for sub in subtrees]
            self._keys = [str(gp.PrimitiveTree(self.tree[sub])) for sub in subtrees]
        return self._keys[i]

    @property
    def subtrees(self) -> list[str]:
        """Each node's subtree string (its cache key), in tree order."""
        self.key(0)
        return self._keys

    @property
    def stops(self) -> list[int]:
        self.key(0)
        return self._stops

