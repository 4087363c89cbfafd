"""Search strategies: ``random`` and ``rea`` (regularised evolution, Real et al. 2019), registered by name.

A strategy proposes the next architecture (an encoding tuple) from the search's plain-data state and is
told its index in the history once it is scored; everything it keeps is in ``SearchState``, so a search
checkpoints and resumes exactly. Where the search is restricted to a table's archs (``Universe``), a
proposal is one of them: a random draw among the unscored, a mutation moved to the nearest table arch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from eznas.errors import EznasError
from eznas.registry import Registry
from eznas.spaces.encoding import Encoding

MAX_TRIES = 1000  # draws of an unscored arch before the space counts as exhausted


@dataclass
class Scored:
    code: tuple
    uid: str
    spec: str
    score: float  # NaN where the proxy is not defined (never chosen as best or parent)
    accuracy: float  # NaN where the arch is not in the table
    seconds: float
    parts: dict[str, float] = field(default_factory=dict)  # a pool fitness: the per-arch values it ranks


@dataclass
class SearchState:
    history: list[Scored] = field(default_factory=list)  # every arch scored, in order
    population: list[int] = field(default_factory=list)  # REA: indices into history, oldest first
    elapsed: float = 0.0  # seconds spent scoring so far, over every session of the search

    def seen(self) -> set[tuple]:
        return {s.code for s in self.history}

    def best(self) -> Scored | None:
        ok = [s for s in self.history if not math.isnan(s.score)]
        return max(ok, key=lambda s: s.score) if ok else None


class Universe:
    """The archs a restricted search may propose (a benchmark table), with nearest-arch lookup."""

    def __init__(self, encoding: Encoding, codes: list[tuple]):
        self.codes = codes
        index = [{v: i for i, v in enumerate(values)} for values in encoding.positions]
        for code in codes:  # a table may hold values the encoding never proposes (a user's CSV)
            for p, v in enumerate(code):
                index[p].setdefault(v, len(index[p]))
        self._matrix = np.array([[index[p][v] for p, v in enumerate(c)] for c in codes], dtype=np.int16)
        self._index = index

    def nearest(self, code: tuple, exclude: set[tuple], rng: np.random.Generator) -> tuple | None:
        """A table arch at the least Hamming distance from ``code``, not in ``exclude`` (ties at random)."""
        row = np.array([self._index[p][v] for p, v in enumerate(code)], dtype=np.int16)
        distance = (self._matrix != row).sum(axis=1)
        allowed = np.array([c not in exclude for c in self.codes])
        if not allowed.any():
            return None
        distance = np.where(allowed, distance, np.iinfo(np.int32).max)
        ties = np.flatnonzero(distance == distance.min())
        return self.codes[int(ties[rng.integers(len(ties))])]


def fresh(encoding: Encoding, universe: Universe | None, seen: set[tuple], rng: np.random.Generator) -> tuple | None:
    """An arch not scored yet, drawn uniformly (from the universe when restricted); None when none is left."""
    if universe is not None:
        left = [c for c in universe.codes if c not in seen]
        return left[rng.integers(len(left))] if left else None
    for _ in range(MAX_TRIES):
        code = encoding.random(rng)
        if code not in seen:
            return code
    return None


class Strategy(Protocol):
    def propose(self, state: SearchState, encoding: Encoding, universe: Universe | None,
                rng: np.random.Generator) -> tuple | None: ...

    def observe(self, state: SearchState, index: int) -> None: ...


STRATEGIES: Registry[type] = Registry("search strategy")


@STRATEGIES.register("random")
@dataclass(frozen=True)
class RandomSearch:
    """Score archs drawn uniformly without repetition; the best score wins."""

    def propose(self, state, encoding, universe, rng):  # noqa: ANN001, ANN201 - the Strategy protocol
        return fresh(encoding, universe, state.seen(), rng)

    def observe(self, state: SearchState, index: int) -> None:
        pass


@STRATEGIES.register("rea")
@dataclass(frozen=True)
class RegularizedEvolution:
    """Regularised evolution: ``population`` random archs, then per cycle a tournament of ``sample_size``
    drawn from the population, the best one's mutant (one op or edge changed) joins and the oldest leaves.
    A mutant scored before (or, when restricted, moved to the nearest unscored table arch) costs nothing
    twice: every proposal is an arch not scored yet."""

    population: int = 20
    sample_size: int = 5

    def __post_init__(self) -> None:
        if self.population < 2 or not 1 <= self.sample_size <= self.population:
            raise EznasError(f"rea needs population >= 2 and 1 <= sample_size <= population, got population "
                             f"{self.population}, sample_size {self.sample_size}")

    def propose(self, state, encoding, universe, rng):  # noqa: ANN001, ANN201 - the Strategy protocol
        seen = state.seen()
        if len(state.population) < self.population:
            return fresh(encoding, universe, seen, rng)
        picks = rng.choice(len(state.population), self.sample_size, replace=False)
        contenders = [state.history[state.population[i]] for i in picks]
        parent = max(contenders, key=lambda s: -math.inf if math.isnan(s.score) else s.score)
        for _ in range(MAX_TRIES):
            child = encoding.mutate(parent.code, rng)
            if universe is not None:
                child = universe.nearest(child, seen, rng)
            if child is None or child not in seen:
                return child
        return fresh(encoding, universe, seen, rng)

    def observe(self, state: SearchState, index: int) -> None:
        state.population.append(index)
        if len(state.population) > self.population:
            state.population.pop(0)


def make_strategy(name: str, population: int, sample_size: int) -> Strategy:
    cls = STRATEGIES.get(name)
    return cls(population, sample_size) if cls is RegularizedEvolution else cls()


def list_strategies() -> list[str]:
    return STRATEGIES.names()
