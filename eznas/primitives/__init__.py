"""The primitive language: pure tensor operations for evolved proxies, the aggregators over a network's
units, and network-level arithmetic. ``list_primitives()``."""
from eznas.primitives import aggregate, elementwise, network, reduce  # noqa: F401  (registers the primitives)
from eznas.primitives.base import (PRIMITIVES, Exponent, Factor, Net, Scalar, Tensor, get_primitive, list_primitives,
                                   primitive)

__all__ = ["PRIMITIVES", "Exponent", "Factor", "Net", "Scalar", "Tensor", "get_primitive", "list_primitives",
           "primitive"]
