"""Every registered proxy on the DARTS CSV scored on SWAP's probe network, next to the standard network.

    python benchmarks/bench_probe.py                      # all rows, every proxy, batch 16, seed 0
    python benchmarks/bench_probe.py --darts_archs 100    # quicker

The probe network (``--probe swap``) is SWAP's ``Network(3, 10, 1, genotype)``: no stem, one reduction cell
of width 3 (``eznas.spaces.darts.PROBES``). Two batches on it: the seeded draw every other table uses and
SWAP's own (``--first_batch``: the first 16 training images, unshuffled). The standard network (stem, 8
cells, width 16) is not re-scored here: its figures are read from the baseline tables measured with the
same seed, batch and rows (the parts classic, seeds, fisher and eznas of ``benchmarks/results/baselines.json``;
fisher and eznas from their own re-runs). Run folders go to results/benchmarks/probe/<variant>/ (a finished
run is reused, an unfinished one resumed); the figures to benchmarks/results/darts_probe.{json,md}: a proxy
measured now replaces its figures there and the others are kept (``--proxies synflow,snip`` re-measures two;
each variant's wall_seconds is its latest run's), so the file holds each proxy's latest measurement.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from _common import figures, location_args, locations, print_summary, publish, saved, verified
from eznas.proxies import list_proxies

RESULTS = Path(__file__).parent / "results"
# the standard network's DARTS figures: parts of baselines.json, the later part wins (its proxy was re-measured there)
BASELINES = RESULTS / "baselines.json"
STANDARD = ("classic", "seeds", "fisher", "eznas")
VARIANTS = {"probe-seeded": dict(probe="swap"), "probe-first16": dict(probe="swap", first_batch=True)}


def standard_figures(path: Path = BASELINES) -> dict[str, dict]:
    """Per proxy, its DARTS figures on the standard network from the baseline parts (``STANDARD``), each
    naming the part it comes from."""
    parts = saved(path).get("parts", {})
    out: dict[str, dict] = {}
    for name in STANDARD:
        task = parts.get(name, {}).get("tasks", {}).get("darts-cifar10")
        if task:
            out.update({p: {**m, "source": f"{path.name}, part {name}"} for p, m in task["proxies"].items()})
    return out


def merged(before: dict, now: dict, standard: dict[str, dict]) -> dict:
    """The figures ``before`` (the file's) with those measured ``now`` in their place: per variant, a proxy
    measured now replaces its figures and the others are kept (wall_seconds: the latest run's); the proxies in
    the order first measured, each with its ``standard`` figures, and which of them the probe ranks better."""
    for key in ("seed", "batch_size"):
        if before and before[key] != now[key]:
            raise SystemExit(f"error: the results file holds {key} {before[key]}, not {now[key]}; give another --out")
    results = {**now, "proxies": list(dict.fromkeys([*before.get("proxies", []), *now["proxies"]])), "variants": {}}
    for variant, fresh in now["variants"].items():
        old = before.get("variants", {}).get(variant, {"n_archs": fresh["n_archs"], "proxies": {}})
        if old["n_archs"] != fresh["n_archs"]:
            raise SystemExit(f"error: the results file's {variant} scored {old['n_archs']} archs, this run "
                             f"{fresh['n_archs']}; give another --out")
        results["variants"][variant] = {**fresh, "proxies": {**old["proxies"], **fresh["proxies"]}}
    results["standard"] = {k: v for k, v in standard.items() if k in results["proxies"]}
    probe = results["variants"]["probe-first16"]["proxies"]
    results["compared"] = [n for n in results["proxies"] if n in probe and n in results["standard"]]
    results["probe_better"] = [n for n in results["compared"]
                               if probe[n]["spearman"] > results["standard"][n]["spearman"]]
    return results


def markdown(results: dict) -> str:
    def cell(m: dict | None) -> str:
        if not m:
            return "—"
        lo, hi = m["ci95"]["spearman"]
        return f"{m['spearman']:.3f} / {m['kendall']:.3f} [{lo:.3f}, {hi:.3f}]"

    n = {v: results["variants"][v]["n_archs"] for v in VARIANTS}
    lines = [f"| proxy | standard net ρ / τ [95% CI of ρ] | probe net, seeded batch (n={n['probe-seeded']}) "
             f"| probe net, first 16 images (n={n['probe-first16']}) | s/arch probe |", "|---|---|---|---|---|"]
    for name in results["proxies"]:
        probe = results["variants"]["probe-first16"]["proxies"].get(name)
        seconds = f"{probe['seconds_per_arch']:.3f}" if probe else "—"
        lines.append(f"| {name} | {cell(results['standard'].get(name))} "
                     f"| {cell(results['variants']['probe-seeded']['proxies'].get(name))} | {cell(probe)} | {seconds} |")
    better = results["probe_better"]
    lines.append(f"\nThe probe network ranks better (first-16 batch, ρ) for {len(better)} of "
                 f"{len(results['compared'])} proxies: {', '.join(better) or 'none'}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--darts_archs", type=int, default=-1, help="DARTS CSV rows (default -1: all)")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--proxies", default=",".join(list_proxies()), help="default: every registered proxy")
    location_args(p, runs="results/benchmarks/probe", out=str(RESULTS / "darts_probe"))
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    root, runs, out = locations(args)
    proxies = tuple(args.proxies.split(","))
    results: dict = {"seed": args.seed, "batch_size": args.batch_size, "proxies": list(proxies), "variants": {}}
    for variant, kw in VARIANTS.items():
        summary, _ = verified(runs, runs / variant, search_space="DARTS", dataset="cifar10",
                              n_samples=args.darts_archs, batch_size=args.batch_size, seed=args.seed, proxies=proxies,
                              data_root=str(root), **kw)
        print_summary(variant, summary)
        results["variants"][variant] = figures(summary)
    results = merged(saved(out.with_suffix(".json")), results, standard_figures())
    publish(out, results, markdown(results))


if __name__ == "__main__":
    main()
