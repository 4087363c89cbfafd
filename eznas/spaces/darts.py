"""DARTS genotypes and the DARTS CIFAR network (Liu et al., ICLR 2019); the NDS spaces reuse both.

A genotype gives, for the normal and the reduction cell, two ``(op, input)`` edges per intermediate
node and the nodes whose outputs are concatenated into the cell output::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[...], reduce_concat=range(2, 6))

States 0 and 1 are the (preprocessed) outputs of the two previous cells; the k-th pair of edges
(k = 0, 1, ...) builds state k + 2 and may read states 0..k+1. DARTS cells have 4 intermediate nodes,
the NDS PNAS/Amoeba/NASNet/ENAS cells 5; the cell here takes any number.

The network: stem conv3x3 to 3C channels + BN; ``layers`` cells, with reduction cells (stride 2,
channels doubled) at layers//3 and 2*layers//3; global average pooling and a linear classifier. Ops are
pre-activation (ReLU -> conv -> BN). No auxiliary head and no drop path: the nets are scored, not trained.
The DARTS paper evaluates C=36 with 20 cells (NDS uses the width/depth of each record).

Which network of a genotype is scored is part of a proxy's protocol (``SpaceOptions.probe``, ``PROBES``).
The DARTS space scores ``swap`` by default: SWAP's probe network ``Network(3, 10, 1, genotype)`` (its
``correlation.py``): no stem, the image goes straight into one cell, which is a reduction cell
(``layers // 3 == 0``) of width 2 x 3, 0.3-2.7k parameters. Most proxies rank the DARTS CSV better on it
than on the standard network (README, ``benchmarks/bench_probe.py``). ``none`` is the standard network at
CPU size: stem conv3x3 to 3C + BN, C=16, 8 cells. An explicit width or cell count overrides the probe's.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import torch
import torch.nn as nn

from eznas.errors import ArchError, DataError, EznasError
from eznas.spaces.base import Arch, SearchSpace, SpaceOptions, register_space
from eznas.spaces.encoding import Encoding
from eznas.spaces.nb201 import read_archs
from eznas.spaces.ops import AvgPool2d, FactorizedReduce, MaxPool2d, ReLUConvBN, Zero

Edges = tuple[tuple[str, int], ...]


class SepConv(nn.Sequential):
    """Separable conv applied twice: [ReLU, depthwise k x k (stride s), pointwise 1x1, BN], then stride 1."""

    def __init__(self, c: int, kernel: int, stride: int, padding: int, dilation: int = 1):
        def half(s: int) -> list[nn.Module]:
            return [
                nn.ReLU(inplace=False),
                nn.Conv2d(c, c, kernel, s, padding, dilation=dilation, groups=c, bias=False),
                nn.Conv2d(c, c, 1, bias=False),
                nn.BatchNorm2d(c),
            ]

        super().__init__(*half(stride), *half(1))


class DilConv(nn.Sequential):
    """ReLU, depthwise dilated k x k conv, pointwise 1x1 conv, BN."""

    def __init__(self, c: int, kernel: int, stride: int, padding: int, dilation: int):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride, padding, dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
        )


class FactorizedConv(nn.Sequential):
    """ReLU, a (1, k) conv with stride (1, s), a (k, 1) conv with stride (s, 1), BN (NASNet's 1xk-kx1)."""

    def __init__(self, c: int, kernel: int, stride: int):
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, kernel), stride=(1, stride), padding=(0, pad), bias=False),
            nn.Conv2d(c, c, (kernel, 1), stride=(stride, 1), padding=(pad, 0), bias=False),
            nn.BatchNorm2d(c),
        )


def _skip(c: int, stride: int) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(c, c)


# name -> factory(C, stride): the DARTS ops plus those of the NDS spaces (pycls/NDS ``operations.py``).
# The 2x2 pools of that file are left out: with stride 1 and no padding they shrink the feature map, so no
# cell can use them, and none of the five NDS spaces does.
OPS: dict[str, Callable[[int, int], nn.Module]] = {
    "none": lambda c, s: Zero(s),
    "avg_pool_3x3": lambda c, s: AvgPool2d(3, s, 1, count_include_pad=False),
    "avg_pool_5x5": lambda c, s: AvgPool2d(5, s, 2, count_include_pad=False),
    "max_pool_3x3": lambda c, s: MaxPool2d(3, s, 1),
    "max_pool_5x5": lambda c, s: MaxPool2d(5, s, 2),
    "max_pool_7x7": lambda c, s: MaxPool2d(7, s, 3),
    "skip_connect": _skip,
    "conv_1x1": lambda c, s: ReLUConvBN(c, c, 1, s, 0),
    "conv_3x3": lambda c, s: ReLUConvBN(c, c, 3, s, 1),
    "sep_conv_3x3": lambda c, s: SepConv(c, 3, s, 1),
    "sep_conv_5x5": lambda c, s: SepConv(c, 5, s, 2),
    "sep_conv_7x7": lambda c, s: SepConv(c, 7, s, 3),
    "dil_conv_3x3": lambda c, s: DilConv(c, 3, s, 2, 2),
    "dil_conv_5x5": lambda c, s: DilConv(c, 5, s, 4, 2),
    "dil_sep_conv_3x3": lambda c, s: SepConv(c, 3, s, 2, dilation=2),
    "conv_3x1_1x3": lambda c, s: FactorizedConv(c, 3, s),
    "conv_7x1_1x7": lambda c, s: FactorizedConv(c, 7, s),
}

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


class Cell(nn.Module):
    """A DARTS cell: each node sums two ops on earlier states; the output concatenates the concat states."""

    def __init__(
        self,
        edges: Edges,
        concat: Sequence[int],
        c_prev_prev: int,
        c_prev: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
    ):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:  # the state from two cells back is at twice the resolution
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, c)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        self.ops = nn.ModuleList(OPS[op](c, 2 if reduction and src < 2 else 1) for op, src in edges)
        self.indices = [src for _, src in edges]
        self.concat = list(concat)

    @property
    def multiplier(self) -> int:
        """Output channels divided by the cell's width C."""
        return len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for a in range(0, len(self.ops), 2):
            b = a + 1
            states.append(self.ops[a](states[self.indices[a]]) + self.ops[b](states[self.indices[b]]))
        return torch.cat([states[i] for i in self.concat], dim=1)


class NetworkCIFAR(nn.Module):
    """The DARTS CIFAR network (stem multiplier 3, reductions at layers//3 and 2*layers//3); returns logits."""

    unit_rule = "relu_conv_bn"  # its ReLU-Conv-BN ops are the collector's units (eznas.stats)

    def __init__(self, genotype: Genotype, num_classes: int, C: int = 16, layers: int = 8, stem: bool = True):
        super().__init__()
        if C < 1 or layers < 1 or num_classes < 1:
            raise ArchError(f"DARTS network needs width, cells and num_classes >= 1, got {C}, {layers}, {num_classes}")
        c_curr = 3 * C if stem else 3  # without a stem the first cells read the RGB image
        self.stem = (nn.Sequential(nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
                     if stem else nn.Identity())
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
                edges, concat = genotype.reduce, genotype.reduce_concat
            else:
                edges, concat = genotype.normal, genotype.normal_concat
            cell = Cell(edges, concat, c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c_curr
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(s1.mean(dim=(2, 3)))


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
