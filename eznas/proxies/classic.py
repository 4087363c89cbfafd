"""The classic zero-cost proxies (NASLib / zero-cost-nas definitions), on the Probe's shared pass."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from eznas.errors import EznasError
from eznas.hooks import attached
from eznas.proxies.base import Probe, register_proxy, weight_layers
from eznas.registry import above


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
    return sum(g.norm().item() for g in probe.weight_grads.values())


@register_proxy("snip", needs={"backward"})
def snip(probe: Probe) -> float:
    """Sum over Conv/Linear weights of |W * dL/dW|, cross-entropy on the batch (Lee et al., ICLR 2019)."""
    return sum((m.weight * g).abs().sum().item() for m, g in probe.weight_grads.items())


@register_proxy("naswot", needs={"relu_kernel"})
def naswot(probe: Probe) -> float:
    """log|K| of the ReLU binary-code kernel over the batch; any activation's codes (input > 0) on other
    models (Mellor et al., ICML 2021)."""
    if not probe.activations:
        raise EznasError(f"NASWOT needs activations: {type(probe.net).__name__} calls none (ReLU, GELU, SiLU, ...)")
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


@register_proxy("jacov", valid={"k": above(0)})
def jacov(probe: Probe, *, k: float = 1e-5) -> float:
    """-sum(log(v + k) + 1/(v + k)) over eigenvalues v of the correlation matrix of the per-sample input
    gradients of the summed logits (Mellor et al., arXiv 2006.04647 v1; NASLib's jacov)."""
    net = probe.copy()
    x = probe.batch.x.clone().requires_grad_()
    net(x).sum().backward()
    jac = x.grad.flatten(1).double()
    v = torch.linalg.eigvalsh(torch.corrcoef(jac))
    return -(torch.log(v + k) + 1.0 / (v + k)).sum().item()


@register_proxy("grasp", labels=True)
def grasp(probe: Probe) -> float:
    """Sum over Conv/Linear weights of -W * (H g), g and H the cross-entropy gradient and Hessian on the
    batch (Wang et al., ICLR 2020; zero-cost-nas protocol)."""
    net = probe.copy()
    layers = list(weight_layers(net))
    weights = [m.weight for m in layers]
    loss = F.cross_entropy(net(probe.batch.x), probe.batch.y)
    g = torch.autograd.grad(loss, weights, allow_unused=True)
    loss = F.cross_entropy(net(probe.batch.x), probe.batch.y)
    g_graph = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    z = sum((a.detach() * b).sum() for a, b in zip(g, g_graph) if a is not None and b is not None)
    try:
        hg = torch.autograd.grad(z, weights, allow_unused=True)
    except RuntimeError as exc:  # e.g. "derivative for aten::hardsigmoid_backward is not implemented"
        if "not implemented" not in str(exc):
            raise
        raise EznasError(f"GraSP needs second derivatives, which torch lacks for an operation of "
                         f"{type(net).__name__} ({str(exc).splitlines()[0]})") from None
    return sum((-w.detach() * h).sum().item() for w, h in zip(weights, hg) if h is not None)


@register_proxy("fisher", labels=True)
def fisher(probe: Probe, *, per_weight: bool = True) -> float:
    """Sum over Conv/Linear output channels k of del_k = 0.5 * mean over the batch of (sum over positions of
    a * dL/da)^2, each counted once per weight of its channel as zero-cost-nas broadcasts it (per_weight);
    cross-entropy (Turner et al., ICLR 2020; zero-cost-nas protocol)."""
    net = probe.copy()
    outs: list[tuple[nn.Module, torch.Tensor]] = []

    def keep(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        out.retain_grad()
        outs.append((module, out))

    with attached(m.register_forward_hook(keep) for m in weight_layers(net)):
        F.cross_entropy(net(probe.batch.x), probe.batch.y).backward()
    total = 0.0
    for module, a in outs:
        if a.grad is None:
            continue
        g_nk = (a * a.grad).flatten(2).sum(2) if a.dim() > 2 else a * a.grad
        del_k = g_nk.detach().pow(2).mean(0).mul(0.5).sum().item()
        total += del_k * (module.weight[0].numel() if per_weight else 1)
    return total
