"""ZiCo (Li et al., ICLR 2023) and MeCo (Jiang et al., NeurIPS 2023)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from eznas.errors import EznasError
from eznas.hooks import attached
from eznas.kernels import channel_corr_min_eig
from eznas.proxies.base import Probe, register_proxy, weight_layers
from eznas.registry import Valid, at_least


@register_proxy("zico", labels=True, valid={"splits": at_least(2)}, rules=[  # std over splits; each split needs an image
    Valid(lambda o: o["batch_size"] is None or o["splits"] <= o["batch_size"], "splits <= --batch_size",
          ("splits", "batch_size"))])
def zico(probe: Probe, *, splits: int = 2) -> float:
    """Sum over Conv/Linear layers of log(sum over weights of mean|g| / std(g)), g the CE gradients of
    `splits` equal parts of the batch; zero-std weights are skipped (Li et al., ICLR 2023)."""
    net = probe.copy()
    layers = list(weight_layers(net))
    per_split: list[list[torch.Tensor]] = []
    for x, y in zip(probe.batch.x.chunk(splits), probe.batch.y.chunk(splits)):
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        per_split.append([m.weight.grad.detach().clone() if m.weight.grad is not None else None for m in layers])
    total = 0.0
    for i in range(len(layers)):
        grads = [s[i] for s in per_split if s[i] is not None]
        if len(grads) < 2:
            continue
        g = torch.stack(grads)
        std, mean_abs = g.std(0), g.abs().mean(0)
        nonzero = std != 0
        s = (mean_abs[nonzero] / std[nonzero]).sum().item()
        if s > 0:
            total += math.log(s)
    return total


# two stride-2 reductions (NB-201's residual blocks, DARTS's reduction cells) need a map divisible by 4
@register_proxy("meco", valid={"resolution": Valid(lambda r: r >= 8 and r % 4 == 0, "a multiple of 4, >= 8")})
def meco(probe: Probe, *, resolution: int = 64) -> float:
    """Sum over modules with a 4-D output of the smallest eigenvalue of the Pearson correlation between the
    channels of one N(0,1) input's feature map; forward only (Jiang et al., NeurIPS 2023)."""
    net = probe.copy()
    x = torch.randn(1, 3, resolution, resolution, generator=probe.generator(salt=3)).to(probe.batch.x.device)
    total = 0.0

    def hook(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(out, torch.Tensor) and out.dim() == 4:
            total += channel_corr_min_eig(out[0].detach().flatten(1)).item()

    with attached(m.register_forward_hook(hook) for m in net.modules()), torch.no_grad():
        try:
            net(x)
        except RuntimeError as exc:  # a model that takes one input size only (e.g. a flattening head)
            raise EznasError(f"MeCo feeds one {resolution}x{resolution} noise image (its protocol), which "
                             f"{type(probe.net).__name__} does not take ({str(exc).splitlines()[0]}): set "
                             f"meco:resolution=<your input size>") from None
    return total
