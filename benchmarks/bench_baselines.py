"""The README's baseline table: every registered proxy on 1000 NB-201 archs (CIFAR-10, CIFAR-100) and on
the DARTS CSV, next to published figures, plus per-arch agreement with NAS-Bench-Suite-Zero's scores.

    python benchmarks/bench_baselines.py                 # seed 0, batch 16, 1000 archs, every proxy: part "all"
    python benchmarks/bench_baselines.py --n_archs 200   # quicker
    python benchmarks/bench_baselines.py --proxies swap,reg_swap,eznas --part seeds
    python benchmarks/bench_baselines.py --proxies grasp --n_archs 300 --tasks nb201-cifar10,nb201-cifar10-seed1 \
        --part grasp_seeds   # how far one proxy moves between two seeds, per arch

Each run's figures are one named part (``--part``) of <out>.json: a run replaces only its own part and keeps
the others, and <out>.md is written again from the whole file, each part's tables under its name. The
committed benchmarks/results/baselines.json holds the parts classic (the eight classic proxies), seeds (the
seed and peer proxies), fisher and eznas (those two re-measured: their rows supersede the same proxy's rows in
classic and seeds), grasp_seeds, nb101 and nb301. Run folders go to results/benchmarks/baselines/<out name>_<part>/<task>/.
A task whose run folder holds a finished run with the same settings is reused, and an unfinished one is resumed
(verify_scores checkpoints about every minute), so a long benchmark can be stopped and run again.
"""
from __future__ import annotations

import argparse
import functools
import logging
from pathlib import Path

import pandas as pd
from scipy import stats

from _common import figures, location_args, locations, print_summary, record_part, verified
from eznas.io import atomic_open
from eznas.metrics import correlations
from eznas.proxies import list_proxies

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


class Baselines:
    """What this benchmark's verify runs share: its settings (``args``), the data root, the runs folder, and the
    NB-201 table the subsets and the extra accuracy column use."""

    def __init__(self, args: argparse.Namespace, root: Path, runs: Path) -> None:
        self.args, self.root, self.runs = args, root, runs

    def verify(self, tag: str, names: tuple[str, ...], batch: int | None = None, seed: int | None = None,
               **kw) -> tuple[dict, pd.DataFrame]:
        """The verify run ``tag`` of these proxies (a finished run is reused, an unfinished one resumed), its
        figures printed: its summary and per-arch scores."""
        summary, scores = verified(self.runs, self.runs / tag, batch_size=batch or self.args.batch_size,
                                   seed=self.args.seed if seed is None else seed, proxies=names,
                                   data_root=str(self.root), **kw)
        print_summary(tag, summary)
        return summary, scores

    def nb201(self, dataset: str) -> dict:
        """The settings of the NB-201 task on ``dataset``: --n_archs of its archs."""
        return dict(dataset=dataset, n_samples=self.args.n_archs)

    @functools.cached_property
    def nb201_table(self) -> pd.DataFrame:
        """The NB-201 accuracy table, read once."""
        return pd.read_csv(self.root / "nb201" / "nb201_acc_200ep.csv")

    def nb201_subset(self, name: str, keep: pd.Series) -> str:
        """The NB-201 table's rows whose index is in ``keep``, as a benchmark file in the runs folder."""
        table = self.nb201_table
        self.runs.mkdir(parents=True, exist_ok=True)
        with atomic_open(self.runs / name) as f:
            table[table["index"].isin(keep)].to_csv(f, index=False)
        return str(self.runs / name)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n_archs", type=int, default=1000, help="NB-201 archs per dataset (default 1000)")
    p.add_argument("--darts_archs", type=int, default=-1, help="DARTS CSV rows (default -1: all)")
    p.add_argument("--nbsz_archs", type=int, default=-1,
                   help="of NB-Suite-Zero's 725 CIFAR-100 archs, how many to score for the per-arch check (default all)")
    p.add_argument("--nb301_archs", type=int, default=-1, help="NB-301 table rows (default -1: all 725)")
    p.add_argument("--nb101_archs", type=int, default=-1, help="NB-101 table rows (default -1: all 500)")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--proxies", default=",".join(list_proxies()), help="default: every registered proxy")
    p.add_argument("--tasks", default=",".join(TASKS), help=f"default: {','.join(TASKS)}")
    p.add_argument("--part", default="all", help="the named part of --out these figures are (e.g. classic, seeds, "
                   "nb101; default all): it replaces that part only, the others are kept")
    location_args(p, runs="results/benchmarks/baselines", out=str(Path(__file__).parent / "results" / "baselines"))
    return p.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    root, runs, out = locations(args)
    proxies, tasks = tuple(args.proxies.split(",")), args.tasks.split(",")
    if unknown := [t for t in tasks if t not in TASKS]:
        raise SystemExit(f"error: unknown task {unknown[0]!r}; valid: {', '.join(TASKS)}")
    bench = Baselines(args, root, runs / f"{out.name}_{args.part}")
    results: dict = {"seed": args.seed, "batch_size": args.batch_size, "tasks": {}, "nbsz": {}}
    scored = standard_tasks(bench, tasks, proxies, results)
    with_nbsz = tuple(p for p in proxies if p in NBSZ_NAMES)
    if "nb201-cifar100-nbsz725" in tasks and with_nbsz:
        results["nbsz"]["cifar100"] = nbsz_cifar100(bench, with_nbsz)
    results["paper_batch"] = paper_batches(bench, proxies) if "nb201-paper-batch" in tasks else {}
    if "nb201-cifar10-seed1" in tasks:
        results["next_seed"] = next_seed(bench, proxies, scored.get("nb201-cifar10"))
    early_tasks(bench, tasks, proxies, results)
    results["published"] = PUBLISHED
    record_part(out, args.part, results, markdown)


def standard_tasks(bench: Baselines, tasks: list[str], proxies: tuple[str, ...],
                   results: dict) -> dict[str, pd.DataFrame]:
    """NB-201 CIFAR-10 and CIFAR-100 and DARTS, those of ``tasks``, into ``results`` (CIFAR-10 also against
    NB-Suite-Zero's scores and the x-valid accuracy): the per-arch scores of each task run."""
    scored = {}
    # DARTS on the standard network (stem, 8 cells, width 16), as this table was measured; SWAP's probe
    # network, the DARTS default since, is bench_probe.py's table
    darts = dict(search_space="DARTS", dataset="cifar10", probe="none", n_samples=bench.args.darts_archs)
    for tag, kw in {"nb201-cifar10": bench.nb201("cifar10"), "nb201-cifar100": bench.nb201("cifar100"),
                    "darts-cifar10": darts}.items():
        if tag not in tasks:
            continue
        summary, scores = bench.verify(tag, proxies, **kw)
        scored[tag] = scores
        results["tasks"][tag] = figures(summary)
        if tag == "nb201-cifar10":
            nbsz = pd.read_csv(bench.root / "nb201" / "nb201_zc_nbsuitezero_cifar10.csv")
            results["nbsz"]["cifar10"] = nbsz_agreement(scores, nbsz, list(proxies))
            results["tasks"][tag]["against_" + C10_VALID] = against(scores, bench.nb201_table, C10_VALID,
                                                                    list(proxies))
    return scored


def nbsz_cifar100(bench: Baselines, proxies: tuple[str, ...]) -> dict[str, dict]:
    """CIFAR-100: NB-Suite-Zero's early file has 725 archs; exactly those scored, for the per-arch comparison."""
    nbsz100 = pd.read_csv(bench.root / "nb201" / "nb201_zc_nbsuitezero_early_cifar100.csv")
    keep = nbsz100["index"].sort_values()
    n = bench.args.nbsz_archs
    subset = bench.nb201_subset("nbsz_cifar100_archs.csv", keep.head(n) if n > 0 else keep)
    _, scores = bench.verify("nb201-cifar100-nbsz725", proxies, dataset="cifar100", n_samples=-1,
                             benchmark_path=subset)
    return nbsz_agreement(scores, nbsz100, list(proxies))


def paper_batches(bench: Baselines, proxies: tuple[str, ...]) -> dict[str, dict]:
    """The same archs at each paper's own batch, for the proxies whose paper batch is not ours."""
    found: dict[str, dict] = {}
    groups: dict[int, list[str]] = {}
    for name in proxies:
        if PAPER_BATCH.get(name, bench.args.batch_size) != bench.args.batch_size:
            groups.setdefault(PAPER_BATCH[name], []).append(name)
    for batch, names in sorted(groups.items()):
        for dataset in ("cifar10", "cifar100"):
            summary, _ = bench.verify(f"nb201-{dataset}-b{batch}", tuple(names), batch, **bench.nb201(dataset))
            for name in names:
                found.setdefault(name, {"batch": batch})[dataset] = summary["proxies"][name]
    return found


def next_seed(bench: Baselines, proxies: tuple[str, ...], first: pd.DataFrame | None) -> dict:
    """The CIFAR-10 archs again at the next seed (another batch and initialisation): how far each proxy's
    per-arch scores move from seed to seed, the yardstick for the agreement with NB-Suite-Zero's scores.
    ``first``: this seed's scores (None: run, or reused, here)."""
    if first is None:
        first = bench.verify("nb201-cifar10", proxies, **bench.nb201("cifar10"))[1]
    seed = bench.args.seed + 1
    summary, second = bench.verify("nb201-cifar10-seed1", proxies, seed=seed, dataset="cifar10", n_samples=-1,
                                   benchmark_path=bench.nb201_subset("cifar10_archs.csv", first.uid.astype(int)))
    both = first.merge(second, on="uid", suffixes=("", "_next"))
    return {"seed": seed, "n": len(both), "proxies": {
        name: {"spearman_seed_vs_next": float(stats.spearmanr(both[name], both[f"{name}_next"],
                                                               nan_policy="omit").statistic),
               "next": summary["proxies"][name]} for name in proxies}}


def early_tasks(bench: Baselines, tasks: list[str], proxies: tuple[str, ...], results: dict) -> None:
    """NB-301 and NB-101 on their own training networks, those of ``tasks``, into ``results``: NB-Suite-Zero's
    scores are in the same tables."""
    for tag, (space, name, options, _) in EARLY.items():
        if tag not in tasks:
            continue
        n = bench.args.nb301_archs if space == "NASBench301" else bench.args.nb101_archs
        summary, scores = bench.verify(tag, proxies, search_space=space, dataset="cifar10", n_samples=n, **options)
        results["tasks"][tag] = figures(summary)
        table = pd.read_csv(bench.root / "nbsuitezero_early" / name)
        results["nbsz"][tag] = nbsz_agreement(scores, table.rename_axis("index").reset_index(), list(proxies))


def measured_proxies(results: dict) -> tuple[str, ...]:
    """The proxies a part's figures hold, in the order they were measured."""
    names = [n for task in results["tasks"].values() for n in task["proxies"]]
    names += list(results.get("paper_batch", {})) + list(results.get("next_seed", {}).get("proxies", {}))
    return tuple(dict.fromkeys(names))


def markdown(results: dict) -> str:
    """One part's tables."""
    proxies = measured_proxies(results)

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
