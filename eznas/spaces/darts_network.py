"""The DARTS CIFAR network of a genotype (Liu et al., ICLR 2019), which the NDS spaces build too.

Stem conv3x3 to 3C channels + BN; ``layers`` cells, with reduction cells (stride 2, channels doubled) at
layers//3 and 2*layers//3; global average pooling and a linear classifier. Ops are pre-activation
(ReLU -> conv -> BN, ``darts_ops.OPS``); a cell takes any number of intermediate nodes. No auxiliary head
and no drop path: the nets are scored, not trained. The DARTS paper evaluates C=36 with 20 cells (NDS uses
the width/depth of each record).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from eznas.errors import ArchError
from eznas.spaces.darts_genotype import Edges, Genotype
from eznas.spaces.darts_ops import OPS
from eznas.spaces.ops import FactorizedReduce, ReLUConvBN


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
