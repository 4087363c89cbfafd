"""Cell operations shared by the NB-201 and DARTS/NDS builders (pre-activation: ReLU -> Conv -> BN)."""
from __future__ import annotations

import torch
import torch.nn as nn


class _ChannelsLast(torch.autograd.Function):
    """x in channels-last layout; its gradient goes back in the usual layout, so that the layers before
    compute their gradients as they would without it."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 - autograd's signature
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return grad.contiguous()


def _channels_last(pool: type[nn.Module]) -> type[nn.Module]:
    """``pool`` computed in channels-last layout on the CPU: PyTorch's CPU pooling kernels are 2-5x faster
    there and give the same bits forward and backward (tested); input gradient and output are in the usual
    layout."""

    class Pool(pool):  # type: ignore[misc, valid-type]
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.device.type != "cpu" or x.dim() != 4 or x.is_contiguous(memory_format=torch.channels_last):
                return super().forward(x)  # a channels-last input is pooled as it is, as before
            return super().forward(_ChannelsLast.apply(x)).contiguous()

    Pool.__name__ = Pool.__qualname__ = pool.__name__
    Pool.__doc__ = f"nn.{pool.__name__}, computed channels-last on the CPU (same values, faster)."
    return Pool


AvgPool2d = _channels_last(nn.AvgPool2d)
MaxPool2d = _channels_last(nn.MaxPool2d)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int = 1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape (``x * 0`` keeps NaN and the autograd graph); with
    ``channels``, that many zero channels (an edge that changes the width)."""

    def __init__(self, stride: int = 1, channels: int | None = None):
        super().__init__()
        self.stride, self.channels = stride, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.mul(0.0) if self.stride == 1 else x[:, :, :: self.stride, :: self.stride].mul(0.0)
        if self.channels is None:
            return out
        return out.sum(dim=1, keepdim=True).expand(-1, self.channels, -1, -1)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset 1x1 stride-2 convs whose outputs are concatenated."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))
