"""How fast does fitness score programs on cached values? A finished run's full-evaluated programs (a seeded
sample) scored on its selection networks from its warm value cache, network by network (``pool_scores`` of
each network's ``network_values``: how fitness scored them before 2026-12-04) and a column at a time with
the shared columns of ``program_scores`` (how it scores them now); checks that both give the same numbers
and reasons.

    python benchmarks/bench_program_eval.py --run results/benchmarks/discovery_novel_cold2/seed0 \\
        --cache results/benchmarks/discovery_novel_cold2/values
"""
from __future__ import annotations

import argparse
import json
import math
import pickle
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eznas.config import from_dict  # noqa: E402
from eznas.gp.config import EvolutionConfig  # noqa: E402
from eznas.gp.objective import program_scores  # noqa: E402
from eznas.gp.values import FitnessData, ValueCache  # noqa: E402
from eznas.gp.parse import parse_program  # noqa: E402
from eznas.report import write_results  # noqa: E402


def network_by_network(programs, table):  # noqa: ANN001, ANN201 - the reference: one network at a time
    return [{t: p.pool_scores([p.network_values(None, row, row) for row in rows]) for t, rows in table.items()}
            for p in programs]


def same(a: float | str, b: float | str) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a finished evolve.py run folder (its config.json and checkpoint.pkl)")
    p.add_argument("--cache", required=True, help="the value cache the run filled")
    p.add_argument("--programs", type=int, default=2000, help="how many of its full-evaluated programs")
    p.add_argument("--data-root", default="data")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "program_eval"))
    args = p.parse_args()
    blob = pickle.loads((Path(args.run) / "checkpoint.pkl").read_bytes())
    cfg = from_dict(EvolutionConfig, json.loads((Path(args.run) / "config.json").read_text()), "config").fitness
    data = FitnessData(cfg, ValueCache(args.cache), Path(args.data_root))
    texts = sorted(t for t, e in blob["memo"].items() if e["stage"] == "full")
    random.Random(0).shuffle(texts)
    texts = texts[: args.programs]
    networks = {str(t): data.networks(str(t), "selection") for t in data.tasks}
    table = data.table(networks)
    if missing := [t for t in texts if any(v not in table[task][0] for v in parse_program(t).values()
                                           for task in table)]:
        raise SystemExit(f"{args.cache}: the value cache lacks values of {missing[0]!r} (not this run's cache?)")
    start = time.perf_counter()
    before = network_by_network([parse_program(t) for t in texts], table)
    old = time.perf_counter() - start
    start = time.perf_counter()
    now = program_scores([parse_program(t) for t in texts], data, networks)
    new = time.perf_counter() - start
    differ = sum(any(not same(a, b) for t in networks for a, b in zip(want[t], got[t]))
                 for want, (got, _) in zip(before, now))
    n = len(texts)
    results = {"run": args.run, "programs": n, "networks_per_task": cfg.selection, "tasks": list(networks),
               "network_by_network_seconds": old, "column_seconds": new, "differ": differ}
    md = ("| programs | networks | network by network, ms / program | a column at a time, ms / program | speed-up "
          "| programs that differ |\n|---|---|---|---|---|---|\n"
          f"| {n} | {cfg.selection} × {len(networks)} | {1000 * old / n:.1f} | {1000 * new / n:.1f} | "
          f"{old / new:.1f}× | {differ} |\n")
    print(write_results(Path(args.out), results, md))
    if differ:
        raise SystemExit(f"{differ} programs scored differently")


if __name__ == "__main__":
    main()
