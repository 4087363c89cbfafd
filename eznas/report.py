"""Run outputs: per-arch scores CSV, summary.json, its ranked table (summary.md), the EZNAS-style
all_tests.csv row, a scatter plot; a benchmark table's rows merged with those measured now."""
from __future__ import annotations

import csv
import io
import math
import textwrap
from pathlib import Path
from typing import Any, Callable, Hashable

import pandas as pd

from eznas.errors import DataError
from eznas.io import atomic_open, check_writable, locked, write_bytes, write_json
from eznas.metrics import top_count, top_membership

ALL_TESTS_COLUMNS = [
    "timestamp", "proxy", "seed", "n_samples", "batch_size", "dataset", "search_space", "nds_space",
    "tau", "pearson", "spearman", "n", "run_dir",
]


def write_scores(path: Path, table: pd.DataFrame) -> None:
    with atomic_open(path) as f:
        table.to_csv(f, index=False)


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    write_json(path, summary)


def ranked(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The proxies of a verify summary, best Spearman rho first (no rho: last, in the order requested)."""
    def rho(item: tuple[str, dict[str, Any]]) -> float:
        value = item[1].get("spearman")
        return -math.inf if value is None or math.isnan(value) else value

    return sorted(summary["proxies"].items(), key=rho, reverse=True)


def _num(value: Any, digits: int) -> str:
    """A table cell: the number at ``digits`` decimals, "-" where a summary has none (an older run's)."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def summary_table(summary: dict[str, Any]) -> str:
    """The proxies ranked by Spearman rho as a markdown table (padded to read as text too): rho with its 95%
    bootstrap CI, Kendall tau, precision at the top 10% (k archs), the accuracy of the top-scored arch and of
    the best arch, n and seconds per arch; then each program's short name and text."""
    head = ["rank", "proxy", "spearman", "95% CI", "kendall", "prec@top10% (k)", "top-scored acc", "best acc",
            "n", "s/arch"]
    rows = []
    for rank, (name, m) in enumerate(ranked(summary), 1):
        ci = m.get("ci95", {}).get("spearman")
        rows.append([str(rank), m.get("short_name", name), _num(m.get("spearman"), 3),
                     f"[{_num(ci[0], 3)}, {_num(ci[1], 3)}]" if ci else "-", _num(m.get("kendall"), 3),
                     f"{_num(m.get('precision_top10pct'), 2)} ({m.get('top_k', '-')})",
                     _num(m.get("top_scored_accuracy"), 2), _num(m.get("best_accuracy"), 2), str(m.get("n", "-")),
                     _num(m.get("seconds_per_arch"), 3)])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    table = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    return "\n".join(table + [f"{short}: {text}" for short, text in program_texts(summary).items()])


def program_texts(summary: dict[str, Any]) -> dict[str, str]:
    """Short name -> text of the proxies shown by a short name (the programs: ``program 1``, ...)."""
    return {m["short_name"]: name for name, m in summary["proxies"].items() if m.get("short_name", name) != name}


def write_summary_md(path: Path, summary: dict[str, Any], title: str) -> None:
    """``summary_table`` under a title, with what its columns mean (summary.md)."""
    text = (f"# {title}\n\n{summary_table(summary)}\n\n"
            "Ranked by Spearman rho; 95% CI: percentile bootstrap over the archs. prec@top10% (k): the share of "
            "the k = ceil(n/10) best-scored archs that are among the k most accurate (ties: the expectation "
            "over random tie-breaks); top-scored acc: the accuracy of the best-scored arch; best acc: the best "
            "accuracy of the n archs scored; s/arch: scoring seconds per arch.\n")
    with atomic_open(path) as f:
        f.write(text)


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
    write_bytes(Path(out).with_suffix(".md"), markdown.encode())  # UTF-8 whatever the locale (ρ, —, ≤)
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
    """Whether the nonzero magnitudes of ``values`` span more than ``decades`` orders of magnitude (the
    largest |value| over the smallest above 1e3, whatever the signs): the scatter's rank-axis rule."""
    mags = values.abs()[values != 0]
    return len(mags) > 1 and float(mags.max()) > 10 ** decades * float(mags.min())


def plot_scatter(path: Path, table: pd.DataFrame, proxies: list[str], summary: dict[str, Any], title: str) -> None:
    """One panel per proxy: score against accuracy (one accuracy axis for all), titled with its short name,
    n, rho with its 95% CI and tau; its top 10% by score circled. Scores spanning over three decades
    (``spans_decades``) are plotted by rank. A program's text is in a footnote under its short name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cols = min(len(proxies), 4)
    rows = math.ceil(len(proxies) / cols)
    notes = [line for short, text in program_texts(summary).items()
             for line in textwrap.wrap(f"{short}: {text}", width=24 * cols, subsequent_indent="    ")]
    foot = 0.15 * len(notes) + (0.1 if notes else 0)  # inches
    height = 3.6 * rows + foot
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, height), squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, proxies):
        _panel(ax, table, name, summary["proxies"][name])
        ax.xaxis.set_major_locator(MaxNLocator(5))
    for row in axes:
        row[0].set_ylabel("accuracy (%)")
    for ax in list(axes.flat)[len(proxies):]:
        ax.axis("off")
    fig.suptitle(f"{title}\ncircled: each proxy's top 10% by score", fontsize=10)
    if notes:
        fig.text(0.01, 0.02 / height, "\n".join(notes), fontsize=7, va="bottom", ha="left")
    fig.tight_layout(rect=(0, foot / height, 1, 1))
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def _panel(ax: Any, table: pd.DataFrame, name: str, m: dict[str, Any]) -> None:
    """One proxy's scatter panel (finite scores only)."""
    ok = table[[name, "accuracy"]].replace([math.inf, -math.inf], math.nan).dropna()
    score, label = ok[name], "score"
    if spans_decades(score):  # e.g. synflow: a rank axis keeps the ticks readable and shows what rho sees
        score, label = score.rank(pct=True), "score (rank, 0-1)"
    ax.scatter(score, ok["accuracy"], s=4, alpha=0.5)
    if len(score):
        top = top_membership(ok[name].to_numpy(float), top_count(len(score))) > 0
        ax.scatter(score[top], ok["accuracy"][top], s=30, facecolors="none", edgecolors="tab:red", linewidths=0.8)
    ci = m.get("ci95", {}).get("spearman")
    ci_text = f" [{_num(ci[0], 2)}, {_num(ci[1], 2)}]" if ci else ""
    ax.set_title(f"{m.get('short_name', name)} (n={len(score)})\n"
                 f"ρ={_num(m.get('spearman'), 3)}{ci_text} τ={_num(m.get('kendall'), 3)}", fontsize=9)
    ax.set_xlabel(label)
