"""Does a better proxy find a better architecture? Random search and regularised evolution on NB-201 with
each proxy as the fitness, 10 search seeds per setting, against a random arch and the oracle.

    python benchmarks/bench_search.py                                   # the issue's benchmark (long on CPU)
    python benchmarks/bench_search.py --proxies params,synflow --table_archs 2000 --budget 200   # a small one
    python benchmarks/bench_search.py --datasets cifar10 --proxies reg_swap --lazy   # only the archs visited

1. The proxies and programs score the table's archs once, together (one ``verify_scores.py`` run per
   dataset, score seed 0, batch 16; each one's seconds per arch include the network's build), resumable:
   results/benchmarks/search/scores/<dataset>-<proxies>/. ``--table_archs N`` keeps a seeded sample of N
   archs (the searches then keep to it: ranks are among those N).
2. Each search (``search.py`` with ``--scores`` from step 1, search seed 0..9, score seed 0) looks its
   fitness up, so a search costs the archs it scores times the verify run's seconds per arch, reported as
   its seconds on this machine; results/benchmarks/search/runs/<dataset>-<strategy>-<proxy>-s<seed>/.
   With ``--lazy`` nothing scores the whole table: each fitness's searches share a score cache
   (results/benchmarks/search/cache/<dataset>-<fitness>.jsonl, ``search.py --score_cache``), so an arch is
   scored once, when a search first visits it, and each search counts the seconds its archs took; the
   rho column is then over the archs the random searches drew (a uniform sample of the table; n given).
   For the proxies too slow for the whole table on a laptop (SWAP's 32 initialisations per cell).
   ``--workers N`` runs N searches at once, each in its own process (a cache's searches share it live).
3. Baselines: a uniformly random arch of the table (the same 10 seeds: what a search without a proxy finds
   at any budget) and the oracle (the best true accuracy among the archs each search scored).

Writes benchmarks/results/search.json and search.md (mean +- std over seeds of the found arch's test
accuracy, its rank and top-% in the table, and seconds per search, marked with the device where the scores
(a score cache or the verify run) were computed on a GPU; a program appears as "program N", its text under the
table). The file has two parts, ``whole_table`` (rows of the whole-table scores) and ``lazy`` (``--lazy``
rows); a run writes its own part only: a row measured now replaces that part's row of the same dataset,
strategy and fitness, the others are kept (the budget, seeds and table must match the part's), and search.md
is written again from both parts.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import signal
import statistics
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _common import location_args, locations, record_part, saved, verified
from eznas.io import write_bytes
from eznas.metrics import correlations
from eznas.report import merge_rows
from eznas.config import from_dict
from eznas.search.config import SearchConfig, fitness_call
from eznas.search.results import table_rank
from eznas.search.run import Search
from eznas.spaces import get_space, space_class

RESULTS = Path(__file__).parent / "results"
PROXIES = "meco,reg_swap,swap,sweetimator,synflow,naswot,params,zico"


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def rho_on_drawn(runs: list[Path]) -> tuple[float, int]:
    """Spearman of a fitness against the true accuracy over the archs some searches scored (the random
    searches': a uniform sample of the table), and how many: a pool fitness ranked among all of them."""
    config = from_dict(SearchConfig, json.loads((runs[0] / "config.json").read_text()), "config")
    call = fitness_call(config)
    drawn: dict[str, dict] = {}
    for run in runs:
        for h in json.loads((run / "state.json").read_text())["history"]:
            drawn[h["uid"]] = h
    rows = list(drawn.values())
    scores = (np.asarray(call.proxy.pool(pd.DataFrame([h["parts"] for h in rows])), float) if call.proxy.pool
              else np.array([h["score"] for h in rows], float))
    accuracy = np.array([h["accuracy"] for h in rows], float)
    ok = np.isfinite(scores) & np.isfinite(accuracy)
    found = correlations(scores[ok], accuracy[ok])
    return found["spearman"], found["n"]


def scored_on(source: dict[str, str]) -> str:
    """The device a fitness was scored on, as its scores recorded it: a score cache's settings line (e.g. a GPU
    run of cuda_search.sh), a whole-table verify run's summary; "cpu" while neither exists yet."""
    cache, verify = Path(source.get("score_cache", "")), Path(source.get("scores", "")) / "summary.json"
    if cache.is_file():
        with cache.open() as f:
            return json.loads(f.readline())["settings"]["device"]
    return json.loads(verify.read_text())["config"]["device"] if verify.is_file() else "cpu"


def search_once(cfg: SearchConfig, threads: int | None = None) -> dict:
    """A search's result: its finished run folder's, else the search run (resumed where it has a config)."""
    done = Path(cfg.out) / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    if threads:
        torch.set_num_threads(threads)
    return Search(cfg, resume=(Path(cfg.out) / "config.json").is_file()).run()


def searched(configs: list[SearchConfig], workers: int) -> list[dict]:
    """Every search's result, in order: one after the other, or ``workers`` at a time in their own processes
    (each on cpu_count / workers threads; searches of one fitness share its score cache as they go)."""
    if workers <= 1:
        return [search_once(cfg) for cfg in configs]
    threads = max(1, (os.cpu_count() or 1) // workers)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:  # leaving it (SIGTERM too) ends the workers
        return pool.starmap(search_once, [(cfg, threads) for cfg in configs], chunksize=1)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="cifar10,cifar100")
    p.add_argument("--proxies", default=PROXIES, help=f"default: {PROXIES}")
    p.add_argument("--program", action="append", default=[], help="an evolved program to search with (repeatable)")
    p.add_argument("--strategies", default="random,rea")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--table_archs", type=int, default=-1, help="a seeded sample of the table (default -1: all 15,625)")
    p.add_argument("--lazy", action="store_true", help="score only the archs the searches visit, each once, "
                   "through a score cache per dataset and fitness (no whole-table verify run; rho over the "
                   "random searches' archs)")
    p.add_argument("--workers", type=int, default=1, help="searches run at once, each in its own process "
                   "(default 1; with --lazy they share the score cache as they go)")
    location_args(p, runs="results/benchmarks/search", out=str(RESULTS / "search.json"))
    return p.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # killed: the worker pool's exit stops its searches
    root, runs, out = locations(args)
    if args.workers < 1:
        raise SystemExit(f"error: --workers {args.workers}: give 1 or more")
    part = "lazy" if args.lazy else "whole_table"
    results: dict = {"budget": args.budget, "seeds": args.seeds, "table_archs": args.table_archs, "rows": []}
    before = part_of(out, part)
    for field in ("budget", "seeds", "table_archs"):
        if before and before.get(field) != results[field]:
            raise SystemExit(f"error: {out} holds {part} rows at {field} {before.get(field)}, not {results[field]}; "
                             "give another --out")
    for dataset in args.datasets.split(","):
        rows, optimum = dataset_rows(args, dataset, root, runs)
        results["rows"] += rows
        results.setdefault("optimum", {})[dataset] = optimum
    record_part(out, part, merged(part_of(out, part), results), markdown)  # re-read: another run may have written


def part_of(out: Path, part: str) -> dict:
    """A part of the results file as it is now ({} before its first rows)."""
    return saved(out).get("parts", {}).get(part, {})


def merged(before: dict, results: dict) -> dict:
    """A part's rows ``before`` with those measured now (``results``) in their place (same dataset, strategy and
    fitness), the others kept; the datasets' optima likewise."""
    rows = merge_rows(before.get("rows", []), results["rows"], key=lambda r: (r["dataset"], r["strategy"], r["fitness"]))
    return {**results, "rows": rows, "optimum": {**before.get("optimum", {}), **results.get("optimum", {})}}


def dataset_rows(args: argparse.Namespace, dataset: str, root: Path, runs: Path) -> tuple[list[dict], dict]:
    """One dataset's rows (each fitness's searches per strategy, then a random arch) and its table's optimum."""
    space = get_space("NASBench201")
    table = space.default_benchmark(root, dataset)
    if args.table_archs > 0:  # the sample as a benchmark file: searches and scores keep to it
        full = pd.read_csv(table)
        keep = full.sample(n=args.table_archs, random_state=0).sort_values("index")
        table = runs / f"table-{dataset}-{args.table_archs}.csv"
        table.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(table, keep.to_csv(index=False).encode())
    archs = space.load(table, dataset)
    accuracies = np.array([a.accuracy for a in archs])
    fitnesses = [*args.proxies.split(","), *args.program] if args.proxies else list(args.program)
    programs = tuple(args.program)
    proxies = tuple(f for f in fitnesses if f not in programs)
    rows = []
    for label, name, source, rho in fitness_sources(args, dataset, fitnesses, proxies, programs, table, root, runs):
        rows += fitness_rows(args, dataset, label, name, source, rho, table, root, runs, label not in proxies)
    rows.append(random_arch_row(dataset, accuracies, args.seeds))
    published = space_class("NASBench201").optimum.get(dataset)
    return rows, {"table": float(accuracies.max()), "published": published, "archs": len(archs)}


def fitness_sources(args: argparse.Namespace, dataset: str, fitnesses: list[str], proxies: tuple[str, ...],
                    programs: tuple[str, ...], table, root: Path, runs: Path) -> list[tuple[str, str, dict, float | None]]:
    """Per fitness: its label, run-name, where its searches look scores up, and its rho on the table (--lazy:
    None, known once the random searches ran)."""
    if args.lazy:  # a score cache per fitness, filled as the searches go
        settings = [(f, f if f in proxies else f"program-{zlib.crc32(f.encode()):08x}") for f in fitnesses]
        return [(label, f"{name}-lazy", {"score_cache": str(runs / "cache" / f"{dataset}-{name}.jsonl")}, None)
                for label, name in settings]
    # every fitness scored in one verify run (one network build per arch; each label's seconds include it)
    folder = runs / "scores" / f"{dataset}-{'+'.join(proxies)}{'+programs' * bool(programs)}"
    summary, _ = verified(runs, folder, dataset=dataset, seed=0, proxies=proxies, programs=programs,
                          benchmark_path=str(table), data_root=str(root), bootstrap=100)
    fits = []
    for i, (label, metrics) in enumerate(summary["proxies"].items()):  # a program's label: its normalised text
        print(f"{dataset} {label}: rho {metrics['spearman']:.3f} on {summary['n_archs']} archs, "
              f"{metrics['seconds_per_arch']:.3f} s/arch", flush=True)
        fits.append((label, label if label in proxies else f"program{i}", {"scores": str(folder)},
                     metrics["spearman"]))
    return fits


def fitness_rows(args: argparse.Namespace, dataset: str, label: str, name: str, source: dict, rho: float | None,
                 table, root: Path, runs: Path, is_program: bool) -> list[dict]:
    """One fitness's searches, a row per strategy with the fitness's rho (--lazy: over the archs its random
    searches drew, and how many)."""
    rows, rho_n = [], None
    for strategy in args.strategies.split(","):
        configs = [SearchConfig(dataset=dataset, strategy=strategy, budget=args.budget,
                                proxy=None if is_program else label, program=label if is_program else None,
                                seed=seed, score_seed=0, benchmark_path=str(table), data_root=str(root),
                                out=str(runs / "runs" / f"{dataset}-{name}-{strategy}-b{args.budget}-s{seed}"),
                                **source) for seed in range(args.seeds)]
        found = searched(configs, args.workers)
        if args.lazy and strategy == "random":  # a uniform sample of the table, its size growing with seeds
            rho, rho_n = rho_on_drawn([Path(cfg.out) for cfg in configs])
            print(f"{dataset} {label}: rho {rho:.3f} on the {rho_n} archs the random searches drew", flush=True)
        row = {"dataset": dataset, "strategy": strategy, "fitness": label, "device": scored_on(source),
               **{k: mean_std([r["found"][k] for r in found]) for k in ("accuracy", "rank", "top_percent")},
               "seconds": mean_std([r["seconds"] for r in found]),
               "oracle": mean_std([r["oracle_of_scored"] for r in found])}
        rows.append(row)
        print(f"  {strategy}: found {row['accuracy'][0]:.2f} +- {row['accuracy'][1]:.2f}, oracle "
              f"{row['oracle'][0]:.2f}, {row['seconds'][0]:.0f} s", flush=True)
    return [{**r, "rho": rho, "rho_archs": rho_n} for r in rows]


def random_arch_row(dataset: str, accuracies: np.ndarray, seeds: int) -> dict:
    """The baseline of a uniformly random arch of the table, one per search seed (what a search without a
    proxy finds at any budget)."""
    rng = np.random.default_rng(0)
    picks = [float(accuracies[rng.integers(len(accuracies))]) for _ in range(seeds)]
    return {"dataset": dataset, "strategy": "none", "fitness": "a random arch", "rho": None,
            "accuracy": mean_std(picks), "rank": mean_std([table_rank(accuracies, a) for a in picks]),
            "top_percent": mean_std([100 * table_rank(accuracies, a) / len(accuracies) for a in picks]),
            "seconds": (0.0, 0.0), "oracle": None}


def markdown(results: dict) -> str:
    def pm(v: tuple[float, float] | None, digits: int = 2) -> str:
        return "—" if v is None else f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}"

    programs = list(dict.fromkeys(r["fitness"] for r in results["rows"] if "(" in r["fitness"]))
    lines = [f"Budget {results['budget']} archs scored, {results['seeds']} search seeds; table optimum: "
             + "; ".join(f"{d} {o['table']:.2f} of {o['archs']} archs" for d, o in results["optimum"].items()), "",
             "| dataset | strategy | fitness | ρ on the table (n: on the archs random search drew) | found test acc | rank | top % | s / search | oracle of scored |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        rho = "—" if r["rho"] is None else f"{r['rho']:.3f}" + (f" (n={r['rho_archs']})" if r.get("rho_archs") else "")
        fitness = f"program {programs.index(r['fitness']) + 1}" if r["fitness"] in programs else r["fitness"]
        device = f" ({r['device']})" if r.get("device", "cpu") != "cpu" else ""
        lines.append(f"| {r['dataset']} | {r['strategy']} | {fitness} | {rho} | {pm(r['accuracy'])} "
                     f"| {pm(r['rank'], 0)} | {pm(r['top_percent'])} | {pm(r['seconds'], 0)}{device} | {pm(r['oracle'])} |")
    lines += ["", *(f"Program {i}: `{text}`" for i, text in enumerate(programs, 1))] if programs else []
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
