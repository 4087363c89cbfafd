"""Scaling on this machine: one generation's values (a task per network: build it, collect what the
programs' aggregates read, compute them) and the fitness from them, on the serial, loky and Dask
LocalCluster backends, 1 and 2 workers: wall time, speed-up over serial and overhead per task.

    python benchmarks/bench_scaling.py --networks 20 --programs 50

Overhead per task = (workers x wall - serial wall) / tasks: the worker-seconds a task costs beyond its
serial share (start-up, pickling). Every backend must give the serial fitness exactly (checked). Writes
benchmarks/results/scaling.json.
"""
from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

from deap import gp

from eznas.data import resolve_data_root
from eznas.gp.config import FitnessConfig
from eznas.gp.objective import evaluate_on
from eznas.gp.values import FitnessData, ValueCache
from eznas.gp.parse import parse_program
from eznas.gp.operators import gen_half_and_half
from eznas.gp.pset import make_pset
from eznas.gp.seeds import SEEDS
from eznas.io import write_json
from eznas.parallel import ParallelConfig, open_mapper

SETUPS = [("serial", 1), ("loky", 1), ("loky", 2), ("dask", 1), ("dask", 2)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", type=int, default=20, help="NB-201 CIFAR-10 fitness networks (default 20)")
    p.add_argument("--programs", type=int, default=50, help="programs in the generation (default 50)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "scaling.json"))
    args = p.parse_args()
    root = resolve_data_root(args.data_root)
    config = FitnessConfig(tasks=("NASBench201:cifar10",), selection=args.networks, validation=2,
                           screen=min(20, args.networks), data_root=str(root))
    rng = random.Random(0)
    pset = make_pset()
    programs = list(SEEDS.values()) + [str(gp.PrimitiveTree(gen_half_and_half(pset, 2, 6, rng)))
                                       for _ in range(args.programs - len(SEEDS))]
    work = Path(tempfile.mkdtemp(prefix="eznas-scaling-"))
    rows, reference = [], None
    for backend, workers in SETUPS:
        cache = work / f"cache-{backend}-{workers}"
        data = FitnessData(config, ValueCache(cache), root)
        networks = {str(t): data.networks(str(t)) for t in data.tasks}
        parsed = [parse_program(t) for t in programs]
        with open_mapper(ParallelConfig(backend, workers=workers)) as mapper:
            mapper.map(abs, range(workers))  # start the workers before the clock (once per run)
            t0 = time.perf_counter()
            data.ensure([a for p in parsed for a in p.aggregates()], networks, mapper)
            values_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            evals = evaluate_on(parsed, data, networks, mapper)  # every value is cached now: the driver's part
            fitness_s = time.perf_counter() - t0
        fitness = {t: ev.fitness for t, ev in zip(programs, evals)}
        reference = reference or fitness
        rows.append({"backend": backend, "workers": workers, "values_seconds": values_s, "fitness_seconds": fitness_s,
                     "same_fitness_as_serial": fitness == reference})
        shutil.rmtree(cache, ignore_errors=True)
    serial = rows[0]
    print(f"{args.networks} networks (batch {config.batch_size}, {config.dtype}), {args.programs} programs")
    print(f"{'backend':8} {'workers':>7} | {'values s':>9} {'speed-up':>8} {'overhead/task':>13} | "
          f"{'fitness s':>9} | same")
    for r in rows:
        w = r["workers"]
        r["values_speedup"] = serial["values_seconds"] / r["values_seconds"]
        r["values_overhead_per_task"] = (w * r["values_seconds"] - serial["values_seconds"]) / args.networks
        print(f"{r['backend']:8} {w:7d} | {r['values_seconds']:9.2f} {r['values_speedup']:7.2f}x "
              f"{r['values_overhead_per_task']:12.3f}s | {r['fitness_seconds']:9.2f} | {r['same_fitness_as_serial']}")
    write_json(Path(args.out), {"networks": args.networks, "programs": args.programs, "rows": rows})
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
