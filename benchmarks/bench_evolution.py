"""Speed, memory and quality of an evolution run (default: the EZNAS-scale run, seed 0).

    python benchmarks/bench_evolution.py                                  # 50 x 10 generations, 3 tasks
    python benchmarks/bench_evolution.py --generations 2 --quality-archs 200   # quicker

Speed: wall time, peak RSS, seconds per generation, programs/s and unit-evaluations/s, and the ratio
against a naive evaluator (each program alone, no subtree cache) on the final population, same run.
Quality: the best program's rho/tau on NB-201 archs never used in fitness (CIFAR-10, CIFAR-100) and on
the DARTS CSV's held-out rows, next to SWAP, Sweetimator and the EZNAS program scored on the same archs.
Writes benchmarks/results/evolution.json (after the speed part, then again after each quality task).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import resource
import shutil
import time
from pathlib import Path

import pandas as pd

from eznas.data import resolve_data_root
from eznas.gp.evolution import Evolution, EvolutionConfig
from eznas.gp.fitness import FitnessData, evaluate_programs
from eznas.gp.program import Program
from eznas.gp.run import run_evolution
from eznas.io import write_json
from eznas.parallel import ParallelConfig
from eznas.spaces import get_space
from eznas.stats import StatsCache
from eznas.verify import VerifyConfig, result_line, run_verify


def peak_rss_gb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024 ** 2  # ru_maxrss is in KiB on Linux


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--population", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="serial", help="serial, loky or dask (default serial)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--data-root", default=None)
    p.add_argument("--quality-archs", type=int, default=1000, help="held-out NB-201 archs per dataset")
    p.add_argument("--darts-archs", type=int, default=-1, help="held-out DARTS rows (default: all)")
    p.add_argument("--quality-proxies", default="swap,sweetimator,eznas")
    p.add_argument("--keep-cache", action="store_true",
                   help="reuse the statistics cache of an earlier run (default: start cold, as a first run does)")
    p.add_argument("--run", default="results/benchmarks/evolution")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "evolution.json"))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    root = resolve_data_root(args.data_root)
    base = EvolutionConfig()
    cfg = dataclasses.replace(base, generations=args.generations, population=args.population, seed=args.seed,
                              parallel=ParallelConfig(args.backend, workers=args.workers),
                              fitness=dataclasses.replace(base.fitness, seed=args.seed, data_root=str(root)))
    run = Path(args.run)
    cache = run.parent / "stats-cache"
    if not args.keep_cache:  # a cold run: the statistics of the fitness networks are part of the wall time
        shutil.rmtree(cache, ignore_errors=True)
    gen_times: list[float] = []
    last = [time.perf_counter()]

    def on_generation(state) -> None:
        now = time.perf_counter()
        gen_times.append(now - last[0])
        last[0] = now

    start = time.perf_counter()
    result = run_evolution(cfg, run, cache_dir=cache, test_networks=100, on_generation=on_generation)
    wall = time.perf_counter() - start

    # the evaluator on the final population, with and without the subtree cache (same run)
    data = FitnessData(cfg.fitness, cfg.terminals, StatsCache(cache), root)
    evo = Evolution(cfg, run, data)
    state = evo.load()
    programs = [Program(ind) for ind in state.population]
    choice = {str(t): 0 for t in data.tasks}
    for t in data.tasks:  # warm the statistics into memory first
        for a in data.minisets[str(t)][0]:
            data.stats(t, a)
    t0 = time.perf_counter()
    evaluate_programs(programs, data, choice)
    shared = time.perf_counter() - t0
    t0 = time.perf_counter()
    for prog in programs:
        evaluate_programs([prog], data, choice)  # alone: no subtree shared with any other program
    naive = time.perf_counter() - t0
    units = sum(len(data.stats(t, a).units) for t in data.tasks for a in data.minisets[str(t)][0])

    n_gens = len(gen_times)
    out = {
        "config": dataclasses.asdict(cfg),
        "wall_seconds": wall,
        "peak_rss_gb": peak_rss_gb(),
        "seconds_per_generation": gen_times,
        "evaluator": {"programs": len(programs), "networks": sum(len(data.minisets[str(t)][0]) for t in data.tasks),
                      "units": units, "seconds_shared": shared, "seconds_naive": naive,
                      "programs_per_second": len(programs) / shared,
                      "unit_evaluations_per_second": len(programs) * units / shared,
                      "speedup_vs_naive": naive / shared},
        "best": result["best"],
        "test_scores": result["test"],
        "quality": {},  # filled task by task; the file is rewritten after each, so a stopped run keeps what it has
    }
    write_json(args.out, out)
    e = out["evaluator"]
    print(f"wall {wall:.0f} s for {n_gens} generation records; peak RSS {out['peak_rss_gb']:.2f} GB")
    print(f"evaluator: {e['programs_per_second']:.1f} programs/s, {e['unit_evaluations_per_second']:.0f} unit-evaluations/s, "
          f"{e['speedup_vs_naive']:.2f}x faster than each program alone", flush=True)

    # quality on archs never used in fitness
    quality = out["quality"]
    best = result["best"][0]["exported"]
    for tag, space, dataset, n in (("nb201-cifar10", "NASBench201", "cifar10", args.quality_archs),
                                   ("nb201-cifar100", "NASBench201", "cifar100", args.quality_archs),
                                   ("darts-cifar10", "DARTS", "cifar10", args.darts_archs)):
        task = f"{space}:{dataset}"
        held = data.heldout.get(task)
        if held is None:  # the task was not in fitness: every arch is held out
            sp = get_space(space)
            held = sp.load(sp.default_benchmark(root, dataset), dataset)
        table = pd.DataFrame({"uid": [a.uid for a in held]})
        bench = run / f"heldout-{tag}.csv"
        if space == "NASBench201":
            full = pd.read_csv(root / "nb201" / "nb201_acc_200ep.csv")
            full[full["index"].astype(str).isin(table.uid)].to_csv(bench, index=False)
        else:
            src = get_space("DARTS").default_benchmark(root, "cifar10")
            full = pd.read_csv(src)
            full.iloc[[int(u) for u in table.uid]].to_csv(bench, index=False)
        summary = run_verify(VerifyConfig(search_space=space, dataset=dataset, n_samples=n, seed=args.seed,
                                          proxies=tuple(args.quality_proxies.split(",")), programs=(best,),
                                          benchmark_path=str(bench), data_root=str(root), out=str(run / f"verify-{tag}"),
                                          results_csv=str(run / "all_tests.csv"), bootstrap=200))
        quality[tag] = summary["proxies"]
        write_json(args.out, out)
        print(f"--- {tag} ({summary['n_archs']} held-out archs)")
        for name, m in summary["proxies"].items():
            print(result_line(name, m), flush=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
