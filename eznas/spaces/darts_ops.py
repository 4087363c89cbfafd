"""The DARTS/NDS cell operations: ``OPS``, op name -> factory(C, stride), and the ops only DARTS-cell
spaces use (pre-activation: ReLU -> conv -> BN)."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from eznas.spaces.ops import AvgPool2d, FactorizedReduce, MaxPool2d, ReLUConvBN, Zero


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
