"""Architectures as tuples of choices, for search: draw one at random, mutate one position, turn back into
the space's spec string.

An ``Encoding`` is a list of positions, each with its valid values; ``valid`` rejects a tuple the space does
not allow (a NB-301 node whose two edges read the same input). A space that can be searched returns its own
from ``SearchSpace.encoding()`` (None: it cannot be searched).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Choices = tuple[object, ...]


@dataclass(frozen=True)
class Encoding:
    positions: tuple[Choices, ...]  # the values each position may take
    encode: Callable[[str], tuple]  # a spec string -> its tuple (raises ArchError on a bad spec)
    decode: Callable[[tuple], str]  # a tuple -> the spec string ``SearchSpace.build`` takes
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
