"""NAS-Bench-101 (Ying et al., ICML 2019): cells as a 7-vertex DAG, from NASLib's encoding.

NASLib's encoding (``naslib/search_spaces/nasbench101/conversions.py``) is the flattened 7x7 upper-triangular
adjacency matrix (49 ints) followed by 7 op codes into ``OPS`` (input, output, maxpool3x3, conv1x1-bn-relu,
conv3x3-bn-relu). The table is NAS-Bench-Suite-Zero's early NB-101 file
(``nbsuitezero_early/nb101_zc_early_cifar10.csv``: ``naslib_encoding``, ``val_accuracy``, stored proxy scores).

The network is NB-101's (its ``model_builder``): stem conv3x3-BN-ReLU to ``width`` channels (128), 3 stacks of
3 cells with a 2x2 max-pool and doubled channels between stacks, global average pooling and a linear layer.
In a cell every vertex's input is the sum of its predecessors' outputs, truncated to its channel count, and of
a 1x1 conv-BN-ReLU projection of the cell input where the input feeds it; the output concatenates the
vertices that feed it (channels split as in ``compute_vertex_channels``), plus a projection of the input where
the input feeds the output directly. Vertices not on an input-output path are pruned first. ``--width``
scales the stem (for CPU speed); its default is NB-101's 128.

Ops are Conv-BN-ReLU, not pre-activation, so the network declares the collector's ``conv_bn`` unit rule
(eznas.stats): a unit is each Conv -> BN pair (stem, projections and vertex ops alike) with the conv's input
as ``inp`` and ``pre`` and the BN output as ``act``, with their gradients; ReLU -> Conv -> BN units would
cover only the convs that read a ReLU output directly (14 of row 0's 64 convs).
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from eznas.errors import ArchError, DataError
from eznas.spaces.base import Arch, SearchSpace, register_space
from eznas.spaces.nb201 import read_archs
from eznas.spaces.ops import MaxPool2d

OPS = ("input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")
VERTICES = 7


def parse_encoding(text: Any, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """NASLib's 56-int encoding as (pruned adjacency matrix, ops); errors name ``where`` and the bad token."""
    try:
        values = ast.literal_eval(text) if isinstance(text, str) else text
    except (ValueError, SyntaxError):
        raise ArchError(f"{where}: not a NASLib NB-101 encoding: {text!r}") from None
    if not (isinstance(values, (list, tuple)) and len(values) == VERTICES * VERTICES + VERTICES
            and all(type(v) is int for v in values)):
        raise ArchError(f"{where}: expected {VERTICES * VERTICES} adjacency ints and {VERTICES} op codes, got {text!r}")
    matrix = np.array(values[:VERTICES * VERTICES]).reshape(VERTICES, VERTICES)
    bad = [(i, j) for i in range(VERTICES) for j in range(VERTICES) if matrix[i, j] not in (0, 1) or (matrix[i, j] and j <= i)]
    if bad:
        i, j = bad[0]
        raise ArchError(f"{where}: adjacency entry ({i}, {j}) = {matrix[i, j]}: must be 0/1, above the diagonal")
    codes = values[VERTICES * VERTICES:]
    for k, code in enumerate(codes):
        want = 0 if k == 0 else 1 if k == VERTICES - 1 else None
        if not 0 <= code < len(OPS) or (want is not None and code != want) or (want is None and code < 2):
            raise ArchError(f"{where}: bad op code {code} at vertex {k} (input 0 first, output 1 last, ops 2..4)")
    return prune(matrix, tuple(OPS[c] for c in codes), where)


def prune(matrix: np.ndarray, ops: tuple[str, ...], where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Drop the vertices that are not on a path from the input to the output (NB-101's ModelSpec)."""
    n = len(ops)
    reach_in, reach_out = {0}, {n - 1}
    for j in range(1, n):
        if any(matrix[i, j] and i in reach_in for i in range(j)):
            reach_in.add(j)
    for i in range(n - 2, -1, -1):
        if any(matrix[i, j] and j in reach_out for j in range(i + 1, n)):
            reach_out.add(i)
    keep = sorted(reach_in & reach_out)
    if 0 not in keep or n - 1 not in keep:
        raise ArchError(f"{where}: the output is not reachable from the input")
    return matrix[np.ix_(keep, keep)], tuple(ops[k] for k in keep)


def vertex_channels(c_in: int, c_out: int, matrix: np.ndarray) -> list[int]:
    """NB-101's ``compute_vertex_channels``: the output's channels split over the vertices that feed it (the
    remainder to the first ones), every other vertex as wide as the widest vertex it feeds."""
    n = len(matrix)
    channels = [0] * n
    channels[0], channels[-1] = c_in, c_out
    if n == 2:
        return channels
    in_degree = matrix[1:].sum(axis=0)
    interior, correction = divmod(c_out, int(in_degree[-1]))
    for v in range(1, n - 1):
        if matrix[v, -1]:
            channels[v] = interior + (1 if correction else 0)
            correction -= 1 if correction else 0
    for v in range(n - 3, 0, -1):
        if not matrix[v, -1]:
            for dst in range(v + 1, n - 1):
                if matrix[v, dst]:
                    channels[v] = max(channels[v], channels[dst])
    return channels


def conv_bn_relu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


class Cell(nn.Module):
    """One NB-101 module (see the module docstring)."""

    def __init__(self, matrix: np.ndarray, ops: tuple[str, ...], c_in: int, c_out: int):
        super().__init__()
        self.matrix, n = matrix, len(ops)
        self.channels = vertex_channels(c_in, c_out, matrix)
        self.ops = nn.ModuleList([nn.Identity()])  # vertex 0: the input
        self.projections = nn.ModuleDict()
        for t in range(1, n - 1):
            c = self.channels[t]
            if matrix[0, t]:
                self.projections[str(t)] = conv_bn_relu(c_in, c, 1)
            op = ops[t]
            self.ops.append(MaxPool2d(3, stride=1, padding=1) if op == "maxpool3x3"
                            else conv_bn_relu(c, c, 3 if op == "conv3x3-bn-relu" else 1))
        if matrix[0, n - 1]:
            self.projections[str(n - 1)] = conv_bn_relu(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m = len(self.matrix), self.matrix
        tensors = [x]
        for t in range(1, n - 1):
            c = self.channels[t]
            parts = [tensors[src][:, :c] for src in range(1, t) if m[src, t]]
            if m[0, t]:
                parts.append(self.projections[str(t)](x))
            tensors.append(self.ops[t](sum(parts[1:], parts[0])))
        feeding = [tensors[t] for t in range(1, n - 1) if m[t, n - 1]]
        if not feeding:
            return self.projections[str(n - 1)](x)
        out = torch.cat(feeding, dim=1) if len(feeding) > 1 else feeding[0]
        return out + self.projections[str(n - 1)](x) if m[0, n - 1] else out


class Network101(nn.Module):
    """The NB-101 CIFAR network for one cell; returns logits. Its ops are Conv-BN-ReLU, so the collector's
    units are its Conv -> BN pairs, each with the conv's input (eznas.stats, ``unit_rule``)."""

    unit_rule = "conv_bn"

    def __init__(self, matrix: np.ndarray, ops: tuple[str, ...], num_classes: int, width: int = 128,
                 stacks: int = 3, cells: int = 3):
        super().__init__()
        if width < 1 or num_classes < 1:
            raise ArchError(f"NB-101 network needs width and num_classes >= 1, got {width}, {num_classes}")
        layers: list[nn.Module] = [conv_bn_relu(3, width, 3)]
        c_in = c = width
        for stack in range(stacks):
            if stack:
                layers.append(MaxPool2d(2, stride=2))
                c *= 2
            for _ in range(cells):
                layers.append(Cell(matrix, ops, c_in, c))
                c_in = c
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    @property
    def stem(self) -> nn.Module:
        """The first Conv-BN-ReLU (AZ-NAS's first feature)."""
        return self.layers[0]

    @property
    def cells(self) -> list[Cell]:
        """The 9 cells in order (AZ-NAS's features after the stem; the max-pools between stacks are not cells)."""
        return [m for m in self.layers if isinstance(m, Cell)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.layers(x).mean(dim=(2, 3)))


def spec_string(matrix: np.ndarray, ops: tuple[str, ...]) -> str:
    """The arch spec: the pruned matrix's rows and the ops, e.g. ``0110000/0001000/.../input,conv3x3-bn-relu,...``."""
    return "/".join("".join(str(int(v)) for v in row) for row in matrix) + "|" + ",".join(ops)


def parse_spec(spec: str) -> tuple[np.ndarray, tuple[str, ...]]:
    rows, _, ops = spec.partition("|")
    matrix = np.array([[int(ch) for ch in row] for row in rows.split("/")])
    return matrix, tuple(ops.split(","))


@register_space("NASBench101")
class NASBench101(SearchSpace):
    """NB-101 cells (NASLib encoding) with their 108-epoch CIFAR-10 validation accuracies."""

    name = "NASBench101"
    sized = ("width",)
    default_width = 128

    def default_benchmark(self, data_root: Path, dataset: str) -> Path:
        if dataset != "cifar10":
            raise DataError(f"NASBench101 ground truth is CIFAR-10 only (nb101_zc_early_cifar10.csv), not {dataset!r}")
        return Path(data_root) / "nbsuitezero_early" / "nb101_zc_early_cifar10.csv"

    def load(self, path: Path, dataset: str, accuracy_key: str | None = None) -> list[Arch]:
        """Read a ``naslib_encoding,<accuracy>`` CSV; uid = 0-based row; spec = the pruned cell (``spec_string``)."""
        return read_archs(path, "naslib_encoding", accuracy_key or "val_accuracy",
                          lambda text, where: spec_string(*parse_encoding(text, where)))

    def build(self, spec: str, num_classes: int) -> nn.Module:
        width = self.default_width if self.options.width is None else self.options.width
        return Network101(*parse_spec(spec), num_classes, width)
