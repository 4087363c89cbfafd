"""Rank correlations between proxy scores and accuracies, with bootstrap confidence intervals."""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats


def correlations(scores: np.ndarray, accuracy: np.ndarray) -> dict[str, float]:
    """Kendall tau-b, Spearman rho and Pearson r of finite (score, accuracy) pairs."""
    s, a = np.asarray(scores, float), np.asarray(accuracy, float)
    if len(s) < 2 or np.ptp(s) == 0 or np.ptp(a) == 0:
        return {"kendall": float("nan"), "spearman": float("nan"), "pearson": float("nan"), "n": len(s)}
    return {
        "kendall": float(stats.kendalltau(s, a).statistic),
        "spearman": float(stats.spearmanr(s, a).statistic),
        "pearson": float(stats.pearsonr(s, a).statistic),
        "n": len(s),
    }


def bootstrap_ci(
    scores: np.ndarray, accuracy: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of Spearman and Kendall over resampled (score, accuracy) pairs."""
    s, a = np.asarray(scores, float), np.asarray(accuracy, float)
    if len(s) < 3:
        return {"spearman": [float("nan")] * 2, "kendall": [float("nan")] * 2}
    rng = np.random.default_rng(seed)
    rho, tau = np.empty(n_boot), np.empty(n_boot)
    with warnings.catch_warnings():  # a resample may be constant: its NaN is dropped below
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        for b in range(n_boot):
            i = rng.integers(0, len(s), len(s))
            rho[b] = stats.spearmanr(s[i], a[i]).statistic
            tau[b] = stats.kendalltau(s[i], a[i]).statistic
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {"spearman": np.nanpercentile(rho, q).tolist(), "kendall": np.nanpercentile(tau, q).tolist()}


def paired_difference_ci(
    a: np.ndarray, b: np.ndarray, accuracy: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, float | list[float]]:
    """Spearman of ``a`` minus Spearman of ``b`` against the same accuracies, with a percentile bootstrap
    interval over archs resampled together for both (paired: the two rankings share every resample), on
    the archs where both are finite. Narrower than comparing two separate intervals, which ignores that
    both rankings err on the same hard archs."""
    a, b, acc = (np.asarray(x, float) for x in (a, b, accuracy))
    ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(acc)
    a, b, acc = a[ok], b[ok], acc[ok]
    if len(a) < 3:
        return {"diff": float("nan"), "ci": [float("nan")] * 2, "n": int(len(a))}
    rng = np.random.default_rng(seed)
    diff = np.empty(n_boot)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        for k in range(n_boot):
            i = rng.integers(0, len(a), len(a))
            diff[k] = stats.spearmanr(a[i], acc[i]).statistic - stats.spearmanr(b[i], acc[i]).statistic
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {"diff": float(stats.spearmanr(a, acc).statistic - stats.spearmanr(b, acc).statistic),
            "ci": np.nanpercentile(diff, q).tolist(), "n": int(len(a))}
