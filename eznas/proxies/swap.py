"""SWAP and regularised SWAP (Peng et al., ICLR 2024): distinct sample-wise activation patterns."""
from __future__ import annotations

import torch
import torch.nn as nn

from eznas.activations import ActivationCalls
from eznas.errors import EznasError
from eznas.inits import gaussian_init_
from eznas.kernels import count_packed, count_patterns, pack_patterns  # noqa: F401 (re-exported)
from eznas.proxies.base import Probe, register_proxy
from eznas.registry import above, at_least


def swap_patterns(net: nn.Module, x: torch.Tensor) -> int:
    """SWAP of one initialisation: the per-sample patterns (input > 0) of every activation call on a 4-D
    feature map (nn.ReLU as in SWAP's code; GELU, SiLU, ReLU6, functional calls alike: eznas.activations),
    concatenated, and the number of distinct ones. A network with no such activation is an error."""
    codes: list[torch.Tensor] = []
    s = x.shape[0]

    def seen(inp: torch.Tensor, out: torch.Tensor) -> None:
        if inp.dim() == 4:
            c = (inp > 0).flatten(1)
            codes.append(pack_patterns(c) if s <= 53 else c)  # packed per layer: small and fast

    with ActivationCalls(seen), torch.inference_mode():
        net(x)
    if not codes:
        raise EznasError(f"SWAP needs activations on feature maps: {type(net).__name__} calls none (ReLU, GELU, "
                         "SiLU, ReLU6, Hardswish, ... on a 4-D tensor)")
    if s > 53:
        return count_patterns(torch.cat(codes, dim=1))
    return count_packed(torch.cat(codes), s)


@register_proxy("swap", valid={"repeats": at_least(1)})
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


@register_proxy("reg_swap", valid={"repeats": at_least(1), "sigma": above(0)})
def reg_swap(probe: Probe, *, repeats: int = 32, mu: float = 1000.0, sigma: float = 1.0e6) -> float:
    """SWAP x exp(-(P - mu)^2 / sigma), P = parameters in thousands; mu and sigma are the user's model-size
    target (ours: mu=1000, sigma=1e6; Peng et al., ICLR 2024)."""
    p = sum(q.numel() for q in probe.net.parameters()) / 1e3
    prior = float(torch.exp(torch.tensor(-((p - mu) ** 2) / sigma)))
    if prior == 0.0:
        raise EznasError(f"reg_swap's size prior exp(-(P - mu)^2 / sigma) is 0 for P = {p:.0f}k parameters (mu={mu}, "
                         f"sigma={sigma}): set reg_swap:mu=...:sigma=... to your model-size target")
    return swap(probe, repeats=repeats) * prior
