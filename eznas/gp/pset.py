"""The DEAP typed primitive set, built from the primitive registry, the collector's names and the network
features, and the ephemeral constants (each drawn from the generator's ``rng``); and which kind of primitive
a node of a program's tree is (an aggregator, a pool op)."""
from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

from deap import gp

from eznas.features import FEATURES
from eznas.stats.collector import NAMES
from eznas.primitives import PRIMITIVES, Exponent, Factor, Net, Scalar, Tensor
from eznas.primitives.aggregate import Aggregator
from eznas.primitives.network import PoolOp
from eznas.proxies import get_proxy, list_proxies

EXPONENTS = (-2.0, -1.0, -0.5, 0.5, 2.0, 3.0)
PROXY_PREFIX = "zc_"  # a proxy terminal: zc_<registered proxy>, that proxy's score of the network


def proxy_name(terminal: str) -> str:
    """The registered proxy a proxy terminal reads: ``zc_meco`` -> ``meco``."""
    return terminal[len(PROXY_PREFIX):]


def is_aggregator(node: Any) -> bool:
    return isinstance(node, gp.Primitive) and isinstance(PRIMITIVES.get(node.name).fn, Aggregator)


def is_pool_op(node: Any) -> bool:
    return isinstance(node, gp.Primitive) and isinstance(PRIMITIVES.get(node.name).fn, PoolOp)


def proxy_terminals() -> tuple[str, ...]:
    """The Net terminals that read a registered per-arch proxy's score (``zc_meco``, ``zc_synflow``...)."""
    return tuple(PROXY_PREFIX + n for n in list_proxies() if get_proxy(n).pool is None)


def network_terminals() -> tuple[str, ...]:
    """Every Net terminal a program may name: the network features, then the proxy terminals."""
    return FEATURES + proxy_terminals()


def log_uniform_constant(rng: random.Random | None = None) -> float:
    """A per-unit Scalar constant drawn log-uniformly from [1e-8, 1] (Sweetimator-style interval bounds)."""
    return float(f"{10 ** (rng or random).uniform(-8.0, 0.0):.3g}")


def signed_factor(rng: random.Random | None = None) -> float:
    """A network-level Factor: +-10^u, u uniform in [-3, 3], three significant digits."""
    rng = rng or random
    return float(f"{rng.choice((-1, 1)) * 10 ** rng.uniform(-3.0, 3.0):.3g}")


def exponent(rng: random.Random | None = None) -> float:
    """A network-level Exponent from a few useful powers (roots, squares, reciprocals)."""
    return (rng or random).choice(EXPONENTS)


@lru_cache(maxsize=8)
def make_pset(terminals: tuple[str, ...] = NAMES, features: tuple[str, ...] = FEATURES,
              pool: bool = True) -> gp.PrimitiveSetTyped:
    """Primitives from the registry (without the pool-level ones such as ``net_rank`` unless ``pool``), the
    named statistics as Tensor terminals, the network features as Net terminals (``features``: any of
    ``network_terminals()``, so proxy terminals too), and ephemeral constants (Scalar ``const``, ``factor``,
    ``exponent``).

    Generation never dead-ends: Tensor, Scalar and Net each have primitives and terminals (a Scalar is a
    Tensor), and Factor and Exponent have their constants."""
    for given, valid, what in ((terminals, NAMES, "terminal"),
                               (features, network_terminals(), "network terminal")):
        unknown = [t for t in given if t not in valid]
        if unknown:
            raise ValueError(f"unknown {what} {unknown[0]!r}; valid: {', '.join(valid)}")
    pset = gp.PrimitiveSetTyped("eznas", [], Net)
    for name in PRIMITIVES:
        spec = PRIMITIVES.get(name)
        if not pool and isinstance(spec.fn, PoolOp):
            continue
        pset.addPrimitive(spec.fn, list(spec.args), spec.ret, name=spec.name)
    for name in terminals:
        pset.addTerminal(name, Tensor, name=name)
    for name in features:
        pset.addTerminal(name, Net, name=name)
    pset.addEphemeralConstant("const", log_uniform_constant, Scalar)
    pset.addEphemeralConstant("factor", signed_factor, Factor)
    pset.addEphemeralConstant("exponent", exponent, Exponent)
    return pset


def language(pset: gp.PrimitiveSetTyped) -> dict[str, list[str]]:
    """The primitive set as plain data (recorded in checkpoints: a resumed run must use the same language)."""
    return {
        "primitives": sorted(f"{p.name}({','.join(a.__name__ for a in p.args)})->{p.ret.__name__}"
                             for ps in pset.primitives.values() for p in ps),
        "terminals": sorted(f"{t.name}:{t.ret.__name__}" for ts in pset.terminals.values() for t in ts),
    }
