"""Seconds per arch of each proxy, run alone, and of the statistics collector, against a bare
forward+backward on the same archs; and the collector's bytes per network.

    python benchmarks/bench_scoring.py --n_archs 50 --batch_size 16

Each timing excludes the network build (reported on its own); every measurement gets a freshly built
network with the same seeded initialisation, and the measurements are interleaved arch by arch so that
machine load affects them alike. Targets: single-pass proxies <= 1.5x the bare forward+backward; the
collector's three passes (all 22 names) <= 4x. Bytes per network are for all 22 names at batch 1 and at
the benchmark batch, float32 and float16. Prints a table and writes benchmarks/results/scoring.json.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from eznas.data import BatchSource, resolve_data_root
from eznas.io import write_json
from eznas.proxies import Probe, get_proxy, list_proxies, parse_proxy
from eznas.networks import build_network
from eznas.scoring import sample_archs
from eznas.spaces import get_space
from eznas.stats import collect


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n_archs", type=int, default=50)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None)
    per_arch = [n for n in list_proxies() if not get_proxy(n).pool]  # a pool proxy is timed by its components
    p.add_argument("--proxies", default=",".join(per_arch), help="default: every per-arch proxy")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "scoring.json"))
    args = p.parse_args()

    space = get_space("NASBench201")
    root = resolve_data_root(args.data_root)
    archs = sample_archs(space.load(space.default_benchmark(root, "cifar10"), "cifar10"), args.n_archs, args.seed)
    batch = BatchSource(root, "cifar10", args.batch_size, args.seed).batch()
    proxies = args.proxies.split(",")

    def fresh(arch):
        return build_network(space, arch, 10, args.seed)

    times: dict[str, list[float]] = {"build": [], "forward+backward": [], "collector (D,N,P)": [],
                                     **{n: [] for n in proxies}}
    one = BatchSource(root, "cifar10", 1, args.seed).batch()
    nbytes: dict[str, list[int]] = {f"batch {b} {d}": [] for b in (1, args.batch_size) for d in ("float32", "float16")}
    for arch in archs:
        t0 = time.perf_counter()
        net = fresh(arch)
        times["build"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        F.cross_entropy(net(batch.x), batch.y).backward()
        times["forward+backward"].append(time.perf_counter() - t0)
        net = fresh(arch)
        t0 = time.perf_counter()
        stats = collect(net, batch)
        times["collector (D,N,P)"].append(time.perf_counter() - t0)
        nbytes[f"batch {args.batch_size} float32"].append(stats.nbytes())
        nbytes[f"batch {args.batch_size} float16"].append(stats.nbytes() // 2)
        small = collect(fresh(arch), one)
        nbytes["batch 1 float32"].append(small.nbytes())
        nbytes["batch 1 float16"].append(small.nbytes() // 2)
        del stats, small
        for name in proxies:
            proxy, net = parse_proxy(name), fresh(arch)
            t0 = time.perf_counter()
            probe = Probe(net, batch)
            probe.run(proxy.needs)
            proxy(probe)
            times[name].append(time.perf_counter() - t0)

    bare = statistics.mean(times["forward+backward"])
    rows = {k: {"seconds_per_arch": statistics.mean(v), "ratio_to_fwd_bwd": statistics.mean(v) / bare}
            for k, v in times.items()}
    result = {"n_archs": len(archs), "batch_size": args.batch_size, "torch_threads": torch.get_num_threads(),
              "timings": rows, "collector_bytes_per_network": {k: statistics.mean(v) for k, v in nbytes.items()},
              "targets": "single-pass proxies <= 1.5x forward+backward; collector <= 4x"}
    write_json(args.out, result)
    print(f"NB-201 CIFAR-10, {len(archs)} archs, batch {args.batch_size}, {torch.get_num_threads()} threads")
    print(f"{'what':<18}{'s/arch':>10}{'x fwd+bwd':>11}")
    for k, r in rows.items():
        print(f"{k:<18}{r['seconds_per_arch']:>10.4f}{r['ratio_to_fwd_bwd']:>11.2f}")
    for k, v in result["collector_bytes_per_network"].items():
        print(f"collector, all 22 names, {k}: {v / 1e6:.1f} MB per network")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
