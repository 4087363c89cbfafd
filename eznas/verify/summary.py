"""A verify run's figures per proxy (rank correlations, their intervals, the top of the ranking, the archs it
could not score and why) and the lines the command prints about them."""
from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from eznas.metrics import bootstrap_ci, correlations, top_of_ranking
from eznas.proxies import ProxyCall

log = logging.getLogger("eznas.verify")  # its lines keep the name they had in logs


def proxy_summaries(table: pd.DataFrame, calls: dict[str, ProxyCall], seconds: dict[str, float], n_archs: int,
                    bootstrap: int, seed: int) -> dict[str, dict[str, Any]]:
    """Per label (in ``calls``' order), the figures of its scores (``table``'s column) against the accuracies,
    over the archs with a finite score (the others counted, with the reasons), with its seconds and definition."""
    proxies: dict[str, dict[str, Any]] = {}
    short = short_names(calls)
    for name in calls:
        s, a = table[name].to_numpy(float), table["accuracy"].to_numpy(float)
        finite = np.isfinite(s)
        if (~finite).any():
            log.warning("%s: %d of %d archs have a non-finite score and are excluded", name,
                        int((~finite).sum()), len(s))
        m = correlations(s[finite], a[finite])
        m["excluded_non_finite"] = int((~finite).sum())
        m["all_non_finite"] = not finite.any()
        m["failures"] = failures(table, name)
        m["ci95"] = bootstrap_ci(s[finite], a[finite], n_boot=bootstrap, seed=seed)
        m.update(top_of_ranking(s[finite], a[finite]))
        m["short_name"] = short[name]
        m["seconds"] = seconds[name]
        m["seconds_per_arch"] = seconds[name] / max(n_archs, 1)
        m["definition"] = calls[name].proxy.doc
        m["options"] = {**calls[name].proxy.options(), **calls[name].options}
        proxies[name] = m
    return proxies


def short_names(calls: dict[str, ProxyCall]) -> dict[str, str]:
    """Per label, the name tables and plots show: ``program 1``, ``program 2``, ... for the programs (whose
    label is their whole text), the label for the rest."""
    programs = iter(range(1, len(calls) + 1))
    return {label: f"program {next(programs)}" if call.proxy.name == "program" else label
            for label, call in calls.items()}


def failures(table: pd.DataFrame, name: str) -> dict[str, int]:
    """Per reason, how many archs got a non-finite score: the error the proxy raised (its first line),
    else the value it returned; most frequent first."""
    scores, errors = table[name].to_numpy(float), table.get(f"error_{name}")
    reasons: Counter[str] = Counter()
    for i in np.flatnonzero(~np.isfinite(scores)):
        error = errors.iloc[i] if errors is not None else None
        reasons[error.splitlines()[0][:200] if isinstance(error, str) and error else f"returned {scores[i]}"] += 1
    return dict(reasons.most_common())


def notes(summary: dict[str, Any]) -> list[str]:
    """Lines for stdout about the archs each proxy could not score, with the reasons."""
    lines = []
    for name, m in summary["proxies"].items():
        reasons = "; ".join(f"{why}: {k}" for why, k in m.get("failures", {}).items())
        reasons = f" ({reasons})" if reasons else ""
        if m.get("all_non_finite"):
            lines.append(f"warning: {name}: no finite score on any of the {summary['n_archs']} archs{reasons}; "
                         f"no row appended to {summary['config']['results_csv']}")
        elif m["excluded_non_finite"]:
            lines.append(f"note: {name}: {m['excluded_non_finite']} archs with a non-finite score were "
                         f"excluded{reasons}")
    return lines


def result_line(name: str, m: dict[str, Any]) -> str:
    """The closing stdout line per proxy."""
    def f(x: float) -> str:
        return "nan" if x is None or math.isnan(x) else f"{x:.4f}"

    return (f"proxy={name} kendall={f(m['kendall'])} spearman={f(m['spearman'])} pearson={f(m['pearson'])} "
            f"n={m['n']} seconds={m['seconds']:.1f}")
