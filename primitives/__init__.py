"""The primitive language: pure tensor operations for evolved proxies. ``list_primitives()``."""
from primitives import aggregate, elementwise, reduce  # noqa: F401  (registers the primitives)
from primitives.base import PRIMITIVES, Program, Scalar, Tensor, get_primitive, list_primitives, primitive

__all__ = ["PRIMITIVES", "Program", "Scalar", "Tensor", "get_primitive", "list_primitives", "primitive"]
