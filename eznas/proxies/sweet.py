"""Sweet Gradient (Yang et al., Neural Networks 168, 2023): count the weights whose gradient magnitude
falls in an interval, and find that interval without training."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from eznas.data import Batch
from eznas.proxies.base import Probe, register_proxy, weight_layers
from eznas.registry import Valid, above, at_least

# bin edges of the interval search: 0, 5e-10, 1e-9, 5e-9, ..., 1e-1, 5e-1, 1, 5 (21 bins)
GRID = (0.0, *[m * 10.0 ** e for e in range(-10, 1) for m in (1.0, 5.0)][1:])


@register_proxy("sweetimator", needs={"backward"}, valid={"low": at_least(0), "high": above(0)},
                rules=[Valid(lambda o: o["low"] < o["high"], "low < high", ("low", "high"))])
def sweetimator(probe: Probe, *, low: float = 1e-4, high: float = 5e-4) -> float:
    """Number of Conv/Linear weights with low <= |dCE/dw| < high on one batch (the paper's: 64, where the
    interval is chosen); NB-201's interval [1e-4, 5e-4) (Yang et al., Neural Networks 2023)."""
    return float(sum(((g.abs() >= low) & (g.abs() < high)).sum().item() for g in probe.weight_grads.values()))


def cell_shares(net: nn.Module, batch: Batch, edges: Sequence[float] = GRID) -> np.ndarray:
    """(cells, bins): per cell (the children of ``net.cells``, in order), the share of its Conv/Linear
    weights whose |dCE/dw| falls in each bin; NaN rows for cells without weights."""
    cells = getattr(net, "cells", None)
    if cells is None:
        raise TypeError(f"{type(net).__name__} has no 'cells' container to measure per-cell shares on")
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(batch.x), batch.y).backward()
    bounds = torch.tensor(edges, dtype=torch.float64)
    shares = np.full((len(cells), len(edges) - 1), np.nan)
    for i, cell in enumerate(cells):
        grads = [m.weight.grad.abs().flatten().double() for m in weight_layers(cell) if m.weight.grad is not None]
        if grads:
            g = torch.cat(grads).cpu()  # torch.histogram is CPU-only
            counts = torch.histogram(g.clamp(max=edges[-1] * (1 - 1e-12)), bins=bounds).hist
            shares[i] = counts.numpy() / g.numel()
    net.zero_grad(set_to_none=True)
    return shares


def monotonicity(shares: np.ndarray) -> np.ndarray:
    """Per bin: the mean over consecutive cells (with weights) of sign(r_{l+1} - r_l)."""
    rows = shares[~np.isnan(shares).any(axis=1)]
    if len(rows) < 2:
        return np.full(shares.shape[1], np.nan)
    return np.sign(np.diff(rows, axis=0)).mean(axis=0)


def find_sweet_interval(per_network_shares: Sequence[np.ndarray], edges: Sequence[float] = GRID
                        ) -> tuple[float, float, np.ndarray]:
    """The bin whose share rises most steadily with depth, averaged over networks: (low, high, scores)."""
    scores = np.nanmean(np.stack([monotonicity(s) for s in per_network_shares]), axis=0)
    best = int(np.nanargmax(scores))
    return edges[best], edges[best + 1], scores
