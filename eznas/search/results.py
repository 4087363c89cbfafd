"""What a search reports: the trajectory (per arch scored, and the best so far), the ``top_k`` best-scored
archs, the Python line that builds one, the found arch's rank in the table; ``trajectory.csv``, ``top.csv``,
``result.json`` and ``search.png`` written to the run folder."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from eznas.data import dataset_spec
from eznas.io import atomic_open, write_json
from eznas.search.config import SearchConfig
from eznas.search.strategies import Scored
from eznas.spaces import SearchSpace

TOP_COLUMNS = ("rank", "uid", "spec", "score", "accuracy")  # top.csv's


def table_rank(accuracies: np.ndarray, accuracy: float) -> int:
    """An accuracy's rank in a table: 1 + the archs strictly more accurate (ties share the better rank)."""
    return 1 + int((accuracies > accuracy).sum())


def build_line(cfg: SearchConfig, space: SearchSpace) -> str:
    """The Python line that builds the network of ``spec`` (a spec of top.csv) as the search scored it: the
    space, its options and the dataset's classes (a plugin's space: its module imported first)."""
    options = ", ".join(f"{k}={getattr(cfg, k)!r}" for k in ("width", "cells", "probe") if getattr(cfg, k) is not None)
    module = type(space).__module__
    plugin = "" if module.split(".")[0] == "eznas" else f"import {module}; "
    return (f'{plugin}from eznas.spaces import get_space, SpaceOptions; net = get_space("{cfg.search_space}", '
            f"SpaceOptions({options})).build(spec, num_classes={dataset_spec(cfg.dataset).num_classes})")


def trajectory(history: list[Scored], pool_scores: Callable[[list[Scored]], np.ndarray] | None) -> pd.DataFrame:
    """Per arch scored: its score (a pool fitness's: among all the search scored) and the best-so-far
    arch (a pool fitness's, ``pool_scores`` given: the best of the first i archs ranked among themselves, as
    the search saw it)."""
    rows, best, elapsed = [], None, 0.0
    for i, s in enumerate(history, start=1):
        elapsed += s.seconds
        if pool_scores is not None:
            prefix = pool_scores(history[:i])
            top = int(np.nanargmax(prefix)) if np.isfinite(prefix).any() else None
            best = None if top is None else dataclasses.replace(history[top], score=float(prefix[top]))
        elif not math.isnan(s.score) and (best is None or s.score > best.score):
            best = s
        rows.append({"archs_scored": i, "seconds": elapsed, "uid": s.uid, "score": s.score,
                     "accuracy": s.accuracy, "best_uid": best.uid if best else None,
                     "best_score": best.score if best else math.nan,
                     "best_accuracy": best.accuracy if best else math.nan, "spec": s.spec})
    return pd.DataFrame(rows)


def top_scored(history: list[Scored], top_k: int) -> list[dict[str, Any]]:
    """The ``top_k`` best-scored distinct archs, best first (ties: the first scored, as ``best()``); accuracy
    None where the table does not know the arch."""
    rows: list[dict[str, Any]] = []
    for s in sorted((s for s in history if not math.isnan(s.score)), key=lambda s: -s.score):
        if len(rows) == top_k:
            break
        if all(r["uid"] != s.uid for r in rows):
            rows.append({"rank": len(rows) + 1, "uid": s.uid, "spec": s.spec, "score": s.score,
                         "accuracy": None if math.isnan(s.accuracy) else s.accuracy})
    return rows


def write_results(out: Path, result: dict[str, Any], table: pd.DataFrame, top: list[dict[str, Any]]) -> None:
    """``trajectory.csv`` (``table``), ``top.csv``, ``result.json`` and ``search.png`` in the run folder."""
    with atomic_open(out / "trajectory.csv") as f:
        table.to_csv(f, index=False)
    with atomic_open(out / "top.csv") as f:
        pd.DataFrame(top, columns=list(TOP_COLUMNS)).to_csv(f, index=False)
    write_json(out / "result.json", result)
    plot_search(out / "search.png", table, result)


def plot_search(path: Path, table: pd.DataFrame, result: dict[str, Any]) -> None:
    """Best-so-far proxy score and the true accuracy of that arch, against the archs scored (without a
    benchmark table: the score only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = result["table_optimum"] is not None
    fig, axes = plt.subplots(1, 2 if truth else 1, figsize=(9 if truth else 4.8, 3.4), squeeze=False)
    left = axes[0][0]
    if len(table):
        left.plot(table.archs_scored, table.best_score)
    left.set(xlabel="archs scored", ylabel=f"best {result['fitness'][:40]}")
    if truth:
        right = axes[0][1]
        if len(table):
            right.plot(table.archs_scored, table.best_accuracy, label="best-scored arch")
            right.plot(table.archs_scored, table.accuracy.cummax(), linestyle=":", label="best arch scored (oracle)")
        right.axhline(result["table_optimum"], color="grey", linestyle="--", label="table optimum")
        right.set(xlabel="archs scored", ylabel="accuracy (%)")
        right.legend(fontsize=7)
    c = result["config"]
    fig.suptitle(f"{c['strategy']} on {c['search_space']} {c['dataset']}, seed {c['seed']}"
                 + ("" if truth else "\nno benchmark table: no ground truth"), fontsize=10)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
