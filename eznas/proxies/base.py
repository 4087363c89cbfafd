"""The proxy registry and the Probe: one network on one batch, with the passes proxies share.

A proxy is a function ``fn(probe) -> float`` registered with the passes it reads::

    @register_proxy("snip", needs={"backward"})
    def snip(probe: Probe) -> float: ...

``needs`` is a subset of PASSES. The Probe runs one forward pass (with a cross-entropy backward when
any proxy needs it) and records, through hooks, only what the requested proxies read; several proxies
in one run therefore share the network build and the pass.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from eznas.data import Batch
from eznas.registry import Registry

PASSES = frozenset({"forward", "backward", "relu_kernel", "macs"})


@dataclass(frozen=True)
class Proxy:
    name: str
    fn: Callable[["Probe"], float]
    needs: frozenset[str]
    doc: str  # one line: what it computes, and the reference


PROXIES: Registry[Proxy] = Registry("proxy")


def register_proxy(name: str, needs: Iterable[str] = ()) -> Callable:
    needs = frozenset(needs)
    if not needs <= PASSES:
        raise ValueError(f"proxy {name!r}: unknown needs {sorted(needs - PASSES)}; valid: {sorted(PASSES)}")

    def decorator(fn: Callable[["Probe"], float]) -> Callable[["Probe"], float]:
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        PROXIES.register(name)(Proxy(name, fn, needs, doc))
        return fn

    return decorator


def list_proxies(pattern: str = "*") -> list[str]:
    return PROXIES.names(pattern)


def get_proxy(name: str) -> Proxy:
    return PROXIES.get(name)


def weight_layers(net: nn.Module) -> Iterator[nn.Module]:
    """Conv2d and Linear modules: the layers the classic gradient proxies sum over."""
    return (m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


@dataclass
class Probe:
    """A network on a batch. ``run(needs)`` does the shared pass; proxies read its results."""

    net: nn.Module
    batch: Batch
    logits: torch.Tensor | None = None
    relu_kernel: torch.Tensor | None = None  # NASWOT's K = sum over ReLUs of c c^T + (1-c)(1-c)^T
    macs: float | None = None  # multiply-accumulates of Conv2d and Linear for one sample
    seconds: float = 0.0  # time spent in the shared pass

    def run(self, needs: Iterable[str]) -> None:
        """The one shared pass: a forward (plus CE backward, ReLU codes, MAC counts as needed)."""
        needs = frozenset(needs)
        if not needs:
            return
        start = time.perf_counter()
        hooks = []
        if "relu_kernel" in needs:
            b = self.batch.x.shape[0]
            self.relu_kernel = torch.zeros(b, b, dtype=torch.float64, device=self.batch.x.device)
            # a pre-hook sees the ReLU's input before an in-place ReLU overwrites it
            hooks += [m.register_forward_pre_hook(self._add_codes) for m in self.net.modules()
                      if isinstance(m, nn.ReLU)]
        if "macs" in needs:
            self.macs = 0.0
            hooks += [m.register_forward_hook(self._add_macs) for m in weight_layers(self.net)]
        try:
            self.net.zero_grad(set_to_none=True)
            with torch.set_grad_enabled("backward" in needs):
                self.logits = self.net(self.batch.x)
                if "backward" in needs:
                    F.cross_entropy(self.logits, self.batch.y).backward()
        finally:
            for h in hooks:
                h.remove()
        self.seconds = time.perf_counter() - start

    def _add_codes(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        c = (inputs[0].detach() > 0).flatten(1).to(torch.float64)
        self.relu_kernel += c @ c.T + (1 - c) @ (1 - c).T

    def _add_macs(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            k = module.weight[0].numel()  # (C_in / groups) * kh * kw
            self.macs += out[0].numel() * k
        else:
            self.macs += module.in_features * module.out_features
