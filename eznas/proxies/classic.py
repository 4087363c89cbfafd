"""The classic zero-cost proxies (NASLib / zero-cost-nas definitions), on the Probe's shared pass."""
from __future__ import annotations

import torch
from torch.func import functional_call

from eznas.proxies.base import Probe, register_proxy, weight_layers


@register_proxy("params")
def params(probe: Probe) -> float:
    """Number of trainable parameters, in millions (NB-201's params_mb)."""
    return sum(p.numel() for p in probe.net.parameters() if p.requires_grad) / 1e6


@register_proxy("flops", needs={"macs"})
def flops(probe: Probe) -> float:
    """Conv2d and Linear multiply-accumulates for one input, in millions (NB-201's 'flops' convention)."""
    return probe.macs / 1e6


@register_proxy("grad_norm", needs={"backward"})
def grad_norm(probe: Probe) -> float:
    """Sum over Conv/Linear layers of ||dL/dW||_2, cross-entropy on the batch (Abdelfattah et al., ICLR 2021)."""
    return sum(m.weight.grad.norm().item() for m in weight_layers(probe.net) if m.weight.grad is not None)


@register_proxy("snip", needs={"backward"})
def snip(probe: Probe) -> float:
    """Sum over Conv/Linear weights of |W * dL/dW|, cross-entropy on the batch (Lee et al., ICLR 2019)."""
    return sum((m.weight * m.weight.grad).abs().sum().item() for m in weight_layers(probe.net)
               if m.weight.grad is not None)


@register_proxy("naswot", needs={"relu_kernel"})
def naswot(probe: Probe) -> float:
    """log|K| of the ReLU binary-code kernel over the batch (Mellor et al., ICML 2021)."""
    return torch.linalg.slogdet(probe.relu_kernel).logabsdet.item()


@register_proxy("synflow")
def synflow(probe: Probe) -> float:
    """Sum over Conv/Linear weights of |W| * dR/d|W|, R = sum of the all-ones input's output, float64, no BN
    statistics (Tanaka et al., NeurIPS 2020; zero-cost-nas protocol)."""
    net = probe.net
    params = {k: p.detach().double().abs().requires_grad_() for k, p in net.named_parameters()}
    # fresh BN statistics (mean 0, var 1) in eval mode: BN reduces to its affine part, as with bn=False
    buffers = {k: (torch.ones_like(b) if k.endswith("running_var") else torch.zeros_like(b)).double()
               if b.is_floating_point() else b for k, b in net.named_buffers()}
    x = torch.ones((1, *probe.batch.x.shape[1:]), dtype=torch.float64, device=probe.batch.x.device)
    was_training = net.training
    net.eval()
    try:
        with torch.enable_grad():
            out = functional_call(net, (params, buffers), (x,))
            grads = torch.autograd.grad(out.sum(), list(params.values()), allow_unused=True)
    finally:
        net.train(was_training)
    grad_of = dict(zip(params, grads))
    names = {id(m.weight) for m in weight_layers(net)}
    return sum((params[k] * g).sum().item() for k, p in net.named_parameters()
               if id(p) in names and (g := grad_of[k]) is not None)
