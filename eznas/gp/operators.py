"""Generation, variation and selection operators (DEAP naming: gen*, cx*, mut*, sel*, and var_blend, the
log-linear blends of whole programs) and the individual classes.

Every operator draws from the ``rng`` it is given, never from the global ``random``: other threads of the
process (Dask's client and a LocalCluster's scheduler) draw from the global one at moments of their own
choosing, which would make a seeded run depend on the backend. DEAP's ``generate``, ``mutUniform``,
``staticLimit`` and ``varOr`` use the global one, hence these small ports of them.
"""
from __future__ import annotations

import copy
import itertools
import random
from collections import defaultdict
from typing import Callable, Sequence

from deap import base, gp

from eznas.primitives import Net


class FitnessMax(base.Fitness):
    """(full, fitness), compared in that order: a valid evaluation on all selection networks (1) beats a
    screened or invalid one (0) whatever their correlations (racing)."""

    weights = (1.0, 1.0)


class Individual(gp.PrimitiveTree):
    """A program tree with a DEAP fitness (our own class: no global ``creator``)."""

    def __init__(self, content):
        super().__init__(content)
        self.fitness = FitnessMax()


def gen_half_and_half(pset: gp.PrimitiveSetTyped, min_: int, max_: int, rng: random.Random,
                      type_: type | None = None, net_depth: int = 2) -> list:
    """DEAP's ``genHalfAndHalf``: a full or a grown tree (even odds) of height ``min_..max_``; a type
    without primitives (a constant's) ends its branch at once. Network-level operations (``Net`` from
    ``Net``) appear only above depth ``net_depth``; below it a Net is an aggregator or a network terminal,
    so a new program aggregates a few per-unit expressions, not dozens."""
    full = rng.random() < 0.5
    height = rng.randint(min_, max_)
    expr, stack = [], [(0, type_ or pset.ret)]
    while stack:
        depth, type_ = stack.pop()
        prims = pset.primitives[type_]
        if type_ is Net and depth >= net_depth:
            prims = [p for p in prims if Net not in p.args]
        leaf = not prims or depth >= height or (not full and depth >= min_ and rng.random() < pset.terminalRatio)
        if leaf:
            if not pset.terminals[type_]:
                raise IndexError(f"no terminal of type {type_.__name__} to end a branch")
            term = rng.choice(pset.terminals[type_])
            if isinstance(term, gp.MetaEphemeral):  # an ephemeral constant: drawn here, from rng
                term, term.value = term.__new__(term), term.func(rng)
            expr.append(term)
        else:
            prim = rng.choice(prims)
            expr.append(prim)
            stack.extend((depth + 1, arg) for arg in reversed(prim.args))
    return expr


def cx_one_point(ind1: Individual, ind2: Individual, rng: random.Random) -> tuple[Individual, Individual]:
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
        type_ = rng.choice(common)
        i1, i2 = rng.choice(types1[type_]), rng.choice(types2[type_])
        s1, s2 = ind1.searchSubtree(i1), ind2.searchSubtree(i2)
        ind1[s1], ind2[s2] = ind2[s2], ind1[s1]
    return ind1, ind2


def cx_join(ind1: Individual, ind2: Individual, pset: gp.PrimitiveSetTyped,
            rng: random.Random) -> tuple[Individual, Individual]:
    """Join two whole programs under a random network-level binary operation (``net_add(ind1, ind2)``,
    ``net_mul``, ...): how a hybrid such as reg-SWAP (SWAP times a size term) arises from two parents that
    each carry one of its signals; ``cx_one_point`` never makes one, as it swaps subtrees below the root."""
    ops = sorted((p for p in pset.primitives[Net] if p.args == [Net, Net]), key=lambda p: p.name)
    joined = Individual([rng.choice(ops), *ind1, *ind2])
    return joined, ind2


def gen_subtree(pset: gp.PrimitiveSetTyped, type_: type, rng: random.Random, max_: int = 3) -> list:
    """A random subtree for mutation: height 0..max_ (at least 1 for a type without terminals)."""
    return gen_half_and_half(pset, 0 if pset.terminals[type_] else 1, max(max_, 1), rng, type_=type_, net_depth=1)


def mut_uniform(ind: Individual, pset: gp.PrimitiveSetTyped, rng: random.Random) -> tuple[Individual]:
    """DEAP's ``mutUniform``: replace a random subtree by a new one of the same type."""
    index = rng.randrange(len(ind))
    ind[ind.searchSubtree(index)] = gen_subtree(pset, ind[index].ret, rng)
    return (ind,)


def limit_height(op: Callable[..., tuple], max_height: int, rng: random.Random) -> Callable[..., tuple]:
    """DEAP's ``staticLimit`` on height: a child over the limit is replaced by one of the parents."""
    def limited(*parents: Individual) -> list[Individual]:
        kept = [copy.deepcopy(p) for p in parents]
        return [child if child.height <= max_height else rng.choice(kept) for child in op(*parents)]
    return limited


def var_or(population: Sequence[Individual], toolbox: base.Toolbox, lambda_: int, cxpb: float, mutpb: float,
           rng: random.Random, joinpb: float = 0.0) -> list[Individual]:
    """DEAP's ``varOr``: ``lambda_`` offspring, each from crossover, mutation, a join of two parents
    (``toolbox.join``, with probability ``joinpb``) or reproduction."""
    offspring = []
    for _ in range(lambda_):
        op = rng.random()
        if op < cxpb or cxpb + mutpb <= op < cxpb + mutpb + joinpb:
            ind1, ind2 = [toolbox.clone(i) for i in rng.sample(list(population), 2)]
            ind, _ = (toolbox.mate if op < cxpb else toolbox.join)(ind1, ind2)
        elif op < cxpb + mutpb:
            (ind,) = toolbox.mutate(toolbox.clone(rng.choice(population)))
        else:
            offspring.append(toolbox.clone(rng.choice(population)))
            continue
        del ind.fitness.values
        offspring.append(ind)
    return offspring


def sel_tournament_unique(individuals: Sequence[Individual], k: int, tournsize: int,
                          rng: random.Random) -> list[Individual]:
    """``k`` tournament winners, each individual chosen at most once (so no duplicates survive)."""
    pool = list(individuals)
    chosen: list[Individual] = []
    while pool and len(chosen) < k:
        contestants = [rng.choice(pool) for _ in range(tournsize)]
        best = max(contestants, key=lambda ind: ind.fitness.values)
        chosen.append(best)
        pool.remove(best)
    return chosen


BLEND_WEIGHTS = (0.25, 0.5, 1.0, 2.0)  # of each further program's log, relative to the first's


def var_blend(parts: Sequence[tuple[str, int]], size: int = 3, weights: Sequence[float] = BLEND_WEIGHTS,
              spreads: Sequence[float] | None = None, rank: bool = False) -> list[str]:
    """Log-linear blends of whole programs, as program texts: for every 2 to ``size`` of ``parts`` (program
    texts with their orientation, +1 or -1, in the order given) and every choice of ``weights``, the sum of
    ``net_log`` of each (log |x|), the first with weight 1 and each other with its weight times its
    orientation relative to the first's (fitness orients the sum). With ``spreads`` (each part's spread of
    log |x| over the networks, e.g. its standard deviation), a weight is relative to the parts' spreads:
    part B's factor is w x spread(A) / spread(B), so w = 1 gives both an equal say whatever their scales (a
    log-count and a log-λ differ by 10x). A linear model in log space over signals the run has found, its
    weights fitted by the fitness itself (as ECP and SR-NAS weight proxies); with every part measured, each
    blend costs arithmetic on cached scalars. Deterministic: it draws no random number.

    ``rank``: rank blends instead, sums of ``net_rank`` (log(rank / m) in the pool) of each part, weighted
    as above, a part anti-oriented relative to the first ranked negated (AZ-NAS's sum of log ranks, its
    weights fitted; ranks need no spreads)."""
    if spreads is None:
        spreads = [1.0] * len(parts)
    if len(spreads) != len(parts):
        raise ValueError(f"var_blend: {len(spreads)} spreads for {len(parts)} parts")
    out = []
    for k in range(2, size + 1):
        for combo in itertools.combinations(zip(parts, spreads), k):
            ((first, o1), s1), rest = combo[0], combo[1:]
            for ws in itertools.product(weights, repeat=len(rest)):
                text = f"net_rank({first})" if rank else f"net_log({first})"
                for ((part, o), sp), w in zip(rest, ws):
                    if rank:
                        ranked = part if o * o1 > 0 else f"net_neg({part})"
                        text = f"net_add({text}, net_scale(net_rank({ranked}), {w:.3g}))"
                    else:
                        text = f"net_add({text}, net_scale(net_log({part}), {o * o1 * w * s1 / sp:.3g}))"
                out.append(text)
    return out
