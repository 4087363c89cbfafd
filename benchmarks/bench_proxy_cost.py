"""What a proxy costs against the passes its protocol needs (issue 41, item 3).

Per space (NB-201; DARTS on the probe network verify and evolve score it on; NB-101 at stem 32 as the fitness
task ``NASBench101:cifar10@width=32``; NB-301 on its own training network), ``--n_archs`` archs drawn with
``--seed`` from the space's benchmark table as verify draws them, each built as verify builds it, and per arch:

* ``t_build``: building the network (``eznas.networks.build_network``), ``t_fwd``: one forward pass of the
  arch's batch (``--batch_size``, the proxies' batch; no gradients, train mode) and ``t_fwdbwd``: one
  forward + backward of the sum of the logits; each the median of ``--repeats`` runs after a warm-up;
* each proxy's seconds exactly as verify counts them (``eznas.scoring.score_archs`` with that proxy alone, so
  the build, the shared pass and its own work; a pool-level proxy: the sum of its per-arch parts' seconds),
  after one untimed warm-up arch: every hand-made registered proxy, and eznas's shipped discovered proxy
  ``discovered`` (eznas.gp.discovered; its needs are what its program reads).

Each proxy's protocol needs ``PASSES[name]``: forwards and forward+backward passes at the batch (a pass of a
proxy's own batch of images, AZ-NAS's 64, counted as images / batch of them). Its **budget** on an arch is
``builds * t_build + forwards * t_fwd + fwdbwd * t_fwdbwd``, builds being the per-arch parts verify charges
the network's build to (1, AZ-NAS's and a pool program's: one per part); its **ratio** is the median over
the archs of seconds / budget, the target ratio <= 3.

    python benchmarks/bench_proxy_cost.py                       # every space, proxy and the discovered one
    python benchmarks/bench_proxy_cost.py --spaces NASBench201 --n_archs 1 --proxies params,meco \\
        --out /tmp/pc/proxy_cost.json                           # a tiny check

Each finished space is written into benchmarks/results/proxy_cost.json (``--out``) at once, so an interrupted
run resumes; a space recorded with other settings is measured again. Timings need a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import torch

from eznas.data import BatchSource, resolve_data_root
from eznas.gp import discovered
from eznas.gp.config import FitnessConfig, Task
from eznas.gp.parse import parse_program
from eznas.gp.pset import proxy_name
from eznas.report import write_results
from eznas.networks import build_network
from eznas.proxies import ProxyCall, list_proxies, per_arch_calls
from eznas.scoring import sample_archs, score_archs
from eznas.spaces import Arch, SearchSpace, SpaceOptions, get_space, space_class
from eznas.threads import process_cpus, set_threads
from eznas.verify.config import VerifyConfig, proxy_calls, resolved
from _common import record, saved

REPO = Path(__file__).resolve().parents[1]
SPACES = {"NASBench201": "NASBench201:cifar10", "DARTS": "DARTS:cifar10",
          "NASBench101": "NASBench101:cifar10@width=32", "NASBench301": "NASBench301:cifar10"}
TARGET = 3.0
DISCOVERED = "discovered"  # the --proxies name of the shipped discovered proxy


class Needs(NamedTuple):
    """The passes a proxy's protocol needs at its default options: ``forwards`` and ``fwdbwd`` passes of the
    batch; ``images``: the batch of its forward+backward passes where that is its own (AZ-NAS's noise), so
    they count images / batch passes of the batch."""
    forwards: float
    fwdbwd: float
    why: str
    images: int | None = None


AZ_IMAGES = 64  # AZ-NAS's batch of noise images (its components' ``batch`` option)
AZ_WHY = (f"one forward of {AZ_IMAGES} noise images with gradients, then per cell a Rademacher vector pulled "
          "back through it (together one backward) on a Kaiming copy; eigenvalues and SVDs besides")
PASSES: dict[str, Needs] = {
    "params": Needs(0, 0, "counts the parameters: no pass, only the build"),
    "flops": Needs(1, 0, "the shared pass with MAC-counting hooks: one forward"),
    "grad_norm": Needs(0, 1, "the shared cross-entropy forward+backward"),
    "snip": Needs(0, 1, "the shared cross-entropy forward+backward"),
    "sweetimator": Needs(0, 1, "the shared cross-entropy forward+backward"),
    "naswot": Needs(1, 0, "the shared forward with ReLU-code hooks, then one batch x batch log-determinant"),
    "fisher": Needs(0, 1, "one cross-entropy forward+backward on a copy, the activations' gradients kept"),
    "jacov": Needs(0, 1, "one forward+backward of the summed logits on a copy, for the input gradients"),
    "grasp": Needs(0, 3, "two cross-entropy gradients (one with its graph kept) and a Hessian-vector product: "
                   "about three forward+backward"),
    "zico": Needs(0, 1, "a forward+backward of each of its 2 halves of the batch: one batch's worth"),
    "synflow": Needs(0, 1, "one forward+backward of an all-ones image through a float64 |W| copy (one "
                     "float64 image counted as one pass of the batch)"),
    "meco": Needs(1, 0, "one forward of one 64x64 noise image without gradients (counted as one pass of the "
                  "batch)"),
    "swap": Needs(32, 0, "32 re-initialisations (repeats=32), each one forward of the batch"),
    "reg_swap": Needs(32, 0, "SWAP's 32 forwards, times a size prior"),
    "eznas": Needs(0, 1, "the collector's D pass on a Kaiming copy: one forward+backward of the summed logits "
                   "(its features' one-image forward aside)"),
    "az_expressivity": Needs(0, 1, AZ_WHY, AZ_IMAGES),
    "az_progressivity": Needs(0, 1, AZ_WHY, AZ_IMAGES),
    "az_trainability": Needs(0, 1, AZ_WHY, AZ_IMAGES),
    "az_nas": Needs(1, 1, f"flops's forward of the batch, and its components' pass of {AZ_IMAGES} images "
                    "(computed once, shared by the three)", AZ_IMAGES),
}


def counts(needs: Needs, batch: int) -> tuple[float, float]:
    """(forwards, forward+backward passes) of the batch."""
    return needs.forwards, needs.fwdbwd * (needs.images or batch) / batch


def collector_needs(names: Sequence[str]) -> Needs:
    """The collector's passes for ``names`` (eznas.stats.passes.collect_tensors: D, N, P; P needs D; a pass whose
    gradients are read is a forward+backward, else a forward)."""
    passes = {n.rsplit("_", 1)[1] for n in names if n != "weight"} or {"D"}
    passes |= {"D"} if "P" in passes else set()
    grads = {n.rsplit("_", 1)[1] for n in names if "_grad_" in n}
    grads |= {"D"} if "P" in grads else set()
    return Needs(len(passes - grads), len(grads), f"the collector's passes {', '.join(sorted(passes))} "
                 f"(with gradients: {', '.join(sorted(grads)) or 'none'})")


def program_counts(text: str, batch: int) -> tuple[float, float, str]:
    """A program's passes: its statistics' collection (one for all its parts) and its proxy terminals'
    needs, a pass they share (the shared pass, AZ-NAS's components' one) counted once."""
    program = parse_program(text)
    collector = collector_needs(sorted(program.terminals))
    parts = [collector, *dict.fromkeys(PASSES[proxy_name(t)] for t in program.proxies)]
    f, fb = (sum(c) for c in zip(*(counts(n, batch) for n in parts)))
    terminals = f"; its proxy terminals' ({', '.join(program.proxies)})" if program.proxies else ""
    return f, fb, collector.why + terminals


def needs_of(name: str, batch: int) -> tuple[float, float]:
    """A proxy's forwards and forward+backwards at ``batch``: its PASSES entry, or a discovered proxy's program's."""
    if name in set(discovered.names()):
        return program_counts(discovered.provenance(name)["program"], batch)[:2]
    return counts(PASSES[name], batch)


def timed(fn: Callable[[], object], repeats: int) -> float:
    """The median seconds of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pass_seconds(space: SearchSpace, arch: Arch, x: torch.Tensor, classes: int, seed: int, repeats: int
                 ) -> dict[str, float]:
    """One arch's build, forward and forward+backward seconds (train mode, the sum of the logits backward)."""
    t_build = timed(lambda: build_network(space, arch, classes, seed), repeats)
    net = build_network(space, arch, classes, seed)

    def forward() -> None:
        with torch.no_grad():
            net(x)

    def fwdbwd() -> None:
        net.zero_grad(set_to_none=True)
        net(x).sum().backward()

    return {"build": t_build, "forward": timed(forward, repeats), "fwdbwd": timed(fwdbwd, repeats)}


def proxy_seconds(space: SearchSpace, archs: list[Arch], call: ProxyCall, batches: BatchSource, seed: int,
                  batch: int) -> dict:
    """Per arch, the proxy's seconds as verify counts them (a pool-level call: its parts' together) and its
    error if it failed there; ``builds``: the parts charged the build."""
    parts = list(per_arch_calls({call.label: call}, batch).values())
    for _ in score_archs(space, archs[:1], parts, batches, seed=seed):  # warm-up, untimed
        pass
    seconds, errors = [], {}
    for r in score_archs(space, archs, parts, batches, seed=seed):
        seconds.append(sum(r.seconds[p.label] for p in parts))
        if r.errors:
            errors[r.arch.uid] = next(iter(r.errors.values())).splitlines()[0][:200]
    return {"seconds": seconds, "builds": len(parts), "errors": errors}


def judged(seconds: list[float], passes: dict[str, list[float]], builds: int, f: float, fb: float) -> dict:
    """Median seconds and budget over the archs, the median per-arch ratio, and whether it meets the target."""
    budgets = [builds * b + f * t + fb * tb for b, t, tb in zip(passes["build"], passes["forward"], passes["fwdbwd"])]
    ratio = statistics.median(s / b for s, b in zip(seconds, budgets))
    return {"seconds": statistics.median(seconds), "budget": statistics.median(budgets), "ratio": ratio,
            "target_met": ratio <= TARGET}


def space_setup(name: str, root: Path, batch: int, n_archs: int, seed: int
                ) -> tuple[VerifyConfig, SearchSpace, list[Arch], BatchSource]:
    """The space's network (as its fitness task and verify score it), the archs drawn and their batches."""
    task = Task.parse(SPACES[name])
    cfg = resolved(VerifyConfig(search_space=task.space, dataset=task.dataset, batch_size=batch, n_samples=n_archs,
                                seed=seed, width=task.width, cells=task.cells, data_root=str(root), device="cpu",
                                probe=FitnessConfig().probe if space_class(task.space).has_probes() else None))
    space = get_space(cfg.search_space, SpaceOptions(cfg.nds_space, cfg.width, cfg.cells, cfg.probe))
    archs = sample_archs(space.load(space.default_benchmark(root, cfg.dataset), cfg.dataset), n_archs, seed)
    return cfg, space, archs, BatchSource(root, cfg.dataset, batch, seed)


def machine(threads: int) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() \
        else platform.processor()
    return {"cpu": cpu, "cpus": os.cpu_count(), "process_cpus": process_cpus(), "torch_threads": threads,
            "device": "cpu", "torch": torch.__version__, "python": platform.python_version()}


def measure_space(name: str, root: Path, settings: dict, proxies: list[str]) -> dict:
    """One space's pass timings and every proxy's seconds, budget and ratio."""
    batch, seed = settings["batch_size"], settings["seed"]
    cfg, space, archs, batches = space_setup(name, root, batch, settings["n_archs"], seed)
    classes = batches.spec.num_classes
    rows = [pass_seconds(space, a, batches.batch(i).x, classes, seed, settings["repeats"]) for i, a in enumerate(archs)]
    passes = {k: [r[k] for r in rows] for k in ("build", "forward", "fwdbwd")}
    print(f"{name}: build {statistics.median(passes['build']) * 1e3:.1f} ms, forward "
          f"{statistics.median(passes['forward']) * 1e3:.1f} ms, forward+backward "
          f"{statistics.median(passes['fwdbwd']) * 1e3:.1f} ms", flush=True)
    out = {}
    for label in proxies:
        call = next(iter(proxy_calls(VerifyConfig(batch_size=batch, seed=seed, proxies=(label,))).values()))
        f, fb = needs_of(label, batch)
        timing = proxy_seconds(space, archs, call, batches, seed, batch)
        out[label] = {"forwards": f, "fwdbwd": fb, "builds": timing["builds"],
                      **judged(timing["seconds"], passes, timing["builds"], f, fb),
                      "seconds_per_arch": timing["seconds"], "errors": timing["errors"]}
        print(f"  {label}: {out[label]['seconds']:.3f} s/arch, ratio {out[label]['ratio']:.2f}", flush=True)
    return {"task": SPACES[name], "network": space.tag, "width": cfg.width, "cells": cfg.cells, "probe": cfg.probe,
            "settings": settings, "machine": machine(torch.get_num_threads()), "uids": [a.uid for a in archs],
            "passes": passes, **{f"t_{k}": statistics.median(v) for k, v in passes.items()}, "proxies": out}


def markdown(results: dict, batch: int = 16) -> str:
    def ms(s: float) -> str:
        return f"{s * 1e3:.1f}"

    def n(x: float) -> str:
        return f"{x:g}"

    lines = ["# What a proxy costs against the passes its protocol needs", "",
             "Seconds per arch as verify counts them (the network's build, the shared pass, the proxy's own work), "
             "beside its budget: builds x t_build + forwards x t_fwd + fwd+bwd x t_fwdbwd, each pass at the "
             f"proxies' batch on the same network (medians over the archs); builds: the per-arch parts verify "
             f"charges the build to (a pool-level proxy's parts). Ratio: the median over the archs of seconds / "
             f"budget; target <= {TARGET:g}."]
    for name, s in results.get("spaces", {}).items():
        m, st, k = s["machine"], s["settings"], len(s["uids"])
        lines += ["", f"## {name}: {s['network']} ({s['task']}), {k} arch{'s' if k != 1 else ''}, "
                  f"batch {st['batch_size']}", "",
                  f"Measured on {m['cpu']}, {m['cpus']} CPUs ({m['process_cpus']} for this process), "
                  f"{m['torch_threads']} torch threads, {m['device']}, torch {m['torch']}; passes: median of "
                  f"{st['repeats']} after a warm-up.", "",
                  f"t_build {ms(s['t_build'])} ms, t_fwd {ms(s['t_forward'])} ms, t_fwdbwd {ms(s['t_fwdbwd'])} ms",
                  "", "| proxy | s/arch | forwards | fwd+bwd | builds | budget (ms) | ratio | target |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, r in s["proxies"].items():
            failed = f" ({len(r['errors'])} failed)" if r["errors"] else ""
            lines.append(f"| {label}{failed} | {r['seconds']:.3f} | {n(r['forwards'])} | {n(r['fwdbwd'])} | "
                         f"{r['builds']} | {ms(r['budget'])} | {r['ratio']:.2f} | "
                         f"{'met' if r['target_met'] else 'missed'} |")
    lines += ["", f"## The passes each protocol needs (at batch {batch})", "", "| proxy | forwards | fwd+bwd | why |",
              "|---|---|---|---|"]
    for name, needs in results.get("passes", {}).items():
        f, fb = counts(Needs(**needs), batch)
        lines.append(f"| {name} | {n(f)} | {n(fb)} | {needs['why']} |")
    if program := results.get("discovered"):
        f, fb, why = program_counts(program["program"], batch)
        lines += [f"| {DISCOVERED} | {n(f)} | {n(fb)} | {why} |", "",
                  f"{DISCOVERED} (= {program['default_of']}, GP seed {program['gp_seed']}'s winner, validation fitness "
                  f"{program['validation_fitness']:.3f}): `{program['program']}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spaces", default=",".join(SPACES), help=f"default: {','.join(SPACES)}")
    p.add_argument("--proxies", default="all", help=f"comma-separated registered proxies and/or {DISCOVERED!r} "
                   "(default all: every registered proxy and the discovered one)")
    p.add_argument("--n_archs", "--n-archs", type=int, default=10)
    p.add_argument("--batch_size", "--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each pass per arch (default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--seed", type=int, default=0, help="the archs drawn, their batches and initialisations")
    p.add_argument("--data-root", "--data_root", default=None)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "proxy_cost.json"))
    args = p.parse_args(argv)
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    if unknown := [s for s in spaces if s not in SPACES]:
        raise SystemExit(f"error: --spaces: unknown space {unknown[0]!r}; valid: {', '.join(SPACES)}")
    proxies = [*discovered.hand_made(), DISCOVERED] if args.proxies == "all" else \
        [x.strip() for x in args.proxies.split(",") if x.strip()]
    if unknown := [x for x in proxies if x not in list_proxies()]:
        raise SystemExit(f"error: --proxies: unknown proxy {unknown[0]!r}; valid: {', '.join(list_proxies())}")
    if min(args.n_archs, args.batch_size, args.repeats, args.threads) < 1:
        raise SystemExit("error: --n_archs, --batch_size, --repeats and --threads must be >= 1")
    set_threads(args.threads)
    root, out = resolve_data_root(args.data_root), Path(args.out)
    program = {k: discovered.provenance(DISCOVERED)[k] for k in ("program", "gp_seed", "validation_fitness",
                                                                 "default_of")} if DISCOVERED in proxies else None
    settings = {"n_archs": args.n_archs, "batch_size": args.batch_size, "repeats": args.repeats,
                "threads": args.threads, "seed": args.seed, "proxies": proxies,
                "program": program["program"] if program else None}
    results = saved(out)
    for space in spaces:
        if results.get("spaces", {}).get(space, {}).get("settings") != settings:
            results = record(out, "spaces", space, measure_space(space, root, settings, proxies))
    results["passes"] = {k: v._asdict() for k, v in PASSES.items()}
    if program:
        results["discovered"] = program
    results["target_ratio"] = TARGET
    print(write_results(out, results, markdown(results, args.batch_size)))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
