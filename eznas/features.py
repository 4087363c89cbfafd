"""Network-level features: the ``Net`` terminals of the primitive language (torch only, so exported
proxies carry this very code).

==========  ======================================================================================
``params``  trainable parameters, in millions (the ``params`` proxy)
``flops``   Conv2d and Linear multiply-accumulates for one input, in millions (the ``flops`` proxy)
``n_units`` the number of units the collector found (eznas.stats: ReLU-Conv-BN, or Conv-BN)
``depth``   the most Conv2d/Linear layers on any path from the input to the output (from the autograd
            graph of one forward, so skips and parallel branches count as they are wired)
==========  ======================================================================================
"""
from __future__ import annotations

import torch
import torch.nn as nn

FEATURES = ("params", "flops", "n_units", "depth")


def layer_macs(module: nn.Module, out: torch.Tensor) -> float:
    """Multiply-accumulates of one Conv2d or Linear call for one sample."""
    if isinstance(module, nn.Conv2d):
        return float(out[0].numel() * module.weight[0].numel())  # (C_in / groups) * kh * kw per output
    return float(module.in_features * module.out_features)


def network_features(net: nn.Module, x: torch.Tensor, n_units: int) -> dict[str, float]:
    """``params``, ``flops``, ``n_units`` and ``depth`` of ``net`` from one forward of ``x``'s first
    sample in eval mode (no batch statistics change; the mode is restored)."""
    macs = 0.0

    def hook(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal macs
        macs += layer_macs(module, out)

    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = net.training
    try:
        with torch.enable_grad():
            out = net.eval()(x[:1].detach().requires_grad_(True))
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return {"params": params / 1e6, "flops": macs / 1e6, "n_units": float(n_units),
            "depth": float(graph_depth(out.grad_fn))}


def graph_depth(root) -> int:  # noqa: ANN001 - an autograd Node
    """The most weighted (Conv/Linear) nodes on any path from ``root`` down the autograd graph."""
    weighted = ("ConvolutionBackward", "AddmmBackward", "MmBackward", "MkldnnConvolutionBackward")
    depth: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if node is None or (id(node) in depth and not expanded):
            continue
        children = [n for n, _ in node.next_functions if n is not None]
        if not expanded:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in depth)
            continue
        own = 1 if type(node).__name__.startswith(weighted) else 0
        depth[id(node)] = own + max((depth.get(id(c), 0) for c in children), default=0)
    return depth.get(id(root), 0)
