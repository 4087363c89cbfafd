"""The DEAP typed primitive set, built from the primitive registry and the collector's names."""
from __future__ import annotations

import random
from functools import lru_cache

from deap import gp

from eznas.stats import NAMES
from primitives import PRIMITIVES, Program, Scalar, Tensor


def log_uniform_constant(rng: random.Random | None = None) -> float:
    """An ephemeral constant drawn log-uniformly from [1e-8, 1] (Sweetimator-style interval bounds);
    evolution draws it from its own ``rng`` (see ``gen_half_and_half``)."""
    return float(f"{10 ** (rng or random).uniform(-8.0, 0.0):.3g}")


@lru_cache(maxsize=8)
def make_pset(terminals: tuple[str, ...] = NAMES) -> gp.PrimitiveSetTyped:
    """Primitives from the registry, the named statistics as Tensor terminals, a Scalar ephemeral.

    Generation never dead-ends: Tensor and Scalar each have primitives and terminals (a Scalar is a
    Tensor), and Program (the root) has the aggregators."""
    unknown = [t for t in terminals if t not in NAMES]
    if unknown:
        raise ValueError(f"unknown terminal {unknown[0]!r}; valid: {', '.join(NAMES)}")
    pset = gp.PrimitiveSetTyped("eznas", [], Program)
    for name in PRIMITIVES:
        spec = PRIMITIVES.get(name)
        pset.addPrimitive(spec.fn, list(spec.args), spec.ret, name=spec.name)
    for name in terminals:
        pset.addTerminal(name, Tensor, name=name)
    pset.addEphemeralConstant("const", log_uniform_constant, Scalar)
    return pset
