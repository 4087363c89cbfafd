"""The README's baseline table: every registered proxy on 1000 NB-201 archs (CIFAR-10, CIFAR-100) and on
the DARTS CSV, next to published figures, plus per-arch agreement with NAS-Bench-Suite-Zero's scores.

    python benchmarks/bench_baselines.py                 # seed 0, batch 16, 1000 archs, every proxy
    python benchmarks/bench_baselines.py --n_archs 200   # quicker
    python benchmarks/bench_baselines.py --proxies swap,reg_swap,eznas --out benchmarks/results/baselines_seeds
    python benchmarks/bench_baselines.py --proxies grasp --n_archs 300 --tasks nb201-cifar10,nb201-cifar10-seed1 \
        --out benchmarks/results/baselines_grasp_seeds   # how far one proxy moves between two seeds, per arch

Run folders go to results/benchmarks/baselines/<out name>/<task>/; the figures to <out>.{json,md}. A task
whose run folder holds a finished run with the same settings is reused, and an unfinished one is resumed
(verify_scores checkpoints about every minute), so a long benchmark can be stopped and run again.
"""
from __future__ import annotations

import argparse
import functools
import logging
from pathlib import Path

import pandas as pd
from scipy import stats

from eznas.data import resolve_data_root
from eznas.io import atomic_open
from eznas.report import write_results
from eznas.metrics import correlations
from eznas.proxies import list_proxies
from eznas.verify import VerifyConfig, result_line, run_verify

# our proxy name -> NAS-Bench-Suite-Zero column
NBSZ_NAMES = {"params": "params", "flops": "flops", "synflow": "synflow", "naswot": "nwot", "grad_norm": "grad_norm",
              "snip": "snip", "jacov": "jacov", "grasp": "grasp", "fisher": "fisher"}
# Published NB-201 figures (shared/reference/proxies-and-anchors.md §5.3): NB-Suite-Zero's stored scores on
# NASLib's 725-arch sample, Spearman / Kendall against its val_accuracy [computed there].
# Papers' own figures (same file): EZNAS [csv], ZiCo [recall-unverified, approximate], MeCo C10 [abs] (rho only;
# C100 recall-unverified), reg-SWAP C100 [abs] (rho only). None: no published figure we can check.
PUBLISHED = {
    "cifar10": {"naswot": (.787, .594), "synflow": (.736, .537), "params": (.738, .562), "flops": (.711, .520),
                "snip": (.608, .443), "grad_norm": (.606, .439), "jacov": (.766, .584), "grasp": (.539, .381),
                "fisher": (.509, .374), "eznas": (.808, .620), "zico": (.80, .59), "meco": (.89, None),
                "az_nas": (.913, .741)},  # AZ-NAS: all 15,625 cells, ori-test (its tss_general.ipynb)
    "cifar100": {"naswot": (.814, .624), "synflow": (.762, .563), "params": (.744, .569), "flops": (.722, .531),
                 "snip": (.658, .487), "grad_norm": (.648, .478), "jacov": (.725, .554), "grasp": (.552, .392),
                 "fisher": (.555, .411), "eznas": (.798, .617), "zico": (.81, .61), "meco": (.88, None),
                 "reg_swap": (.90, None)},
}
# NB-Suite-Zero's early tables of other spaces (their scores and val_accuracy in one file), each scored on the
# space's own training network: task -> (space, file, verify options, the network in words)
EARLY = {"nb301-cifar10": ("NASBench301", "nb301_zc_early_cifar10.csv", {"probe": "none"},
                           "NB-301's training network: width 32, 8 cells"),
         "nb101-cifar10": ("NASBench101", "nb101_zc_early_cifar10.csv", {},
                           "NB-101's network: stem 128, 3 stacks of 3 cells")}
TASKS = ("nb201-cifar10", "nb201-cifar100", "darts-cifar10", "nb201-cifar100-nbsz725", "nb201-paper-batch",
         "nb201-cifar10-seed1", *EARLY)
# Each paper's own batch where it is not 16 (proxies-and-anchors.md): Sweetimator 64; ZiCo two batches of 64
# (ours: one batch of 128 split in two). MeCo draws its own input and SWAP/EZNAS use 16 already.
PAPER_BATCH = {"sweetimator": 64, "zico": 128}
# EZNAS and NB-Suite-Zero rank NB-201 CIFAR-10 against the `cifar10-valid` training's x-valid accuracy (mean over
# seeds), not against the train+valid -> test accuracy our tables use: the CIFAR-10 archs are also scored against it
C10_VALID = "v10_cifar10valid_valid"


def nbsz_agreement(scores: pd.DataFrame, nbsz: pd.DataFrame, proxies: list[str]) -> dict[str, dict]:
    """Per proxy, on the archs both have: Spearman between our scores and theirs, and each one's rho
    against the same accuracies (ours: the benchmark column we scored against)."""
    theirs = nbsz.rename(columns={c: f"nbsz_{c}" for c in nbsz.columns if c != "index"})
    both = scores.assign(index=scores.uid.astype(int)).merge(theirs, on="index")
    out = {}
    for name in proxies:
        col = f"nbsz_{NBSZ_NAMES.get(name)}"
        if col not in both.columns:
            continue
        ok = both[[name, col, "accuracy"]].replace([float("inf"), -float("inf")], float("nan")).dropna()
        out[name] = {
            "n": len(ok),
            "spearman_ours_vs_nbsz": float(stats.spearmanr(ok[name], ok[col]).statistic),
            "rho_ours": float(stats.spearmanr(ok[name], ok.accuracy).statistic),
            "rho_nbsz": float(stats.spearmanr(ok[col], ok.accuracy).statistic),
        }
    return out


def against(scores: pd.DataFrame, table: pd.DataFrame, column: str, proxies: list[str]) -> dict[str, dict]:
    """Per proxy: τ/ρ/r of our per-arch scores against another accuracy column of the benchmark table."""
    both = scores.assign(index=scores.uid.astype(int)).merge(table[["index", column]], on="index")
    out = {}
    for name in proxies:
        ok = both[[name, column]].replace([float("inf"), -float("inf")], float("nan")).dropna()
        out[name] = correlations(ok[name].to_numpy(), ok[column].to_numpy())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n_archs", type=int, default=1000, help="NB-201 archs per dataset (default 1000)")
    p.add_argument("--darts_archs", type=int, default=-1, help="DARTS CSV rows (default -1: all)")
    p.add_argument("--nbsz_archs", type=int, default=-1,
                   help="of NB-Suite-Zero's 725 CIFAR-100 archs, how many to score for the per-arch check (default all)")
    p.add_argument("--nb301_archs", type=int, default=-1, help="NB-301 table rows (default -1: all 725)")
    p.add_argument("--nb101_archs", type=int, default=-1, help="NB-101 table rows (default -1: all 500)")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None)
    p.add_argument("--proxies", default=",".join(list_proxies()), help="default: every registered proxy")
    p.add_argument("--tasks", default=",".join(TASKS), help=f"default: {','.join(TASKS)}")
    p.add_argument("--runs", default="results/benchmarks/baselines")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "baselines"))
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    root = resolve_data_root(args.data_root)
    proxies = tuple(args.proxies.split(","))
    out = Path(args.out)
    runs = Path(args.runs) / out.name
    tasks = args.tasks.split(",")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise SystemExit(f"error: unknown task {unknown[0]!r}; valid: {', '.join(TASKS)}")

    def verify(tag: str, names: tuple[str, ...], batch: int | None = None, seed: int | None = None,
               **kw) -> tuple[dict, pd.DataFrame]:
        cfg = VerifyConfig(batch_size=batch or args.batch_size, seed=args.seed if seed is None else seed,
                           proxies=names, data_root=str(root),
                           out=str(runs / tag), results_csv=str(runs / "all_tests.csv"), **kw)
        summary = run_verify(cfg, resume=True)  # a finished run is reused, an unfinished one resumed
        print(f"--- {tag}: {summary['n_archs']} archs, {summary['wall_seconds']:.0f} s")
        for name, m in summary["proxies"].items():
            print(result_line(name, m))
        return summary, pd.read_csv(runs / tag / "scores.csv")

    @functools.cache
    def nb201_table() -> pd.DataFrame:
        """The NB-201 accuracy table, read once (the subsets and the extra accuracy column use it)."""
        return pd.read_csv(root / "nb201" / "nb201_acc_200ep.csv")

    def nb201_subset(name: str, keep: pd.Series) -> str:
        """The NB-201 table's rows whose index is in ``keep``, as a benchmark file in the runs folder."""
        table = nb201_table()
        runs.mkdir(parents=True, exist_ok=True)
        with atomic_open(runs / name) as f:
            table[table["index"].isin(keep)].to_csv(f, index=False)
        return str(runs / name)

    nb201 = {"nb201-cifar10": dict(dataset="cifar10", n_samples=args.n_archs),
             "nb201-cifar100": dict(dataset="cifar100", n_samples=args.n_archs)}
    results: dict = {"seed": args.seed, "batch_size": args.batch_size, "tasks": {}, "nbsz": {}}
    scored: dict[str, pd.DataFrame] = {}  # per-arch scores of these tasks, for the seed check below
    # DARTS on the standard network (stem, 8 cells, width 16), as this table was measured; SWAP's probe
    # network, the DARTS default since, is bench_probe.py's table
    for tag, kw in {**nb201, "darts-cifar10": dict(search_space="DARTS", dataset="cifar10", probe="none",
                                                   n_samples=args.darts_archs)}.items():
        if tag not in tasks:
            continue
        summary, scores = verify(tag, proxies, **kw)
        scored[tag] = scores
        results["tasks"][tag] = {"n_archs": summary["n_archs"], "wall_seconds": summary["wall_seconds"],
                                 "proxies": summary["proxies"]}
        if tag == "nb201-cifar10":
            nbsz = pd.read_csv(root / "nb201" / "nb201_zc_nbsuitezero_cifar10.csv")
            results["nbsz"]["cifar10"] = nbsz_agreement(scores, nbsz, list(proxies))
            results["tasks"][tag]["against_" + C10_VALID] = against(scores, nb201_table(), C10_VALID, list(proxies))

    # CIFAR-100: NB-Suite-Zero's early file has 725 archs; score exactly those for the per-arch comparison
    with_nbsz = tuple(p for p in proxies if p in NBSZ_NAMES)
    if "nb201-cifar100-nbsz725" in tasks and with_nbsz:
        nbsz100 = pd.read_csv(root / "nb201" / "nb201_zc_nbsuitezero_early_cifar100.csv")
        keep = nbsz100["index"].sort_values()
        subset = nb201_subset("nbsz_cifar100_archs.csv", keep.head(args.nbsz_archs) if args.nbsz_archs > 0 else keep)
        _, scores = verify("nb201-cifar100-nbsz725", with_nbsz, dataset="cifar100", n_samples=-1,
                           benchmark_path=subset)
        results["nbsz"]["cifar100"] = nbsz_agreement(scores, nbsz100, list(with_nbsz))
    # the same archs at each paper's own batch, for the proxies whose paper batch is not ours
    results["paper_batch"] = {}
    groups: dict[int, list[str]] = {}
    for name in proxies:
        if PAPER_BATCH.get(name, args.batch_size) != args.batch_size:
            groups.setdefault(PAPER_BATCH[name], []).append(name)
    for batch, names in sorted(groups.items()) if "nb201-paper-batch" in tasks else ():
        for dataset in ("cifar10", "cifar100"):
            summary, _ = verify(f"nb201-{dataset}-b{batch}", tuple(names), batch, dataset=dataset,
                                n_samples=args.n_archs)
            for name in names:
                results["paper_batch"].setdefault(name, {"batch": batch})[dataset] = summary["proxies"][name]
    # the CIFAR-10 archs again at the next seed (another batch and initialisation): how far each proxy's
    # per-arch scores move from seed to seed, the yardstick for the agreement with NB-Suite-Zero's scores
    if "nb201-cifar10-seed1" in tasks:
        first = scored["nb201-cifar10"] if "nb201-cifar10" in scored else \
            verify("nb201-cifar10", proxies, **nb201["nb201-cifar10"])[1]
        summary, second = verify("nb201-cifar10-seed1", proxies, seed=args.seed + 1, dataset="cifar10",
                                 n_samples=-1, benchmark_path=nb201_subset("cifar10_archs.csv", first.uid.astype(int)))
        both = first.merge(second, on="uid", suffixes=("", "_next"))
        results["next_seed"] = {"seed": args.seed + 1, "n": len(both), "proxies": {
            name: {"spearman_seed_vs_next": float(stats.spearmanr(both[name], both[f"{name}_next"],
                                                                   nan_policy="omit").statistic),
                   "next": summary["proxies"][name]} for name in proxies}}
    # NB-301 and NB-101 on their own training networks: NB-Suite-Zero's scores are in the same tables
    for tag, (space, name, options, _) in EARLY.items():
        if tag not in tasks:
            continue
        n = args.nb301_archs if space == "NASBench301" else args.nb101_archs
        summary, scores = verify(tag, proxies, search_space=space, dataset="cifar10", n_samples=n, **options)
        results["tasks"][tag] = {"n_archs": summary["n_archs"], "wall_seconds": summary["wall_seconds"],
                                 "proxies": summary["proxies"]}
        table = pd.read_csv(root / "nbsuitezero_early" / name)
        results["nbsz"][tag] = nbsz_agreement(scores, table.rename_axis("index").reset_index(), list(proxies))
    results["published"] = PUBLISHED

    print(write_results(out, results, markdown(results, proxies)))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


def markdown(results: dict, proxies: tuple[str, ...]) -> str:
    def cell(m: dict | None) -> str:
        return "—" if not m else f"{m['spearman']:.3f} / {m['kendall']:.3f}"

    def pub(ds: str, name: str) -> str:
        v = PUBLISHED[ds].get(name)
        return "—" if v is None else " / ".join("—" if x is None else f"{x:.3f}" for x in v)

    def agree(ds: str, name: str) -> str:
        a = results["nbsz"].get(ds, {}).get(name)
        return "—" if not a else f"{a['spearman_ours_vs_nbsz']:.3f} (n={a['n']})"

    t = {tag: results["tasks"].get(tag, {"n_archs": 0, "proxies": {}}) for tag in TASKS[:3]}
    n10, n100 = t["nb201-cifar10"]["n_archs"], t["nb201-cifar100"]["n_archs"]
    main = [
        f"| proxy | NB-201 C10 ρ / τ (n={n10}) | NB-201 C100 ρ / τ (n={n100}) | DARTS ρ / τ (n={t['darts-cifar10']['n_archs']}) "
        f"| C10 ρ / τ vs {C10_VALID} | published C10 | published C100 | ours vs NB-Suite-Zero per arch, C10 "
        "| same, C100 | s/arch C10 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in proxies:
        c10 = t["nb201-cifar10"]["proxies"].get(name)
        secs = f"{c10['seconds_per_arch']:.3f}" if c10 else "—"
        main.append(
            f"| {name} | {cell(c10)} | {cell(t['nb201-cifar100']['proxies'].get(name))} "
            f"| {cell(t['darts-cifar10']['proxies'].get(name))} "
            f"| {cell(t['nb201-cifar10'].get('against_' + C10_VALID, {}).get(name))} "
            f"| {pub('cifar10', name)} | {pub('cifar100', name)} "
            f"| {agree('cifar10', name)} | {agree('cifar100', name)} "
            f"| {secs} |"
        )
    lines = main if any(t[tag]["n_archs"] for tag in t) else []
    if results.get("paper_batch"):
        lines += ["", f"At each paper's own batch (same archs; ours above: batch {results['batch_size']}):", "",
                  "| proxy | batch | NB-201 C10 ρ / τ | NB-201 C100 ρ / τ | published C10 | published C100 |",
                  "|---|---|---|---|---|---|"]
        for name, r in results["paper_batch"].items():
            lines.append(f"| {name} | {r['batch']} | {cell(r.get('cifar10'))} | {cell(r.get('cifar100'))} "
                         f"| {pub('cifar10', name)} | {pub('cifar100', name)} |")
    for tag, (space, _, _, network) in EARLY.items():
        if tag not in results["tasks"]:
            continue
        task = results["tasks"][tag]
        lines += ["", f"{space} ({task['n_archs']} archs of NB-Suite-Zero's early table, {network}; "
                  "`val_accuracy`):", "",
                  "| proxy | ours ρ / τ | ours vs NB-Suite-Zero per arch | same archs: our ρ / their ρ | s/arch |",
                  "|---|---|---|---|---|"]
        for name in proxies:
            m, a = task["proxies"].get(name), results["nbsz"].get(tag, {}).get(name)
            same = f"{a['rho_ours']:.3f} / {a['rho_nbsz']:.3f}" if a else "—"
            secs = f"{m['seconds_per_arch']:.3f}" if m else "—"
            lines.append(f"| {name} | {cell(m)} | {agree(tag, name)} | {same} | {secs} |")
    if results.get("next_seed"):
        ns = results["next_seed"]
        lines += ["", f"The same {ns['n']} CIFAR-10 archs at seed {ns['seed']} (another batch and initialisation):", "",
                  "| proxy | ρ / τ at the next seed | per-arch Spearman, seed vs next seed |", "|---|---|---|"]
        lines += [f"| {name} | {cell(r['next'])} | {r['spearman_seed_vs_next']:.3f} |"
                  for name, r in ns["proxies"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
