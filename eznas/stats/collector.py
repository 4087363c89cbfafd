"""The statistics collector: the named per-unit tensors that proxies and evolved programs read, the config that
chooses them and how they are stored, and the cache key over everything that changes them.

**Names.** Per unit and per pass (D: the data batch; N: Gaussian noise of the same shape; P: the data
plus ``perturbation`` times Gaussian noise, stored as the difference P - D):

==============  ===============================================================================
``inp``         the block input, before the activation (ReLU in our spaces)
``pre``         the conv input, after the activation
``act``         the norm output (BatchNorm; under ``layer`` the last conv's output where no norm follows)
``*_grad``      the gradient of the backward signal w.r.t. each of them: this unit's share where a
                tensor has several readers; ``inp_grad`` is what flows back through the unit's ReLU
                call, as a backward hook on the ReLU sees it (``pre_grad * 1[inp > 0]`` when the
                ReLU feeds only this conv, as in NB-201 and DARTS)
``weight_grad`` the gradient w.r.t. the first conv's weight
==============  ===============================================================================

and, once per unit, ``weight`` (the first conv's weight). A stored name is ``<stat>_<pass>``, e.g.
``inp_grad_D`` or ``act_N``: 1 + 7 x 3 = 22 names, as in EZNAS, but bound by name.
The backward signal is the sum of the logits (EZNAS) or the cross-entropy with the labels (Sweetimator).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from eznas.data import Batch
from eznas.features import network_features
from eznas.stats.passes import collect_tensors

COLLECTOR_VERSION = 7  # 2: a ReLU called more than once gives each unit its own input; 3: inp_grad as
# the ReLU's backward gives it (differs from 2 only where a ReLU output has several readers); 4: the N pass
# runs in the batch's memory layout (same noise values; its gradients round differently); 5: network
# features (eznas.features) stored with the units; 6: float16 storage saturates at +-65504 (was inf);
# 7: batches and inputs in the standard layout, not channels-last (eznas.data.normalise: a oneDNN bug)
STATS = ("inp", "inp_grad", "pre", "pre_grad", "weight_grad", "act", "act_grad")
PASSES = ("D", "N", "P")
NAMES = ("weight", *(f"{s}_{p}" for p in PASSES for s in STATS))
SIGNALS = ("logits_sum", "ce")
DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass(frozen=True)
class CollectorConfig:
    names: tuple[str, ...] = NAMES  # which named tensors to keep
    signal: str = "logits_sum"  # backward signal: "logits_sum" (EZNAS) or "ce" (cross-entropy)
    dtype: str = "float32"  # storage: "float32" or "float16"
    max_samples: int | None = None  # keep at most this many batch samples of each per-sample tensor
    perturbation: float = 0.1  # P = D + perturbation * N(0, 1); EZNAS: sqrt(0.01)
    noise_seed: int = 0  # seeds the N and P passes' noise

    def __post_init__(self) -> None:
        bad = [n for n in self.names if n not in NAMES]
        if bad:
            raise ValueError(f"unknown statistic {bad[0]!r}; valid: {', '.join(NAMES)}")
        if self.signal not in SIGNALS:
            raise ValueError(f"unknown backward signal {self.signal!r}; valid: {', '.join(SIGNALS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown storage dtype {self.dtype!r}; valid: {', '.join(DTYPES)}")


@dataclass
class Unit:
    name: str  # module path of the unit's first conv, e.g. "cells.3.edges.1.0.1"
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class NetworkStats:
    units: list[Unit]
    features: dict[str, float] = field(default_factory=dict)  # eznas.features.FEATURES of the network

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for u in self.units for t in u.tensors.values())

def rounded(t: torch.Tensor, dtype: torch.dtype, copy: bool = False) -> torch.Tensor:
    """``t`` as ``dtype``, saturating: a finite value beyond ``dtype``'s range becomes its largest finite
    value of the same sign instead of an infinity (float16 stops at 65504, and deep residual sums of an
    untrained network pass that), so signs, orders and finiteness survive the rounding."""
    if dtype == t.dtype or not dtype.is_floating_point:
        return t.to(dtype, copy=copy)
    big = torch.finfo(dtype).max
    if torch.finfo(t.dtype).max > big and bool((t.abs() > big).logical_and(t.isfinite()).any()):
        t = torch.where(t.isfinite(), t.clamp(-big, big), t)
    return t.to(dtype, copy=copy)


def collect(net: nn.Module, batch: Batch, config: CollectorConfig = CollectorConfig(),
            features: bool = True) -> NetworkStats:
    """Run the passes ``config`` needs on ``net`` (in train mode) and return the named per-unit tensors,
    stored as ``config.dtype`` with at most ``config.max_samples`` samples per tensor, and (if ``features``)
    the network's features (eznas.features).

    The network's weights are not changed; its gradients are cleared afterwards.
    """
    units = collect_tensors(net, batch.x, batch.y, config.names, config.signal, config.noise_seed,
                            config.perturbation)
    dtype, cap = DTYPES[config.dtype], config.max_samples
    out = []
    for name, tensors in units:
        for key, t in tensors.items():
            capped = cap is not None and key != "weight" and not key.startswith("weight_grad") and len(t) > cap
            # a copy only where the tensor would otherwise alias the net's weight or a larger storage
            tensors[key] = rounded((t[:cap] if capped else t), dtype, copy=capped or key == "weight")
        out.append(Unit(name, tensors))
    return NetworkStats(out, network_features(net, batch.x, len(out)) if features else {})

def statistic(t: torch.Tensor) -> torch.Tensor:
    """A statistic as programs and the proxies built on the collector read it: float32 in the standard
    (contiguous) layout, so a value does not depend on how the statistics were stored (fresh from the
    collector, channels-last like the batch, or loaded from the cache)."""
    return t.to(torch.float32, memory_format=torch.contiguous_format)

def stats_key(**fields: object) -> str:
    """A cache key over everything that changes the numbers (pass space, arch, dataset, batch seed and
    size, init scheme and seed, and the collector config); the collector version is always included."""
    blob = json.dumps({"collector_version": COLLECTOR_VERSION, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
