"""Speed, memory and quality of an evolution run (default: the EZNAS-scale run, seed 0).

    python benchmarks/bench_evolution.py                                  # 50 x 10 generations, 3 tasks
    python benchmarks/bench_evolution.py --generations 2 --quality-archs 200   # quicker
    python benchmarks/bench_evolution.py --part quality                   # quality of the run folder's best

Speed (``--part speed``): a cold run (empty statistics cache) timed from start to ``best_proxy.py``: wall
time, peak RSS, seconds per generation, and on the final population programs/s, unit-evaluations/s and
the ratio against a naive evaluator (each program alone, no subtree cache) on the same networks.
Quality (``--part quality``): the best program of the run folder on NB-201 archs never used in fitness
(CIFAR-10, CIFAR-100) and on the DARTS CSV's held-out rows, next to SWAP, Sweetimator, MeCo and the EZNAS
program scored on the same archs, ending with a markdown table of every task (rho / tau [95% CI of rho]);
a stopped quality part continues where it stopped (same settings), and a finished one just prints again.
Both parts update their own section of benchmarks/results/evolution.json (quality after each task); a
quality section is kept by a later speed part only while the run's best program stays the same.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
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
from eznas.errors import EznasError
from eznas.io import atomic_open, write_json
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
    p.add_argument("--part", choices=("all", "speed", "quality"), default="all")
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--population", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="serial", help="serial, loky or dask (default serial)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--data-root", default=None)
    p.add_argument("--evaluator-networks", type=int, default=5,
                   help="networks per task for the shared-versus-naive evaluator comparison (default 5)")
    p.add_argument("--quality-archs", type=int, default=1000, help="held-out NB-201 archs per dataset")
    p.add_argument("--darts-archs", type=int, default=-1, help="held-out DARTS rows (default: all)")
    p.add_argument("--quality-proxies", default="sweetimator,eznas,swap:repeats=8,meco",
                   help="baselines next to the best program (default: SWAP with 8 re-inits instead of 32, for time)")
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
    run, out = Path(args.run), Path(args.out)
    if args.part in ("all", "speed"):
        measured = speed(args, cfg, run)
        before = json.loads(out.read_text()) if out.is_file() else {}  # read now: a quality part may be running
        best = measured["best"][0]["exported"]
        write_json(out, {**measured, "quality": {k: v for k, v in before.get("quality", {}).items()
                                                 if v.get("program") == best}})
    if args.part in ("all", "quality"):
        quality(args, cfg, run, root, out)
    print(f"wrote {out}")


def speed(args: argparse.Namespace, cfg: EvolutionConfig, run: Path) -> dict:
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
    rss = peak_rss_gb()

    # the evaluator on the final population, with and without the subtree cache, on the same networks
    data = FitnessData(cfg.fitness, cfg.terminals, StatsCache(cache), resolve_data_root(cfg.fitness.data_root))
    state = Evolution(cfg, run, data).load()
    programs = [Program(ind) for ind in state.population]
    nets = {str(t): data.minisets[str(t)][0][:args.evaluator_networks] for t in data.tasks}
    data.minisets = {**data.minisets, **{t: [n, *data.minisets[t][1:]] for t, n in nets.items()}}
    choice = {t: 0 for t in nets}
    for t in data.tasks:  # warm the statistics into memory first
        for a in nets[str(t)]:
            data.stats(t, a)
    t0 = time.perf_counter()
    evaluate_programs(programs, data, choice)
    shared = time.perf_counter() - t0
    t0 = time.perf_counter()
    for prog in programs:
        evaluate_programs([prog], data, choice)  # alone: no subtree shared with any other program
    naive = time.perf_counter() - t0
    units = sum(len(data.stats(t, a).units) for t in data.tasks for a in nets[str(t)])
    evaluator = {"programs": len(programs), "networks": sum(len(n) for n in nets.values()), "units": units,
                 "seconds_shared": shared, "seconds_naive": naive, "programs_per_second": len(programs) / shared,
                 "unit_evaluations_per_second": len(programs) * units / shared, "speedup_vs_naive": naive / shared}
    print(f"wall {wall:.0f} s for {len(gen_times)} generation records; peak RSS {rss:.2f} GB")
    print(f"evaluator: {evaluator['programs_per_second']:.1f} programs/s, "
          f"{evaluator['unit_evaluations_per_second']:.0f} unit-evaluations/s, "
          f"{evaluator['speedup_vs_naive']:.2f}x faster than each program alone", flush=True)
    return {"config": dataclasses.asdict(cfg), "wall_seconds": wall, "peak_rss_gb": rss,
            "seconds_per_generation": gen_times, "evaluator": evaluator, "best": result["best"],
            "test_scores": result["test"]}


def quality(args: argparse.Namespace, cfg: EvolutionConfig, run: Path, root: Path, out: Path) -> None:
    """The run folder's best program on archs never used in fitness, next to the baselines."""
    record: dict = {}
    best = json.loads((run / "hall_of_fame.json").read_text())[0]["exported"]
    data = FitnessData(cfg.fitness, cfg.terminals, StatsCache(run.parent / "stats-cache"), root)
    for tag, space, dataset, n in (("nb201-cifar10", "NASBench201", "cifar10", args.quality_archs),
                                   ("nb201-cifar100", "NASBench201", "cifar100", args.quality_archs),
                                   ("darts-cifar10", "DARTS", "cifar10", args.darts_archs)):
        task = f"{space}:{dataset}"
        held = data.heldout.get(task)
        if held is None:  # the task was not in fitness: every arch is held out
            sp = get_space(space)
            held = sp.load(sp.default_benchmark(root, dataset), dataset)
        uids = {a.uid for a in held}
        bench = run / f"heldout-{tag}.csv"
        if space == "NASBench201":
            full = pd.read_csv(root / "nb201" / "nb201_acc_200ep.csv")
            table = full[full["index"].astype(str).isin(uids)]
        else:
            full = pd.read_csv(get_space("DARTS").default_benchmark(root, "cifar10"))
            table = full.iloc[sorted(int(u) for u in uids)]
        with atomic_open(bench) as f:
            table.to_csv(f, index=False)
        vcfg = VerifyConfig(search_space=space, dataset=dataset, n_samples=n, seed=args.seed,
                            proxies=tuple(args.quality_proxies.split(",")), programs=(best,),
                            benchmark_path=str(bench), data_root=str(root), out=str(run / f"verify-{tag}"),
                            results_csv=str(run / "all_tests.csv"), bootstrap=200)
        try:
            summary = run_verify(vcfg, resume=True)
        except EznasError:  # a stopped quality part with other settings (another best program): start again
            shutil.rmtree(vcfg.out, ignore_errors=True)
            summary = run_verify(vcfg)
        record = json.loads(out.read_text()) if out.is_file() else record  # another part may have written it
        record.setdefault("quality", {})[tag] = {"program": best, "n_archs": summary["n_archs"],
                                                 "proxies": summary["proxies"]}
        write_json(out, record)
        print(f"--- {tag} ({summary['n_archs']} held-out archs)")
        for name, m in summary["proxies"].items():
            print(result_line(name, m), flush=True)
    print(quality_table(record["quality"]))


def quality_table(quality: dict) -> str:
    """Markdown: one row per proxy (the best program first), one column per task: rho / tau [95% CI of rho]."""
    tags = list(quality)
    best = quality[tags[0]]["program"]
    names = [best] + [n for n in quality[tags[0]]["proxies"] if n != best]

    def cell(m: dict | None) -> str:
        if not m:
            return "—"
        lo, hi = m["ci95"]["spearman"]
        return f"{m['spearman']:.3f} / {m['kendall']:.3f} [{lo:.3f}, {hi:.3f}]"

    head = " | ".join(f"{t} (n={quality[t]['n_archs']})" for t in tags)
    lines = [f"| proxy | {head} |", "|---" * (len(tags) + 1) + "|"]
    lines += [f"| {n} | " + " | ".join(cell(quality[t]["proxies"].get(n)) for t in tags) + " |" for n in names]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
