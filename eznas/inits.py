"""One registry of weight initialisations: ``get_init(name)(net, generator)`` re-initialises ``net`` in place.

    @register_init("mine")
    def mine_(net: nn.Module, generator: torch.Generator | None = None) -> None:
        ...  # the docstring's first line names the recipe's source

``build_network`` (``--init NAME``) calls one with ``generator=None``: it draws from the global RNG that
``build_network`` seeds per arch. A proxy with a protocol of its own calls one with ``probe.generator(salt)``.
Each recipe draws exactly as its call site always has (cached values depend on it): where the two paths of
one recipe differ, its docstring says how. The proxies call these functions by name (not through the
registry), so the portable ``best_proxy.py`` carries their source (``register_init`` is stripped there).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn

from eznas.registry import Registry

Init = Callable[[nn.Module, Optional[torch.Generator]], None]
INITS: Registry[Init] = Registry("init")


def register_init(name: str) -> Callable[[Init], Init]:
    """Register ``fn(net, generator) -> None`` as the initialisation ``name``."""
    return INITS.register(name)


def get_init(name: str) -> Init:
    """The initialisation ``name`` (UnknownNameError listing the valid names)."""
    return INITS.get(name)


def list_inits(pattern: str = "*") -> list[str]:
    """The registered initialisation names, sorted (fnmatch ``pattern``)."""
    return INITS.names(pattern)


@register_init("default")
def default_init_(net: nn.Module, generator: torch.Generator | None = None) -> None:
    """PyTorch's default initialisation: the weights as the modules were built (a no-op)."""


@register_init("kaiming")
def kaiming_init_(net: nn.Module, generator: torch.Generator | None = None) -> None:
    """EZNAS's initialisation (Akhauri et al., NeurIPS 2022): Conv2d Kaiming-normal (fan_out, ReLU), BN weight
    1 bias 0, Linear N(0, 0.01) bias 0. ``generator=None``: drawn through ``nn.init`` on the global RNG
    (``--init kaiming``); a generator: ``torch.randn(generator=...) * std`` on the CPU (the ``eznas``
    proxy). Same distribution, different draws."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                if generator is None:
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    fan_out = m.weight.shape[0] * m.weight[0, 0].numel()
                    m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * (2.0 / fan_out) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                if m.weight is not None:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
            elif isinstance(m, nn.Linear):
                if generator is None:
                    nn.init.normal_(m.weight, 0, 0.01)
                else:
                    m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * 0.01)
                if m.bias is not None:
                    m.bias.zero_()


@register_init("gaussian")
def gaussian_init_(net: nn.Module, generator: torch.Generator | None = None) -> None:
    """SWAP's re-initialisation (Peng et al., ICLR 2024): Conv2d/Linear weights N(0, 1) (``torch.randn`` on
    the CPU, from ``generator`` or the global RNG) and biases 0, BN weight 1 and bias 0."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


@register_init("kaiming_fan_in")
def kaiming_fan_in_(net: nn.Module, generator: torch.Generator | None = None) -> None:
    """AZ-NAS's initialisation (Lee & Ham, CVPR 2024): Conv2d/Linear Kaiming-normal (fan_in, ReLU) and biases
    0, BatchNorm2d/GroupNorm/LayerNorm weight 1 and bias 0, through ``nn.init``. A generator seeds a forked
    global RNG with one draw from it (the ``az_*`` proxies); ``generator=None`` draws on the global RNG."""
    if generator is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            kaiming_fan_in_(net)
        return
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and getattr(m, "weight", None) is not None:
            nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
