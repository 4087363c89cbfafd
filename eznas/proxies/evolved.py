"""The published EZNAS program (Akhauri et al., NeurIPS 2022), on our statistics collector."""
from __future__ import annotations

import math

import torch

from eznas.inits import kaiming_init_
from eznas.proxies.base import Probe, register_proxy
from eznas.stats.collector import CollectorConfig, collect, statistic


def eznas_unit_score(inp_grad: torch.Tensor) -> float:
    """||sigmoid(logdet(sign(g)))||_F over the (batch x channel) H x W maps; logdet NaN -> 0 as EZNAS."""
    logdet = torch.logdet(torch.sign(inp_grad).double())
    return torch.sigmoid(torch.nan_to_num(logdet, nan=0.0)).norm().item()


@register_proxy("eznas")
def eznas(probe: Probe, *, kaiming: bool = True) -> float:
    """Mean over ReLU-Conv-BN units of ||sigmoid(logdet(sign(dR/d block input)))||_F, R = sum of logits,
    Kaiming init (the published EZNAS 'darts' program; Akhauri et al., NeurIPS 2022)."""
    net = probe.copy()
    if kaiming:
        kaiming_init_(net, probe.generator(salt=2))
    stats = collect(net, probe.batch, CollectorConfig(names=("inp_grad_D",), signal="logits_sum"))
    scores = [eznas_unit_score(statistic(u.tensors["inp_grad_D"])) for u in stats.units]
    return math.fsum(scores) / len(scores) if scores else float("nan")
