"""The DARTS space (Liu et al., ICLR 2019): genotypes with CIFAR-10 accuracies (the SWAP release), the
networks a genotype is scored on (``PROBES``) and the per-cell encoding a search walks (``darts_cells``).

A genotype is read by ``darts_genotype`` and built by ``darts_network`` (the DARTS CIFAR network); NB-301
and the NDS spaces reuse both.

Which network of a genotype is scored is part of a proxy's protocol (``SpaceOptions.probe``, ``PROBES``).
The DARTS space scores ``swap`` by default: SWAP's probe network ``Network(3, 10, 1, genotype)`` (its
``correlation.py``): no stem, the image goes straight into one cell, which is a reduction cell
(``layers // 3 == 0``) of width 2 x 3, 0.3-2.7k parameters. Most proxies rank the DARTS CSV better on it
than on the standard network (README, ``benchmarks/bench_probe.py``). ``none`` is the standard network at
CPU size: stem conv3x3 to 3C + BN, C=16, 8 cells. An explicit width or cell count overrides the probe's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch.nn as nn

from eznas.errors import ArchError, DataError, EznasError
from eznas.spaces.base import Arch, SearchSpace, SpaceOptions, register_space
from eznas.spaces.darts_genotype import parse_genotype
from eznas.spaces.darts_network import NetworkCIFAR
from eznas.spaces.encoding import Encoding
from eznas.spaces.nb201 import read_archs


@dataclass(frozen=True)
class Probe:
    """A network of a genotype (a proxy's own probe network, or the standard one): width, cells, stem."""

    width: int
    cells: int
    stem: bool
    doc: str


PROBES = {"swap": Probe(3, 1, False, "SWAP's correlation.py: Network(3, 10, 1, genotype), no stem, one reduction cell"),
          "none": Probe(16, 8, True, "the standard DARTS CIFAR network at CPU size: stem, 8 cells, width 16")}


NB301_OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
             "dil_conv_5x5")  # DARTS's primitives without "none": NB-301's space (each node reads two inputs)
SWAP_OPS = (*NB301_OPS, "none")  # the SWAP DARTS CSV's space: 8 ops, and a node may read one input twice
STEPS = 4  # intermediate nodes per cell of the searched genotypes


def darts_cells(ops: tuple[str, ...], distinct_inputs: bool) -> Encoding:
    """Per cell (normal, then reduce), per edge: its op, then its input node (node k reads 0..k+1); concat
    2..5. ``distinct_inputs``: a node's two edges read two different inputs, as DARTS derives them."""
    edge_positions = [p for k in range(STEPS) for _ in range(2) for p in (ops, tuple(range(k + 2)))]

    def encode(spec: str) -> tuple:
        g = parse_genotype(spec)
        return tuple(v for cell in (g.normal, g.reduce) for edge in cell for v in edge)

    def decode(code: tuple) -> str:
        half = len(code) // 2
        cells = [[(code[i], code[i + 1]) for i in range(start, start + half, 2)] for start in (0, half)]
        concat = list(range(2, 2 + STEPS))
        return f"Genotype(normal={cells[0]!r}, normal_concat={concat!r}, reduce={cells[1]!r}, reduce_concat={concat!r})"

    def valid(code: tuple) -> bool:
        inputs = code[1::2]
        return not distinct_inputs or all(inputs[i] != inputs[i + 1] for i in range(0, len(inputs), 2))

    return Encoding(tuple(edge_positions) * 2, encode, decode, valid)


@register_space("DARTS")
class DARTS(SearchSpace):
    """DARTS-space genotypes with CIFAR-10 accuracies (the SWAP release: ``genotype,valid_acc`` CSV)."""

    name = "DARTS"
    sized = ("width", "cells")
    default_probe = "swap"
    networks: ClassVar[dict[str, Probe]] = PROBES  # what --probe may name in this space

    def __init__(self, options: SpaceOptions = SpaceOptions()) -> None:
        super().__init__(options)
        self.probe = options.probe or self.default_probe
        if self.probe not in self.networks:
            raise EznasError(f"unknown probe network {self.probe!r}; valid: {', '.join(self.networks)}")
        probe = self.networks[self.probe]
        self.width = probe.width if options.width is None else options.width
        self.cells = probe.cells if options.cells is None else options.cells
        self.stem = probe.stem

    @property
    def tag(self) -> str:
        return self.name if self.probe == "none" else f"{self.name}-probe-{self.probe}"

    def encoding(self) -> Encoding:
        """The SWAP CSV's space: DARTS's 8 primitives, ``none`` included; a node may read one input twice."""
        return darts_cells(SWAP_OPS, distinct_inputs=False)

    def default_benchmark(self, data_root: Path, dataset: str) -> Path:
        if dataset != "cifar10":
            raise DataError(
                f"DARTS ground truth is CIFAR-10 only (darts_swap*_cifar10.csv), not {dataset!r}; "
                "pass --benchmark-path to a genotype,<accuracy> CSV for that dataset"
            )
        # the full SWAP release (downloaded) when present, else the mirror's 500-row half
        full = Path(data_root) / "nds" / "darts_swap1000_cifar10.csv"
        return full if full.is_file() else Path(data_root) / "nds" / "darts_swap500_cifar10.csv"

    spec_column, accuracy_column = "genotype", "valid_acc"  # the benchmark CSV's columns

    def spec_of(self, text: Any, where: str) -> str:
        """The genotype string of a table cell (validated; ArchError naming ``where`` and the bad token)."""
        try:
            parse_genotype(text)
        except ArchError as exc:
            raise ArchError(f"{where}: {exc}") from None
        return text

    def load(self, path: Path, dataset: str, accuracy_key: str | None = None) -> list[Arch]:
        """Read a ``<spec_column>,<accuracy>`` CSV; uid = 0-based row; spec = the validated genotype string."""
        return read_archs(path, self.spec_column, accuracy_key or self.accuracy_column, self.spec_of)

    def build(self, spec: str, num_classes: int) -> nn.Module:
        return NetworkCIFAR(parse_genotype(spec), num_classes, self.width, self.cells, self.stem)
