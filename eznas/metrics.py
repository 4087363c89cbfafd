"""Rank correlations between proxy scores and accuracies, with bootstrap confidence intervals, and how
well a ranking finds the top archs."""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable

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


TOP_FRACTION = 0.1  # top_of_ranking's top: the best 10% of the archs


def top_count(n: int) -> int:
    """How many of n archs are the top TOP_FRACTION: ceil(TOP_FRACTION * n), at least 1."""
    return max(1, math.ceil(round(TOP_FRACTION * n, 9)))


def top_membership(values: np.ndarray, k: int) -> np.ndarray:
    """Per item, the chance that it is among the k largest values when ties are broken at random: 1 above
    the k-th largest value, 0 below it, and the places left shared evenly by the items equal to it."""
    v = np.asarray(values, float)
    kth = np.sort(v)[::-1][k - 1]
    above, tied = v > kth, v == kth
    chance = above.astype(float)
    chance[tied] = (k - above.sum()) / tied.sum()
    return chance


def top_of_ranking(scores: np.ndarray, accuracy: np.ndarray) -> dict[str, float]:
    """How well finite (score, accuracy) pairs find the top archs: ``precision_top10pct``, the share of the
    k = ``top_count(n)`` best-scored archs that are among the k most accurate, and ``top_scored_accuracy``,
    the accuracy of the best-scored arch, beside ``best_accuracy``, the best of the n. Ties count as their
    expectation over random tie-breaks: a constant score gets the chance level k/n, and the archs tied at
    the best score their mean accuracy."""
    s, a = np.asarray(scores, float), np.asarray(accuracy, float)
    if len(s) == 0:
        return {"precision_top10pct": float("nan"), "top_k": 0, "top_scored_accuracy": float("nan"),
                "best_accuracy": float("nan")}
    k = top_count(len(s))
    return {"precision_top10pct": float(top_membership(s, k) @ top_membership(a, k) / k), "top_k": k,
            "top_scored_accuracy": float(a[s == s.max()].mean()), "best_accuracy": float(a.max())}


def bootstrap_ci(
    scores: np.ndarray, accuracy: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of Spearman and Kendall over resampled (score, accuracy) pairs."""
    s, a = np.asarray(scores, float), np.asarray(accuracy, float)
    if len(s) < 3:
        return {"spearman": [float("nan")] * 2, "kendall": [float("nan")] * 2}
    both = _resampled(lambda i: (stats.spearmanr(s[i], a[i]).statistic, stats.kendalltau(s[i], a[i]).statistic),
                      len(s), n_boot, seed)
    return {"spearman": _interval(both[:, 0], level), "kendall": _interval(both[:, 1], level)}


def _resampled(statistic: Callable[[np.ndarray], Any], n: int, n_boot: int, seed: int) -> np.ndarray:
    """``statistic(i)`` on ``n_boot`` bootstrap resamples ``i`` (indices into n items), one row each; a
    resample may be constant: its NaN is left for ``_interval`` to drop."""
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return np.array([statistic(rng.integers(0, n, n)) for _ in range(n_boot)], float)


def _interval(values: np.ndarray, level: float) -> list[float]:
    """The central percentile interval at ``level`` of the finite values."""
    return np.nanpercentile(values, [(1 - level) / 2 * 100, (1 + level) / 2 * 100]).tolist()


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

    def diff(i: np.ndarray) -> float:
        return stats.spearmanr(a[i], acc[i]).statistic - stats.spearmanr(b[i], acc[i]).statistic

    every = np.arange(len(a))
    return {"diff": float(diff(every)), "ci": _interval(_resampled(diff, len(a), n_boot, seed), level),
            "n": int(len(a))}
