"""AZ-NAS (Lee & Ham, CVPR 2024): expressivity, progressivity and trainability from the cell features of one
forward pass on N(0, 1) noise, plus complexity (FLOPs), combined over a pool of archs as the sum of log
rank / N.

Protocol (``cvlab-yonsei/AZ-NAS``: ``NB201/ZeroShotProxy/compute_az_nas_score.py`` and
``NB201/tss_general.ipynb``): a copy of the network with Kaiming-normal fan-in weights (zero biases, BN
weight 1 and bias 0), in train mode, on a batch of ``batch`` N(0, 1) images of the data's resolution; the
features are the stem's output and every cell's (the network's ``stem`` and ``cells``; without a stem, as in
SWAP's DARTS probe network, the stem's place is taken by the input itself):

* expressivity: the sum over features of the entropy of the normalised eigenvalues of the channel
  covariance (over samples and positions);
* progressivity: the smallest increase of that entropy from one feature to the next;
* trainability: the mean over consecutive features of 2 - s - 1/s, s the largest singular value of the
  Jacobian-like map between them estimated with a Rademacher vector pulled back through the cell (a
  stride-2 cell's input gradient is pixel-unshuffled to the output's resolution; a cell whose pulled-back
  vector is the vector itself, an identity, scores -inf);
* complexity: FLOPs.

``az_nas`` itself is **pool-level**: its value for an arch is the sum over the four of log(rank / N) among
the N archs scored together, so it exists only for a pool (``verify_scores.py`` computes it after every arch
is scored; in a search, after each arch over every arch scored so far); its components are ordinary per-arch proxies.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import stats

from eznas.errors import EznasError
from eznas.hooks import attached
from eznas.inits import kaiming_fan_in_
from eznas.proxies.base import Probe, register_pool_proxy, register_proxy
from eznas.registry import at_least

COMPONENTS = ("flops", "az_expressivity", "az_progressivity", "az_trainability")


def feature_modules(net: nn.Module) -> list[nn.Module]:
    """The modules whose outputs are AZ-NAS's features on a network with cells: ``net.stem`` (if any) and
    each of ``net.cells``."""
    cells = getattr(net, "cells", None)
    if cells is None:
        raise EznasError(f"{type(net).__name__} has no cells (a 'cells' module list): its features are its stages")
    stem = getattr(net, "stem", None)
    return ([stem] if isinstance(stem, nn.Module) else []) + list(cells)


def feature_maps(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """AZ-NAS's features of one forward of ``net`` on ``x``, in order. A network with ``cells`` (our spaces):
    the output of ``net.stem`` (if any) and of each cell. Any other network: its **stage outputs**, the
    last feature map computed at each resolution before the first one at a smaller resolution, among the
    outputs of modules that hold a Conv2d (blocks, stages, convs) and of BatchNorm2d / GroupNorm (NCHW
    maps of more than one pixel: squeeze-excitation's pooled branch and the global pool are not stages);
    a later map larger than the current stage's (a side branch) is skipped."""
    cells = getattr(net, "cells", None) is not None
    if cells:
        modules = feature_modules(net)
    else:
        modules = [m for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))
                   or any(isinstance(c, nn.Conv2d) for c in m.modules())]
    outputs: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        outputs.append(out)

    with attached(m.register_forward_hook(keep) for m in modules), torch.enable_grad():
        net(x)
    if cells:
        return outputs
    stages: list[torch.Tensor] = []
    last = None
    for t in outputs:
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[2] * t.shape[3] <= 1:
            continue
        if last is not None and t.shape[2] * t.shape[3] > last.shape[2] * last.shape[3]:
            continue
        if last is not None and t.shape[2] * t.shape[3] < last.shape[2] * last.shape[3]:
            stages.append(last)
        last = t
    if last is None or len(stages) + 1 < 2:
        raise EznasError(f"AZ-NAS needs at least two stages (feature maps at two resolutions of more than one "
                         f"pixel): {type(net).__name__} has {0 if last is None else 1} at this input size")
    return stages + [last]


def entropy_of_spectrum(feature: torch.Tensor) -> float:
    """The entropy of the normalised eigenvalues of the channel covariance of a (B, C, H, W) feature; 0 for a
    feature with no variance (a cell whose every path is ``none``: AZ-NAS's code divides 0 by 0 there and
    ranks the NaN lowest; 0 is the entropy's least value, so such an arch still scores lowest on expressivity
    and on progressivity, and, finite, it is a number an evolved program can compute with). Eigenvalues
    below 0 (round-off) count as 0."""
    f = feature.detach().permute(0, 2, 3, 1).reshape(-1, feature.shape[1])
    f = f - f.mean(0, keepdim=True)
    eig = torch.linalg.eigvalsh(f.T @ f / f.shape[0]).clamp(min=0)
    total = eig.sum()
    if not total > 0:
        return 0.0
    p = eig / total
    return float((-p * torch.log(p + 1e-8)).sum())


def components(probe: Probe, batch: int) -> dict[str, float]:
    """Expressivity, progressivity and trainability of the probe's network (memoised on the probe)."""
    key = ("az_nas", batch)
    if key in probe.memo:
        return probe.memo[key]
    net = probe.copy()
    gen = probe.generator(salt=11)
    kaiming_fan_in_(net, gen)  # AZ-NAS's Kaiming fan-in, on a global RNG forked and seeded from gen
    # the input takes gradients too: a stem-less network's (SWAP's DARTS probe) first feature is the image itself
    x = torch.randn(batch, *probe.batch.x.shape[1:], generator=gen).to(probe.batch.x.device).requires_grad_()
    features = feature_maps(net, x)
    entropies = np.array([entropy_of_spectrum(f) for f in features])
    scores = []
    for i in reversed(range(1, len(features))):
        f_out, f_in = features[i], features[i - 1]
        g_out = (torch.randint(0, 2, f_out.shape, generator=gen).to(f_out) - 0.5) * 2
        (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)
        if g_in is None or (g_in.shape == g_out.shape and torch.equal(g_in, g_out)):  # no path, or identity
            scores.append(-math.inf)
            continue
        if g_in.shape[2:] != g_out.shape[2:]:
            h, w = g_in.shape[2] // g_out.shape[2], g_in.shape[3] // g_out.shape[3]
            if h == w and h * g_out.shape[2] == g_in.shape[2] and w * g_out.shape[3] == g_in.shape[3]:
                g_in = F.pixel_unshuffle(g_in, h)
            else:  # not an integer stride (a user's model): the input side averaged onto the output's grid
                g_in = F.adaptive_avg_pool2d(g_in, g_out.shape[2:])
        a = g_in.permute(0, 2, 3, 1).reshape(-1, g_in.shape[1])
        b = g_out.permute(0, 2, 3, 1).reshape(-1, g_out.shape[1])
        s = float(torch.linalg.svdvals(a.T @ b / b.shape[0]).max())
        scores.append(2 - s - 1 / (s + 1e-6))
    result = {"expressivity": float(entropies.sum()),
              "progressivity": float(np.min(entropies[1:] - entropies[:-1])) if len(entropies) > 1 else math.nan,
              "trainability": float(np.mean(scores)) if scores else math.nan}
    result = {k: -math.inf if math.isnan(v) else v for k, v in result.items()}  # as AZ-NAS: NaN ranks lowest
    probe.memo[key] = result
    return result


@register_proxy("az_expressivity", valid={"batch": at_least(2)})
def az_expressivity(probe: Probe, *, batch: int = 64) -> float:
    """AZ-NAS expressivity: sum over cell features of the entropy of the channel covariance spectrum, on N(0,1) noise, Kaiming fan-in (Lee & Ham, CVPR 2024)."""
    return components(probe, batch)["expressivity"]


@register_proxy("az_progressivity", valid={"batch": at_least(2)})
def az_progressivity(probe: Probe, *, batch: int = 64) -> float:
    """AZ-NAS progressivity: the smallest increase of the cell features' spectral entropy (Lee & Ham, CVPR 2024)."""
    return components(probe, batch)["progressivity"]


@register_proxy("az_trainability", valid={"batch": at_least(2)})
def az_trainability(probe: Probe, *, batch: int = 64) -> float:
    """AZ-NAS trainability: mean over cells of 2 - s - 1/s, s the top singular value of a Rademacher-probed cell Jacobian (Lee & Ham, CVPR 2024)."""
    return components(probe, batch)["trainability"]


@register_pool_proxy("az_nas", components=COMPONENTS)
def az_nas(scores: pd.DataFrame) -> np.ndarray:
    """AZ-NAS: sum over FLOPs, expressivity, progressivity and trainability of log(rank / N) in the pool scored together; pool-level (Lee & Ham, CVPR 2024)."""
    values = scores[list(COMPONENTS)].to_numpy(float)
    ok = ~np.isnan(values).any(axis=1)  # an arch a component failed on gets no score and takes no rank
    out = np.full(len(values), np.nan)
    out[ok] = np.log(stats.rankdata(values[ok], axis=0) / ok.sum()).sum(axis=1)
    return out
