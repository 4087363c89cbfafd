"""Reductions to a Scalar, batch-aware counts (SWAP, Sweetimator) and pairwise comparisons."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from eznas.kernels import channel_corr_min_eig, count_patterns
from eznas.primitives.base import Scalar, Tensor, primitive

T = torch.Tensor


@primitive("mean", (Tensor,), Scalar)
def mean(x: T) -> T:
    """Mean of all elements."""
    return x.mean()


@primitive("mean_abs", (Tensor,), Scalar)
def mean_abs(x: T) -> T:
    """Mean of |x|."""
    return x.abs().mean()


@primitive("fro", (Tensor,), Scalar)
def fro(x: T) -> T:
    """Frobenius norm (sqrt of the sum of squares of all elements)."""
    return torch.linalg.vector_norm(x)


@primitive("std", (Tensor,), Scalar)
def std(x: T) -> T:
    """Standard deviation of all elements (0 for fewer than two)."""
    return x.std() if x.numel() > 1 else torch.zeros((), dtype=x.dtype)


@primitive("numel", (Tensor,), Scalar)
def numel(x: T) -> T:
    """Number of elements."""
    return torch.tensor(float(x.numel()))


@primitive("eig_ratio", (Tensor,), Scalar)
def eig_ratio(x: T) -> T:
    """lambda_max / lambda_min of the Gram matrix X X^T of the rows X = x.flatten(1) (torch.linalg.eigvalsh);
    0 when lambda_min <= 0."""
    if x.dim() < 2:
        raise ValueError(f"eig_ratio needs at least 2 dims, got shape {tuple(x.shape)}")
    m = x.flatten(1).double()
    v = torch.linalg.eigvalsh(m @ m.T)
    return (v[-1] / v[0]).float() if v[0] > 0 else torch.zeros(())


@primitive("corr_min_eig", (Tensor,), Scalar)
def corr_min_eig(x: T) -> T:
    """Smallest eigenvalue of the Pearson correlation between the channels (dim 1) of the first sample's
    maps, in float64; an undefined correlation (a constant channel, or one value per channel) counts as 0
    (MeCo's per-layer term, Jiang et al. 2023)."""
    if x.dim() < 3:
        raise ValueError(f"corr_min_eig needs (batch, channels, ...) maps, got shape {tuple(x.shape)}")
    return channel_corr_min_eig(x[0].flatten(1)).float()


@primitive("swap_count", (Tensor,), Scalar)
def swap_count(x: T) -> T:
    """Number of distinct sample-wise activation patterns: each element position's vector of (x > 0)
    over the batch (dim 0) is one pattern (SWAP's count, Peng et al. 2024)."""
    if x.dim() < 2:
        raise ValueError(f"swap_count needs a batch dim and more, got shape {tuple(x.shape)}")
    return torch.tensor(float(count_patterns((x > 0).flatten(1))))


@primitive("count_in", (Tensor, Scalar, Scalar), Scalar)
def count_in(x: T, low: T, high: T) -> T:
    """Number of elements with low <= |x| < high (Sweetimator's count, Yang et al. 2023)."""
    a = x.abs()
    return ((a >= low) & (a < high)).sum().to(torch.float32)


@primitive("hamming", (Tensor, Tensor), Scalar)
def hamming(a: T, b: T) -> T:
    """Fraction of positions where (a > 0) and (b > 0) differ (shapes must match)."""
    if a.shape != b.shape:
        raise ValueError(f"hamming needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    return ((a > 0) != (b > 0)).float().mean()


@primitive("cosine", (Tensor, Tensor), Scalar)
def cosine(a: T, b: T) -> T:
    """Sum over samples (dim 0) of the cosine similarity of the two samples' flattened tensors."""
    if a.shape != b.shape or a.dim() < 2:
        raise ValueError(f"cosine needs equal shapes with a batch dim, got {tuple(a.shape)} and {tuple(b.shape)}")
    return F.cosine_similarity(a.flatten(1).double(), b.flatten(1).double(), dim=1).sum().float()


@primitive("kl", (Tensor, Tensor), Scalar)
def kl(a: T, b: T) -> T:
    """KL(softmax(b) || softmax(a)) per sample over the flattened rest, averaged over the batch."""
    if a.shape != b.shape or a.dim() < 2:
        raise ValueError(f"kl needs equal shapes with a batch dim, got {tuple(a.shape)} and {tuple(b.shape)}")
    return F.kl_div(F.log_softmax(a.flatten(1).double(), 1), F.log_softmax(b.flatten(1).double(), 1),
                    reduction="batchmean", log_target=True).float()
