"""Where does a fitness peak? The top of a search score cache: the archs it scored highest, and the archs of
best true accuracy among those it scored, each with its score, test accuracy and rank in the NB-201 table.

    python benchmarks/bench_top_scored.py results/benchmarks/search_lazy/cache/cifar10-swap.jsonl

Reads a ``search.py --score_cache`` file (its settings line names the space, dataset, batch and fitness)
and the benchmark table; scores nothing. For SWAP (and reg_swap, whose SWAP factor is the same count) it
also prints the count's ceiling: SWAP counts distinct sample-wise activation patterns, each a batch-size-bit
vector, so no network scores above 2^batch_size. ``--near`` counts the archs scored within that fraction of
the best score, with their accuracies: a fitness whose top is flat leaves a search to choose among them by
its noise. Writes benchmarks/results/top_scored.json and .md: a cache measured now replaces its entry (same
dataset, fitness and cache file) and the others are kept, so one file holds every cache measured (CIFAR-10
swap and reg_swap, CIFAR-100 reg_swap).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from eznas.data import resolve_data_root
from eznas.errors import EznasError
from eznas.report import merge_rows, write_results
from eznas.search.cache import ScoreCache
from eznas.search.results import table_rank
from eznas.spaces import get_space

RESULTS = Path(__file__).parent / "results"
SWAP_COUNTS = ("swap", "reg_swap")  # fitnesses whose value is (a multiple of) a count of distinct patterns


def single_part(cache: ScoreCache) -> str:
    """The value a single-valued fitness stores per arch; a pool fitness's parts are one error."""
    parts = cache.settings.get("parts") or []
    if len(parts) != 1:
        raise EznasError(f"{cache.path}: its fitness has parts {parts} (a pool fitness ranks them among a pool): "
                         "only a single-valued fitness has a top to print")
    return parts[0]


def top_of(path: Path, root: Path, top: int, near: float) -> dict:
    """The cache's fitness: its n archs, the top-scored and the most accurate of them, and its flatness."""
    cache = ScoreCache(path, None)
    settings, part = cache.settings, single_part(cache)
    space = get_space(settings["search_space"])
    archs = {a.uid: a for a in space.load(space.default_benchmark(root, settings["dataset"]), settings["dataset"])}
    accuracies = np.array([a.accuracy for a in archs.values()])
    rows = []
    for uid, (values, _) in cache.entries.items():
        arch = archs.get(uid)
        if arch is not None and math.isfinite(values[part]):
            rows.append({"uid": uid, "spec": arch.spec, "score": values[part], "accuracy": arch.accuracy,
                         "rank": table_rank(accuracies, arch.accuracy)})
    if not rows:
        raise EznasError(f"{path}: no arch of the {settings['dataset']} table with a finite {part}")
    by_score = sorted(rows, key=lambda r: -r["score"])
    best = by_score[0]["score"]
    flat = [r for r in rows if r["score"] >= best - near * abs(best)]
    ceiling = 2.0 ** settings["batch_size"] if settings["fitness"] in SWAP_COUNTS else None
    return {"cache": str(path), "dataset": settings["dataset"], "fitness": settings["fitness"],
            "batch_size": settings["batch_size"], "n_archs": len(rows), "n_scorings": cache.scorings, "ceiling": ceiling, "near": near,
            "n_near_best": len(flat), "near_best_accuracy": [min(r["accuracy"] for r in flat),
                                                            float(np.mean([r["accuracy"] for r in flat])),
                                                            max(r["accuracy"] for r in flat)],
            "top_scored": by_score[:top], "most_accurate": sorted(rows, key=lambda r: -r["accuracy"])[:top]}


def markdown(entries: list[dict]) -> str:
    out = []
    for e in entries:
        ceiling = f", ceiling 2^{e['batch_size']} = {e['ceiling']:,.0f}" if e["ceiling"] else ""
        lo, mean, hi = e["near_best_accuracy"]
        out += [f"## {e['dataset']} {e['fitness']}: {e['n_archs']} archs scored ({e['n_scorings']} scorings; "
                f"{e['cache']}){ceiling}", "",
                f"{e['n_near_best']} archs score within {e['near']:.1%} of the best score; their test accuracy "
                f"{lo:.2f} to {hi:.2f} (mean {mean:.2f}).", ""]
        for title, key in (("Top-scored", "top_scored"), ("Most accurate among the scored", "most_accurate")):
            pct = " | % of ceiling" if e["ceiling"] else ""
            out += [f"{title}:", "", f"| score{pct} | test acc | rank | cell |", "|---|---|---|---|" + "---|" * bool(pct)]
            for r in e[key]:
                share = f" | {100 * r['score'] / e['ceiling']:.2f}" if e["ceiling"] else ""
                out.append(f"| {r['score']:.6g}{share} | {r['accuracy']:.2f} | {r['rank']} | `{r['spec']}` |")
            out.append("")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("caches", nargs="+", help="score cache files (search.py --score_cache)")
    p.add_argument("--top", type=int, default=10, help="archs listed per cache and order (default 10)")
    p.add_argument("--near", type=float, default=0.01, help="a fraction of the best score: the archs within it "
                   "are counted (default 0.01)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=str(RESULTS / "top_scored.json"))
    args = p.parse_args()
    if args.top < 1 or not 0 <= args.near < 1:
        raise SystemExit(f"error: --top {args.top} / --near {args.near}: give --top >= 1 and 0 <= --near < 1")
    root, out = resolve_data_root(args.data_root), Path(args.out)
    try:
        entries = [top_of(Path(c), root, args.top, args.near) for c in args.caches]
    except EznasError as exc:
        raise SystemExit(f"error: {exc}") from None
    before = json.loads(out.read_text())["caches"] if out.is_file() else []
    merged = merge_rows(before, entries, key=lambda e: (e["dataset"], e["fitness"], e["cache"]))
    print(write_results(out, {"caches": merged}, markdown(merged)))


if __name__ == "__main__":
    main()
