"""Architectures as tuples of choices, for search: draw one at random, mutate one position, turn back into
the space's spec string.

An ``Encoding`` is a list of positions, each with its valid values; ``valid`` rejects a tuple the space
does not allow (a DARTS node whose two edges read the same input). Registered per search space:
NASBench201 (6 edges x 5 ops); DARTS (the SWAP CSV's space: per cell and node two (op, input) edges over
DARTS's 8 primitives, ``none`` included, inputs free) and NASBench301 (the 7 without ``none``, two different
inputs per node), concat 2..5; NATSBenchSSS (5 layers x 8 channel counts).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from eznas.registry import Registry
from eznas.spaces.darts import parse_genotype
from eznas.spaces.nats_sss import CHOICES, parse_channels
from eznas.spaces.nb201 import OPS as NB201_OPS, parse_arch

Choices = tuple[object, ...]


@dataclass(frozen=True)
class Encoding:
    positions: tuple[Choices, ...]  # the values each position may take
    encode: Callable[[str], tuple]
    decode: Callable[[tuple], str]
    valid: Callable[[tuple], bool] = lambda code: True

    def random(self, rng: np.random.Generator) -> tuple:
        """A uniformly drawn valid tuple (rejection sampling over the positions' values)."""
        while True:
            code = tuple(values[rng.integers(len(values))] for values in self.positions)
            if self.valid(code):
                return code

    def mutate(self, code: tuple, rng: np.random.Generator) -> tuple:
        """``code`` with one position changed to another of its values (a valid result)."""
        movable = [i for i, values in enumerate(self.positions) if len(values) > 1]
        while True:
            i = movable[rng.integers(len(movable))]
            others = [v for v in self.positions[i] if v != code[i]]
            child = (*code[:i], others[rng.integers(len(others))], *code[i + 1:])
            if self.valid(child):
                return child


ENCODINGS: Registry[Callable[[], Encoding]] = Registry("search space with a search encoding")


def get_encoding(space: str) -> Encoding:
    return ENCODINGS.get(space)()


# ---------------------------------------------------------------------------------------------- NB-201
_NB201_INPUTS = (0, 0, 1, 0, 1, 2)  # the input node of each of the 6 edges, in string order


@ENCODINGS.register("NASBench201")
def nb201() -> Encoding:
    def encode(spec: str) -> tuple:
        return tuple(op for node in parse_arch(spec) for op, _ in node)

    def decode(code: tuple) -> str:
        edges = [f"{op}~{src}" for op, src in zip(code, _NB201_INPUTS)]
        return f"|{edges[0]}|+|{edges[1]}|{edges[2]}|+|{edges[3]}|{edges[4]}|{edges[5]}|"

    return Encoding((NB201_OPS,) * 6, encode, decode)


# ---------------------------------------------------------------------------------------------- DARTS
NB301_OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
             "dil_conv_5x5")  # DARTS's primitives without "none": NB-301's space (each node reads two inputs)
SWAP_OPS = (*NB301_OPS, "none")  # the SWAP DARTS CSV's space: 8 ops, and a node may read one input twice
_STEPS = 4  # intermediate nodes per cell


def darts_cells(ops: tuple[str, ...], distinct_inputs: bool) -> Encoding:
    """Per cell (normal, then reduce), per edge: its op, then its input node (node k reads 0..k+1)."""
    edge_positions = [p for k in range(_STEPS) for _ in range(2) for p in (ops, tuple(range(k + 2)))]

    def encode(spec: str) -> tuple:
        g = parse_genotype(spec)
        return tuple(v for cell in (g.normal, g.reduce) for edge in cell for v in edge)

    def decode(code: tuple) -> str:
        half = len(code) // 2
        cells = [[(code[i], code[i + 1]) for i in range(start, start + half, 2)] for start in (0, half)]
        concat = list(range(2, 2 + _STEPS))
        return f"Genotype(normal={cells[0]!r}, normal_concat={concat!r}, reduce={cells[1]!r}, reduce_concat={concat!r})"

    def valid(code: tuple) -> bool:  # a node's two edges read two different inputs, as DARTS derives them
        inputs = code[1::2]
        return not distinct_inputs or all(inputs[i] != inputs[i + 1] for i in range(0, len(inputs), 2))

    return Encoding(tuple(edge_positions) * 2, encode, decode, valid)


ENCODINGS.register("DARTS")(lambda: darts_cells(SWAP_OPS, distinct_inputs=False))
ENCODINGS.register("NASBench301")(lambda: darts_cells(NB301_OPS, distinct_inputs=True))


# ---------------------------------------------------------------------------------------------- NATS-SSS
@ENCODINGS.register("NATSBenchSSS")
def nats_sss() -> Encoding:
    return Encoding((CHOICES,) * 5, parse_channels, lambda code: ":".join(map(str, code)))
