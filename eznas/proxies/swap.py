"""SWAP and regularised SWAP (Peng et al., ICLR 2024): distinct sample-wise activation patterns."""
from __future__ import annotations

import torch
import torch.nn as nn

from eznas.hooks import attached
from eznas.proxies.base import Probe, register_proxy


def gaussian_init_(net: nn.Module, generator: torch.Generator) -> None:
    """SWAP's re-initialisation: Conv/Linear weights N(0, 1) and biases 0, BN weight 1 and bias 0."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def pack_patterns(codes: torch.Tensor) -> torch.Tensor:
    """(samples, neurons) booleans -> one int64 per neuron holding its pattern over the samples.

    The bits are summed by a matrix product in floating point, exact for up to 24 (float32) or 53
    (float64) samples, and much faster than integer shifts over the whole matrix."""
    s = codes.shape[0]
    if s > 53:
        raise ValueError(f"cannot pack patterns of {s} samples (at most 53)")
    dtype = torch.float32 if s <= 24 else torch.float64
    powers = 2.0 ** torch.arange(s, dtype=dtype, device=codes.device)
    return (powers @ codes.to(dtype)).to(torch.int64)


def count_patterns(codes: torch.Tensor) -> int:
    """Distinct columns of a (samples, neurons) boolean matrix: each neuron's pattern over the batch."""
    if codes.shape[0] > 53:
        return torch.unique(codes.T, dim=0).shape[0]
    return count_packed(pack_patterns(codes), codes.shape[0])


def count_packed(packed: torch.Tensor, samples: int) -> int:
    if samples <= 20:  # at most 2^20 patterns: a bincount is linear time
        return int(torch.count_nonzero(torch.bincount(packed, minlength=1)))
    return torch.unique(packed).numel()


def swap_patterns(net: nn.Module, x: torch.Tensor) -> int:
    """SWAP of one initialisation: hooks every nn.ReLU with a 4-D input, concatenates the per-sample
    sign patterns of their outputs and counts the distinct ones."""
    codes: list[torch.Tensor] = []
    s = x.shape[0]

    def hook(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        if inputs[0].dim() == 4:
            c = (out > 0).flatten(1)
            codes.append(pack_patterns(c) if s <= 53 else c)  # packed per layer: small and fast

    with attached(m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)):
        with torch.inference_mode():
            net(x)
    if not codes:
        return 0
    if s > 53:
        return count_patterns(torch.cat(codes, dim=1))
    return count_packed(torch.cat(codes), s)


@register_proxy("swap")
def swap(probe: Probe, *, repeats: int = 32, reinit: bool = True) -> float:
    """Mean over `repeats` N(0,1) re-initialisations of the number of distinct sample-wise ReLU activation
    patterns on the batch, forward only, no labels (Peng et al., ICLR 2024). reinit=false: the network's
    own weights, once."""
    key = ("swap", repeats, reinit)
    if key not in probe.memo:  # reg_swap in the same run reuses it
        net, gen = probe.copy(), probe.generator(salt=1)
        total = 0
        for _ in range(repeats if reinit else 1):
            if reinit:
                gaussian_init_(net, gen)
            total += swap_patterns(net, probe.batch.x)
        probe.memo[key] = total / (repeats if reinit else 1)
    return probe.memo[key]


@register_proxy("reg_swap")
def reg_swap(probe: Probe, *, repeats: int = 32, mu: float = 1000.0, sigma: float = 1.0e6) -> float:
    """SWAP x exp(-(P - mu)^2 / sigma), P = parameters in thousands; mu and sigma are the user's model-size
    target (ours: mu=1000, sigma=1e6; Peng et al., ICLR 2024)."""
    p = sum(q.numel() for q in probe.net.parameters()) / 1e3
    return swap(probe, repeats=repeats) * float(torch.exp(torch.tensor(-((p - mu) ** 2) / sigma)))
