"""DARTS genotypes: the validated ``Genotype`` record, ``make_genotype`` (plain lists, e.g. from JSON) and
``parse_genotype`` (a DARTS ``Genotype(...)`` string read with ``ast``, never ``eval``).

A genotype gives, for the normal and the reduction cell, two ``(op, input)`` edges per intermediate
node and the nodes whose outputs are concatenated into the cell output::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[...], reduce_concat=range(2, 6))

States 0 and 1 are the (preprocessed) outputs of the two previous cells; the k-th pair of edges
(k = 0, 1, ...) builds state k + 2 and may read states 0..k+1. DARTS cells have 4 intermediate nodes,
the NDS PNAS/Amoeba/NASNet/ENAS cells 5; a genotype may have any number. Every op is one of ``OPS``.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from eznas.errors import ArchError
from eznas.spaces.darts_ops import OPS

Edges = tuple[tuple[str, int], ...]

FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


@dataclass(frozen=True)
class Genotype:
    """A validated DARTS genotype (build one with ``parse_genotype`` or ``make_genotype``)."""

    normal: Edges
    normal_concat: tuple[int, ...]
    reduce: Edges
    reduce_concat: tuple[int, ...]

    def __str__(self) -> str:
        """The DARTS ``Genotype(...)`` string, which ``parse_genotype`` reads back."""
        return (
            f"Genotype(normal={list(self.normal)!r}, normal_concat={list(self.normal_concat)!r}, "
            f"reduce={list(self.reduce)!r}, reduce_concat={list(self.reduce_concat)!r})"
        )


def make_genotype(normal: Any, normal_concat: Any, reduce: Any, reduce_concat: Any, where: str) -> Genotype:
    """Validate plain lists (e.g. from JSON) into a Genotype; ``where`` starts every error message."""
    normal_edges = _edges(normal, "normal", where)
    reduce_edges = _edges(reduce, "reduce", where)
    return Genotype(
        normal_edges,
        _concat(normal_concat, "normal_concat", len(normal_edges) // 2, where),
        reduce_edges,
        _concat(reduce_concat, "reduce_concat", len(reduce_edges) // 2, where),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _edges(value: Any, field: str, where: str) -> Edges:
    if not isinstance(value, (list, tuple)) or not value:
        raise ArchError(f"{where}: {field} must be a non-empty list of (op, input) pairs, got {value!r}")
    if len(value) % 2:
        raise ArchError(f"{where}: {field} has {len(value)} edges; every node takes two, so it must be even")
    edges = []
    for i, edge in enumerate(value):
        if not (isinstance(edge, (list, tuple)) and len(edge) == 2 and isinstance(edge[0], str) and _is_int(edge[1])):
            raise ArchError(f"{where}: {field} edge {i} must be an (op, input) pair, got {edge!r}")
        op, src = edge
        if op not in OPS:
            raise ArchError(f"{where}: bad op {op!r} in {field} edge {i} (known ops: {', '.join(OPS)})")
        node = i // 2
        if not 0 <= src <= node + 1:
            raise ArchError(
                f"{where}: bad input index {src} in {field} edge {i} ({op!r}, {src}); "
                f"node {node} may take inputs 0..{node + 1}"
            )
        edges.append((op, src))
    return tuple(edges)


def _concat(value: Any, field: str, steps: int, where: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple, range)) or not value:
        raise ArchError(f"{where}: {field} must be a non-empty list of node indices, got {value!r}")
    for index in value:
        if not _is_int(index) or not 2 <= index <= steps + 1:
            raise ArchError(
                f"{where}: bad index {index!r} in {field}; a cell with {steps} nodes concatenates nodes 2..{steps + 1}"
            )
    return tuple(value)


def parse_genotype(spec: str) -> Genotype:
    """Parse and validate a DARTS ``Genotype(...)`` string with ``ast`` (never ``eval``).

    Fields may be given by keyword or in order; a concat may be a list or ``range(a, b)``. A bad string
    raises ArchError naming the bad token.
    """
    if not isinstance(spec, str):
        raise ArchError(f"DARTS genotype must be a string, got {type(spec).__name__} {spec!r}")
    where = f"DARTS genotype {_short(spec)}"
    try:
        call = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ArchError(f"{where}: not a Genotype(...) expression ({exc.msg} at token {_token_at(exc)!r})") from None
    if not (isinstance(call, ast.Call) and _callee(call.func) == "Genotype"):
        raise ArchError(f"{where}: expected Genotype(normal=..., ...), got {_short(ast.unparse(call))}")
    if len(call.args) > len(FIELDS):
        raise ArchError(f"{where}: Genotype takes {len(FIELDS)} fields, got {len(call.args)} positional")
    nodes: dict[str, ast.expr] = dict(zip(FIELDS, call.args))
    for kw in call.keywords:
        if kw.arg not in FIELDS:
            token = kw.arg if kw.arg is not None else "**" + ast.unparse(kw.value)
            raise ArchError(f"{where}: unknown field {token!r} (fields: {', '.join(FIELDS)})")
        if kw.arg in nodes:
            raise ArchError(f"{where}: field {kw.arg!r} given twice")
        nodes[kw.arg] = kw.value
    missing = [f for f in FIELDS if f not in nodes]
    if missing:
        raise ArchError(f"{where}: missing field {missing[0]!r}")
    values = {field: _literal(nodes[field], where) for field in FIELDS}
    return make_genotype(**values, where=where)


def _literal(node: ast.expr, where: str) -> Any:
    """Numbers, strings, lists/tuples of them and ``range(a[, b])``; anything else is a bad token."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        if _is_int(node.operand.value):
            return -node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(item, where) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Call) and _callee(node.func) == "range" and not node.keywords and 1 <= len(node.args) <= 2:
        bounds = [_literal(arg, where) for arg in node.args]
        if all(_is_int(b) for b in bounds):
            return list(range(*bounds))
    raise ArchError(f"{where}: bad token {_short(ast.unparse(node))}")


def _callee(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):  # e.g. genotypes.Genotype(...)
        return func.attr
    return None


def _token_at(exc: SyntaxError) -> str:
    text, offset = exc.text or "", max((exc.offset or 1) - 1, 0)
    match = re.match(r"\w+|\S", text[offset:]) or re.search(r"\S+$", text[:offset])
    return match.group(0) if match else "<end of string>"


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
