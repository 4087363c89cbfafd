"""Numeric kernels shared by the proxies and the primitive language (the bottom layer: torch only).

SWAP's pattern packing and counting, and MeCo's channel-correlation smallest eigenvalue."""
from __future__ import annotations

import torch


def pack_patterns(codes: torch.Tensor) -> torch.Tensor:
    """(samples, neurons) booleans -> one int64 per neuron holding its pattern over the samples.

    The bits are summed by a matrix product in floating point, exact for up to 24 (float32) or 53
    (float64) samples, and much faster than integer shifts over the whole matrix."""
    s = codes.shape[0]
    if s > 53:
        raise ValueError(f"cannot pack patterns of {s} samples (at most 53)")
    dtype = torch.float32 if s <= 24 else torch.float64
    powers = 2.0 ** torch.arange(s, dtype=dtype, device=codes.device)
    return (powers @ codes.to(dtype)).to(torch.int64)


def count_patterns(codes: torch.Tensor) -> int:
    """Distinct columns of a (samples, neurons) boolean matrix: each neuron's pattern over the batch."""
    if codes.shape[0] > 53:
        return torch.unique(codes.T, dim=0).shape[0]
    return count_packed(pack_patterns(codes), codes.shape[0])


def count_packed(packed: torch.Tensor, samples: int) -> int:
    if samples <= 20:  # at most 2^20 patterns: a bincount is linear time
        return int(torch.count_nonzero(torch.bincount(packed, minlength=1)))
    return torch.unique(packed).numel()


def channel_corr_min_eig(maps: torch.Tensor) -> torch.Tensor:
    """MeCo's per-layer term: the smallest eigenvalue of the Pearson correlation between the rows
    (channels) of ``maps`` (channels, positions), in float64; an undefined correlation (a constant
    channel, or one position) counts as 0."""
    maps = maps.double()
    if maps.shape[1] < 2:  # one value per channel: no correlation is defined
        return torch.zeros((), dtype=torch.float64)
    corr = torch.nan_to_num(torch.corrcoef(maps), nan=0.0, posinf=0.0, neginf=0.0)
    return torch.linalg.eigvalsh(corr)[0]
