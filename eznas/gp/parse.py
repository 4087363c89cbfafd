"""Parsing a program string (prefix order, as ``str(program)`` prints it) into a :class:`Program`.

    prog = parse_program("net_add(sum_units(corr_min_eig(pre_N)), net_log(params))")
    str(prog)                    # round-trips through parse_program

Only the primitive set's names and finite numbers (where a constant may stand) are accepted; a leading ``-``
negates the network score. Anything else raises :class:`ProgramError` naming it.
"""
from __future__ import annotations

import math
import re

from deap import gp

from eznas.gp.program import Program, ProgramError
from eznas.gp.pset import make_pset, network_terminals
from eznas.primitives import Net, Scalar, Tensor


def parse_program(text: str, pset: gp.PrimitiveSetTyped | None = None) -> Program:
    """Parse a program string (prefix order, as ``str(program)`` prints it). Only the pset's primitives and
    terminals and finite numbers (where a constant may stand) are accepted; an unknown name, a type
    mismatch, a missing argument or a trailing token raises ProgramError naming it."""
    pset = pset or make_pset(features=network_terminals())
    body = text.strip()
    where = f"program {body!r}"
    sign = -1 if body.startswith("-") else 1
    tokens = [t for t in re.split(r"[\s(),]+", body[1:] if sign < 0 else body) if t]
    expr: list = []
    expected: list[type] = [Net]
    for tok in tokens:
        if not expected:
            raise ProgramError(f"{where}: unexpected {tok!r} after a complete program")
        want = expected.pop(0)
        node = pset.mapping.get(tok)
        if isinstance(node, type):  # an ephemeral constant's generator ('const'), not a value
            raise ProgramError(f"{where}: {tok!r} is not a value; write the number itself")
        if node is None:
            node = _constant(tok, want, where)
        if not issubclass(node.ret, want):
            raise ProgramError(f"{where}: {tok!r} gives a {node.ret.__name__} where a {want.__name__} is needed")
        expr.append(node)
        if isinstance(node, gp.Primitive):
            expected[0:0] = list(node.args)
    if not expr:
        raise ProgramError(f"{where} is empty")
    if expected:
        raise ProgramError(f"{where} is incomplete: {len(expected)} argument(s) missing")
    return Program(gp.PrimitiveTree(expr), sign)


def _constant(tok: str, want: type, where: str) -> gp.Terminal:
    try:
        value = float(tok)
    except ValueError:
        raise ProgramError(f"{where}: unknown name {tok!r}") from None
    if not math.isfinite(value):
        raise ProgramError(f"{where}: constant {tok!r} is not a finite number")
    kind = Scalar if want in (Tensor, Scalar) else want
    if kind.__name__ not in ("Scalar", "Factor", "Exponent"):
        raise ProgramError(f"{where}: a number ({tok}) cannot stand where a {want.__name__} is needed")
    return gp.Terminal(value, False, kind)
