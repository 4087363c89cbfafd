"""How noisy is fitness? A run's final population scored on its selection networks and on test networks,
then: the standard deviation of each program's fitness across random draws of n networks (n = 20, as EZNAS's
mini-sets, and n = 200, as now), and the rank agreement (Spearman over the population) between fitness on a
draw of n selection-like networks and fitness on the test networks.

    python benchmarks/bench_noise.py --run results/benchmarks/discovery/seed0
    python benchmarks/bench_noise.py --run RUN --n_test 200 --draws 200

Fitness per task is Kendall tau (the run's metric), oriented as the run chose; the pool a draw is taken from
is the task's selection networks plus its first ``n_test`` test networks (values from the run's value cache,
computed where missing). Writes benchmarks/results/noise.json.
"""
from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import numpy as np
from scipy import stats

from eznas.config import from_dict
from eznas.data import resolve_data_root
from eznas.gp.config import EvolutionConfig
from eznas.gp.objective import correlate, program_scores
from eznas.gp.values import FitnessData, ValueCache
from eznas.gp.parse import parse_program
from eznas.io import write_json
from eznas.parallel import open_mapper

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="an evolve.py run folder (its checkpoint's population is used)")
    p.add_argument("--cache_dir", default=None, help="value cache (default: the run's sibling 'values' folder)")
    p.add_argument("--n_test", type=int, default=200, help="test networks per task (default 200)")
    p.add_argument("--draws", type=int, default=200, help="random draws per size (default 200)")
    p.add_argument("--sizes", default="20,200")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "noise.json"))
    args = p.parse_args()
    run = Path(args.run)
    cfg = from_dict(EvolutionConfig, json.loads((run / "config.json").read_text()), str(run / "config.json"))
    blob = pickle.loads((run / "checkpoint.pkl").read_bytes())
    memo = blob["memo"]
    texts = [t for t in blob["population"] if memo[t]["fitness"] > -1.0]  # the valid ones
    programs = [parse_program(t) for t in texts]
    cache = Path(args.cache_dir) if args.cache_dir else run.parent / "values"
    data = FitnessData(cfg.fitness, ValueCache(cache), resolve_data_root(args.data_root or cfg.fitness.data_root))
    rng = np.random.default_rng(0)
    sizes = [int(s) for s in args.sizes.split(",")]
    result = {"run": str(run), "programs": len(programs), "n_test": args.n_test, "draws": args.draws, "tasks": {}}
    with open_mapper(cfg.parallel) as mapper:
        for task in data.tasks:
            t = str(task)
            sel, test = data.networks(t, "selection"), data.networks(t, "test", args.n_test)
            pool = sel + test
            scores = program_scores(programs, data, {t: pool}, mapper)
            orient = np.array([memo[x]["orientation"] for x in texts])
            s = np.array([sc[t] for sc, _ in scores]) * orient[:, None]  # programs x pool networks
            acc = np.array([a.accuracy for a in pool])
            ok = np.isfinite(s).all(axis=1)
            s, names = s[ok], [x for x, k in zip(texts, ok) if k]
            n_sel = len(sel)
            test_fit = np.array([correlate(row[n_sel:], acc[n_sel:], "kendall") for row in s])
            full_fit = np.array([correlate(row[:n_sel], acc[:n_sel], "kendall") for row in s])
            per_size = {}
            for n in sizes:
                fits = np.empty((args.draws, len(s)))
                agree = []
                for d in range(args.draws):
                    idx = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
                    fits[d] = [correlate(row[idx], acc[idx], "kendall") for row in s]
                    sub = rng.choice(n_sel, size=min(n, n_sel), replace=False)  # a selection-like draw
                    sel_fit = [correlate(row[sub], acc[sub], "kendall") for row in s]
                    agree.append(stats.spearmanr(sel_fit, test_fit, nan_policy="omit").statistic)
                std = np.nanstd(fits, axis=0)
                per_size[str(n)] = {"fitness_std_median": float(np.nanmedian(std)), "fitness_std_max": float(np.nanmax(std)),
                                    "selection_vs_test_spearman_median": float(np.nanmedian(agree)),
                                    "selection_vs_test_spearman_q10_q90": [float(np.nanquantile(agree, 0.1)),
                                                                           float(np.nanquantile(agree, 0.9))]}
                print(f"{t} n={n}: fitness std (median over {len(s)} programs) {per_size[str(n)]['fitness_std_median']:.3f}, "
                      f"selection-vs-test Spearman (median over draws) {per_size[str(n)]['selection_vs_test_spearman_median']:.3f}")
            result["tasks"][t] = {"programs": len(s), "sizes": per_size,
                                  "all_selection_vs_test_spearman": float(stats.spearmanr(full_fit, test_fit).statistic),
                                  "programs_by_test": sorted(zip(test_fit.tolist(), names), reverse=True)[:5]}
            print(f"{t}: all {n_sel} selection networks vs test: Spearman "
                  f"{result['tasks'][t]['all_selection_vs_test_spearman']:.3f}", flush=True)
    write_json(Path(args.out), result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
