"""Variation and selection operators (DEAP naming: cx*, mut*, sel*) and the individual classes."""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Sequence

from deap import base, gp


class FitnessMax(base.Fitness):
    weights = (1.0,)


class Individual(gp.PrimitiveTree):
    """A program tree with a DEAP fitness (our own class: no global ``creator``)."""

    def __init__(self, content):
        super().__init__(content)
        self.fitness = FitnessMax()


def cx_one_point(ind1: Individual, ind2: Individual) -> tuple[Individual, Individual]:
    """Swap a random subtree of a type both trees have (never the root). Like ``gp.cxOnePoint``, but the
    common types are sorted by name before the draw: DEAP draws from a set of classes, whose order
    changes between processes, so the same seed would not give the same run."""
    if len(ind1) < 2 or len(ind2) < 2:
        return ind1, ind2
    types1, types2 = defaultdict(list), defaultdict(list)
    for i, node in enumerate(ind1[1:], 1):
        types1[node.ret].append(i)
    for i, node in enumerate(ind2[1:], 1):
        types2[node.ret].append(i)
    common = sorted(set(types1) & set(types2), key=lambda t: t.__name__)
    if common:
        type_ = random.choice(common)
        i1, i2 = random.choice(types1[type_]), random.choice(types2[type_])
        s1, s2 = ind1.searchSubtree(i1), ind2.searchSubtree(i2)
        ind1[s1], ind2[s2] = ind2[s2], ind1[s1]
    return ind1, ind2


def gen_subtree(pset: gp.PrimitiveSetTyped, type_: type, max_: int = 3) -> list:
    """A random subtree for ``mutUniform``: height 0..max_, but at least 1 for the root type (an aggregator
    needs an argument; there is no root-typed terminal)."""
    return gp.genHalfAndHalf(pset, min_=0 if pset.terminals[type_] else 1, max_=max(max_, 1), type_=type_)


def sel_tournament_unique(individuals: Sequence[Individual], k: int, tournsize: int) -> list[Individual]:
    """``k`` tournament winners, each individual chosen at most once (so no duplicates survive)."""
    pool = list(individuals)
    chosen: list[Individual] = []
    while pool and len(chosen) < k:
        contestants = [random.choice(pool) for _ in range(tournsize)]
        best = max(contestants, key=lambda ind: ind.fitness.values[0])
        chosen.append(best)
        pool.remove(best)
    return chosen
