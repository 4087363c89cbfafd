"""Run outputs: per-arch scores CSV, summary.json, the EZNAS-style all_tests.csv row, a scatter plot; a
benchmark table's rows merged with those measured now."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Callable, Hashable

import pandas as pd

from eznas.errors import DataError
from eznas.io import atomic_open, check_writable, locked, write_json

ALL_TESTS_COLUMNS = [
    "timestamp", "proxy", "seed", "n_samples", "batch_size", "dataset", "search_space", "nds_space",
    "tau", "pearson", "spearman", "n", "run_dir",
]


def write_scores(path: Path, table: pd.DataFrame) -> None:
    with atomic_open(path) as f:
        table.to_csv(f, index=False)


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    write_json(path, summary)


def merge_rows(before: list[dict[str, Any]], now: list[dict[str, Any]],
               key: Callable[[dict[str, Any]], Hashable]) -> list[dict[str, Any]]:
    """A results table's rows with those measured now in their place (same key) and new ones appended,
    grouped by their first key field (the dataset) in first-seen order: rows measured another time are kept."""
    fresh = {key(r): r for r in now}
    rows = [fresh.pop(key(r), r) for r in before] + [r for r in now if key(r) in fresh]
    groups = list(dict.fromkeys(key(r)[0] for r in rows))
    return sorted(rows, key=lambda r: groups.index(key(r)[0]))


def write_results(out: Path, results: dict[str, Any], markdown: str) -> str:
    """A benchmark's figures: ``out`` as .json and its table as .md beside it (each atomically); the table."""
    write_json(Path(out).with_suffix(".json"), results)
    with atomic_open(Path(out).with_suffix(".md")) as f:
        f.write(markdown)
    return markdown


def append_all_tests(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows to the cumulative results CSV (EZNAS's columns plus proxy, n and run folder).

    Under a file lock (concurrent runs keep every row), the file is rewritten through a temporary copy,
    so a crash leaves either the old or the new file. No rows: the file is left alone.
    """
    if not rows:
        return
    path = Path(path)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ALL_TESTS_COLUMNS, lineterminator="\n")
    writer.writerows(rows)
    with locked(path):
        old = check_all_tests(path)
        head = "" if old else ",".join(ALL_TESTS_COLUMNS) + "\n"
        with atomic_open(path) as f:
            f.write(old + ("" if not old or old.endswith("\n") else "\n") + head + buf.getvalue())


def check_all_tests(path: Path) -> str:
    """The cumulative results CSV's text ("" when absent); DataError unless its header is ours, OSError
    unless it can be written."""
    path = Path(path)
    check_writable(path, folder=False, what="--results_csv")
    old = path.read_text() if path.exists() else ""
    if old:
        header = old.splitlines()[0].split(",")
        if header != ALL_TESTS_COLUMNS:
            raise DataError(f"{path}: unexpected header {header} (expected {ALL_TESTS_COLUMNS}); move it aside")
    return old


def spans_decades(values: pd.Series, decades: float = 3.0) -> bool:
    """Whether the nonzero magnitudes of ``values`` span more than ``decades`` orders of magnitude."""
    mags = values.abs()[values != 0]
    return len(mags) > 1 and float(mags.max()) > 10 ** decades * float(mags.min())


def plot_scatter(path: Path, table: pd.DataFrame, proxies: list[str], summary: dict[str, Any], title: str) -> None:
    """One panel per proxy: score against accuracy, titled with tau and rho."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cols = min(len(proxies), 4)
    rows = math.ceil(len(proxies) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, proxies):
        ok = table[[name, "accuracy"]].replace([math.inf, -math.inf], math.nan).dropna()
        score, label = ok[name], "score"
        if spans_decades(score):  # e.g. synflow: a rank axis keeps the ticks readable and shows what rho sees
            score, label = score.rank(pct=True), "score (rank, 0-1)"
        ax.scatter(score, ok["accuracy"], s=4, alpha=0.5)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        m = summary["proxies"][name]
        ax.set_title(f"{name}: τ={m['kendall']:.3f} ρ={m['spearman']:.3f}", fontsize=10)
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy (%)")
    for ax in list(axes.flat)[len(proxies):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
