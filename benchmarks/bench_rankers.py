"""Learned rankers against zero-cost proxies on NB-201: is a predictor trained on k labelled archs better
than any proxy? And what does NAR's sampling search find?

    python benchmarks/bench_rankers.py                                    # NAR at k = 100, 1000; C10, C100
    python benchmarks/bench_rankers.py --proxies meco,az_nas --ridge_inputs params,synflow,naswot,meco

Per dataset one seeded split of the 15,625 cells (seed 0): the test archs are the last ``--n_test`` of a
permutation (the same for every k), the k labelled ones the first k, the validation archs (NAR's model
selection) the next 256. For each k: the NAR-style ranker (eznas.rankers.nar; by default scaled down to
d_model 64, 2 layers, 100 epochs for 2 CPU cores, each row records its size) trained and saved to
results/benchmarks/rankers/<dataset>-k<k>/, Kendall / Spearman on the test archs with 95% bootstrap CIs,
training and scoring seconds; with ``--ridge_inputs``, the proxy-feature ridge on those proxies' scores
of the same k archs. With ``--proxies``, each proxy (and ``--program``) scored on the same test archs
(verify_scores.py runs, resumable). NAR's sampling search: 50 iterations of 128 uniformly drawn cells, each
iteration's pick the cell the ranker scores highest; reported as the mean test accuracy and rank of the 50
picks (no pick by test accuracy), and the cell it scores highest among all unlabelled ones.
With ``--stored nb101,nb301`` (no networks built): NB-101's and NB-301's early NB-Suite-Zero tables
(500 and 725 archs with NASLib's stored proxy scores and ``val_accuracy``), seed-0 permutation, the
test archs all but the first max(k) (the k that leave at least half for testing; NAR's encoding is
NB-201's, so only the ridge): the ridge over every stored proxy against each stored proxy alone.
Writes benchmarks/results/rankers.json and rankers.md: a row measured now replaces the file's row of the
same setting (dataset, ranker, k, test archs and NAR size); the others are kept, so one proxy can be added
to the table alone (``--no-nar --proxies reg_swap``) and another setting of the same ranker is a row of its
own beside it (NAR at its own size, ``--ks 1000 --d_model 128 --layers 6 --epochs 55``; NB-301's first 200
test archs on its own network, ``--stored nb301 --stored_n_test 200 --nb301_probe none``).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from _common import location_args, locations, saved, verified
from eznas.io import write_bytes
from eznas.metrics import bootstrap_ci, correlations
from eznas.rankers import Ranker, check_k, fit_ridge
from eznas.rankers import nar
from eznas.report import merge_rows, write_results

RESULTS = Path(__file__).parent / "results"
ACCURACY = {"cifar10": "cifar10_test", "cifar100": "cifar100_test"}
VAL = 256


def measured(score: np.ndarray, accuracy: np.ndarray) -> dict:
    ok = np.isfinite(score)
    m = correlations(score[ok], accuracy[ok])
    m["ci95"] = bootstrap_ci(score[ok], accuracy[ok], n_boot=1000, seed=0)
    return m


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="cifar10,cifar100")
    p.add_argument("--ks", default="100,1000", help="labelled archs for NAR and the ridge")
    p.add_argument("--nar", action=argparse.BooleanOptionalAction, default=True, help="train NAR (--no-nar: skip)")
    p.add_argument("--n_test", type=int, default=1000)
    p.add_argument("--proxies", default="", help="proxies scored on the test archs (e.g. meco,reg_swap,az_nas)")
    p.add_argument("--program", action="append", default=[], help="an evolved program scored on the test archs")
    p.add_argument("--ridge_inputs", default="", help="proxies the ridge ranker reads (scored on the k archs too)")
    # scaled down for 2 CPU cores (NAR's size: --d_model 128 --layers 6 --epochs 55, eznas.rankers.nar's default)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--d_model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--stored", default="", help="nb101,nb301: the ridge over NB-Suite-Zero's stored scores "
                   "(with --proxies / --program: those scored on the same test archs, networks built)")
    p.add_argument("--stored_n_test", type=int, default=0,
                   help="test archs of a stored table: its permutation's last N (default 0: all but the largest k's)")
    p.add_argument("--nb101_width", type=int, default=32, help="NB-101's stem width for scored proxies (its own: 128)")
    p.add_argument("--nb301_probe", default="none", help="the NB-301 network scored proxies run on (none, the "
                   "space's default: NB-301's training network; swap: SWAP's probe network, DARTS's default)")
    location_args(p, runs="results/benchmarks/rankers", out=str(RESULTS / "rankers.json"))
    return p.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    root, runs, out = locations(args)
    config = nar.NARConfig(epochs=args.epochs, d_model=args.d_model, layers=args.layers)
    datasets = [d for d in args.datasets.split(",") if d]
    if out.is_file() and saved(out).get("n_test") != args.n_test:
        raise SystemExit(f"error: {out} holds rows with another --n_test; give another --out")
    results: dict = {"n_test": args.n_test, "rows": []}
    table = pd.read_csv(root / "nb201" / "nb201_acc_200ep.csv")
    ks = [int(k) for k in args.ks.split(",")]
    for dataset in datasets:
        results["rows"] += dataset_rows(args, dataset, table, ks, config, root, runs)
    for name in filter(None, args.stored.split(",")):
        network = {"width": args.nb101_width} if name == "nb101" else {"probe": args.nb301_probe}
        results["rows"] += stored_rows(name, root, ks, runs, args.stored_n_test,
                                       [n for n in args.proxies.split(",") if n], tuple(args.program), network)
    # re-read now: another run may have written meanwhile
    results["rows"] = merge_rows(saved(out).get("rows", []), results["rows"], key=setting)
    print(write_results(out, results, markdown(results)))


def setting(row: dict) -> tuple:
    """What a row measured: its dataset, ranker, k, test archs and NAR size (a row of the same setting
    measured again replaces it)."""
    return row["dataset"], row["ranker"], row["k"], row.get("n_test"), json.dumps(row.get("nar"), sort_keys=True)


def dataset_rows(args: argparse.Namespace, dataset: str, table: pd.DataFrame, ks: list[int],
                 config: nar.NARConfig, root: Path, runs: Path) -> list[dict]:
    """One NB-201 dataset's rows: NAR at each k (unless --no-nar), each proxy and program on the test archs,
    and the ridge over --ridge_inputs at each k."""
    acc = table[ACCURACY[dataset]].to_numpy(float)
    order = np.random.default_rng(0).permutation(len(table))
    test = order[-args.n_test:]
    for k in ks:
        check_k(k, len(order) - args.n_test - VAL)
    rows = nar_rows(dataset, table, acc, order, ks, config, runs, args.n_test) if args.nar else []
    scored = scored_sets(args, dataset, table, order, test, ks, root, runs)
    if "test" in scored:
        summary, _ = scored["test"]
        for label, m in summary["proxies"].items():
            if label in args.proxies.split(",") or label not in args.ridge_inputs.split(","):
                rows.append({"dataset": dataset, "ranker": label, "k": 0, "n_test": args.n_test, "test": m,
                             "score_seconds_per_arch": m["seconds_per_arch"]})
    if args.ridge_inputs and "test" in scored:
        rows += ridge_rows(dataset, scored, args.ridge_inputs.split(","), ks, runs, args.n_test)
    return rows


def nar_rows(dataset: str, table: pd.DataFrame, acc: np.ndarray, order: np.ndarray, ks: list[int],
             config: nar.NARConfig, runs: Path, n_test: int) -> list[dict]:
    """NAR at each k: trained on the permutation's first k archs (validated on the next VAL) and saved, its
    figures on the test archs and its sampling search."""
    feats = np.stack([nar.encode(s) for s in table.arch_str])
    test = order[-n_test:]
    rows = []
    for k in ks:
        train, val = order[:k], order[k:k + VAL]
        start = time.perf_counter()
        model, record = nar.train(feats[train], acc[train], feats[val], acc[val], config)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        test_score = nar.predict(model, feats[test])
        scoring = (time.perf_counter() - start) / len(test)
        Ranker("nar", "NASBench201", dataset, record={**record, "train_uids": table["index"][train].tolist(),
                                                       "val_uids": table["index"][val].tolist()},
               model=model).save(runs / f"{dataset}-k{k}")
        search = sampling_search(model, feats, acc, table, np.setdiff1d(order, np.concatenate([train, val])))
        row = {"dataset": dataset, "ranker": "nar", "k": k, "n_test": n_test, "nar": asdict(config),
               "test": measured(test_score, acc[test]),
               "train_seconds": seconds, "score_seconds_per_arch": scoring,
               "best_val_kendall": record["best_val_kendall"], "search": search}
        rows.append(row)
        top = search["top_unlabelled"]
        print(f"{dataset} nar k={k}: test tau {row['test']['kendall']:.3f} rho {row['test']['spearman']:.3f} "
              f"(val tau {record['best_val_kendall']:.3f}), {seconds:.0f} s training; search mean acc "
              f"{search['mean_accuracy']:.2f}, top unlabelled {top['accuracy']:.2f} (rank {top['rank']})", flush=True)
    return rows


def sampling_search(model, feats: np.ndarray, acc: np.ndarray, table: pd.DataFrame, unlabelled: np.ndarray) -> dict:
    """NAR's sampling search, no oracle: 50 iterations of 128 uniformly drawn cells, each iteration's pick the
    cell the ranker scores highest (their mean accuracy and rank), and the cell it scores highest among all
    ``unlabelled`` ones."""
    every = nar.predict(model, feats[unlabelled])
    rng = np.random.default_rng(1)
    picks = []
    for _ in range(50):
        draw = rng.choice(len(table), 128, replace=False)
        picks.append(draw[np.argmax(nar.predict(model, feats[draw]))])
    rank = lambda i: 1 + int((acc > acc[i]).sum())  # noqa: E731
    top = unlabelled[np.argmax(every)]
    return {"mean_accuracy": float(np.mean(acc[picks])), "mean_rank": float(np.mean([rank(i) for i in picks])),
            "top_unlabelled": {"arch": table.arch_str[top], "accuracy": float(acc[top]), "rank": rank(top)},
            "optimum": float(acc.max())}


def scored_sets(args: argparse.Namespace, dataset: str, table: pd.DataFrame, order: np.ndarray, test: np.ndarray,
                ks: list[int], root: Path, runs: Path) -> dict[str, tuple[dict, pd.DataFrame]]:
    """The verify runs of the test archs (--proxies, --program and --ridge_inputs) and, with --ridge_inputs,
    of each k's labelled archs (those proxies): summary and per-arch scores per set ("test", "k<k>")."""
    scored = {}
    for name, uids in (("test", test), *((f"k{k}", order[:k]) for k in ks if args.ridge_inputs)):
        names = [n for n in (args.proxies.split(",") if name == "test" and args.proxies else [])]
        names += [n for n in args.ridge_inputs.split(",") if n and n not in names]
        progs = tuple(args.program) if name == "test" else ()
        if not names and not progs:
            continue
        subset = runs / f"{dataset}-{name}.csv"
        subset.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(subset, table.iloc[np.sort(uids)].to_csv(index=False).encode())
        # one folder per set scored: adding a proxy later scores it alone, resumable
        folder = runs / "verify" / f"{dataset}-{name}-{'+'.join(names)}{'+programs' * bool(progs)}"
        scored[name] = verified(runs, folder, dataset=dataset, proxies=tuple(names), programs=progs,
                                benchmark_path=str(subset), data_root=str(root), bootstrap=1000)
    return scored


def ridge_rows(dataset: str, scored: dict[str, tuple[dict, pd.DataFrame]], inputs: list[str], ks: list[int],
               runs: Path, n_test: int) -> list[dict]:
    """The proxy-feature ridge at each k, fitted on the k labelled archs' scores of ``inputs`` and saved: its
    figures on the test archs."""
    rows = []
    test_scores = scored["test"][1]
    for k in ks:
        train_scores = scored[f"k{k}"][1]
        mean, std, w = fit_ridge(train_scores[inputs], train_scores["accuracy"].to_numpy(float))
        ranker = Ranker("proxy_ridge", "NASBench201", dataset, tuple(inputs), mean, std, w,
                        record={"k": k, "train_uids": train_scores.uid.tolist()})
        ranker.save(runs / f"{dataset}-ridge-k{k}")
        s = ranker.score_values(test_scores[inputs].to_numpy(float))
        rows.append({"dataset": dataset, "ranker": f"proxy_ridge({','.join(inputs)})", "k": k, "n_test": n_test,
                     "test": measured(s, test_scores["accuracy"].to_numpy(float))})
    return rows


STORED = {"nb101": ("NASBench101", "nb101_zc_early_cifar10.csv", "naslib_encoding"),
          "nb301": ("NASBench301", "nb301_zc_early_cifar10.csv", "naslib_compact")}


def stored_rows(name: str, root: Path, ks: list[int], runs: Path, n_test: int = 0, proxies: list[str] = (),
                programs: tuple[str, ...] = (), network: dict | None = None) -> list[dict]:
    """The ridge over every stored NB-Suite-Zero proxy of an NB-101/NB-301 table at each k that leaves at
    least half of it for testing, each stored proxy alone and each of ``proxies`` / ``programs`` (scored on
    networks built with ``network``: VerifyConfig's width or probe) on the same test archs: the
    permutation's last ``n_test`` (0: all but the largest k's)."""
    if name not in STORED:
        raise SystemExit(f"error: --stored {name}: valid: {', '.join(STORED)}")
    space, file, encoding = STORED[name]
    table = pd.read_csv(root / "nbsuitezero_early" / file)
    inputs = [c for c in table.columns if c not in (encoding, "val_accuracy")]
    acc = table["val_accuracy"].to_numpy(float)
    usable = [k for k in ks if 2 <= k <= len(table) // 2]
    if not usable:
        raise SystemExit(f"error: --stored {name}: no k in --ks leaves half of its {len(table)} archs for testing")
    order = np.random.default_rng(0).permutation(len(table))
    if not 0 <= n_test <= len(table) - max(usable):
        raise SystemExit(f"error: --stored_n_test {n_test}: {name} has {len(table) - max(usable)} archs outside k = "
                         f"{max(usable)}")
    test = order[-n_test:] if n_test else order[max(usable):]
    dataset = f"{space}:cifar10"
    rows = [{"dataset": dataset, "ranker": f"{c} (stored)", "k": 0, "n_test": len(test),
             "test": measured(table[c].to_numpy(float)[test], acc[test])} for c in inputs]
    for k in usable:
        train = order[:k]
        mean, std, w = fit_ridge(table[inputs].iloc[train], acc[train])
        ranker = Ranker("proxy_ridge", space, "cifar10", tuple(inputs), mean, std, w,
                        record={"k": k, "train_rows": train.tolist(), "scores": f"NB-Suite-Zero stored, {file}"})
        ranker.save(runs / f"{name}-ridge-k{k}")
        score = ranker.score_values(table[inputs].iloc[test].to_numpy(float))
        rows.append({"dataset": dataset, "ranker": f"proxy_ridge({len(inputs)} stored proxies)", "k": k,
                     "n_test": len(test), "test": measured(score, acc[test])})
    best = max(rows[:len(inputs)], key=lambda r: r["test"]["kendall"])
    print(f"{dataset}: ridge k={usable} tau {[round(r['test']['kendall'], 3) for r in rows[len(inputs):]]}, "
          f"best stored proxy {best['ranker']} {best['test']['kendall']:.3f} on {len(test)} test archs", flush=True)
    if proxies or programs:  # built networks: the test rows (uid = the table's row, so each network's seed)
        subset = runs / f"{name}-test{len(test)}.csv"
        subset.parent.mkdir(parents=True, exist_ok=True)
        rows_kept = np.sort(test)
        write_bytes(subset, table.iloc[rows_kept][[encoding, "val_accuracy"]].assign(uid=rows_kept)
                    .to_csv(index=False).encode())
        network = network or {}
        where = ", ".join(f"{k} {v}" for k, v in network.items())
        folder = runs / "verify" / f"{name}-test{len(test)}-{'+'.join(proxies)}{'+programs' * bool(programs)}-" \
                                   f"{'-'.join(f'{k}{v}' for k, v in network.items())}"
        summary, _ = verified(runs, folder, search_space=space, dataset="cifar10", proxies=tuple(proxies),
                              programs=programs, benchmark_path=str(subset), data_root=str(root), bootstrap=1000,
                              **network)
        for label, m in summary["proxies"].items():
            rows.append({"dataset": dataset, "ranker": f"{label} ({where})" if where else label, "k": 0,
                         "n_test": len(test), "test": m, "score_seconds_per_arch": m["seconds_per_arch"]})
            print(f"{dataset} {label}: tau {m['kendall']:.3f} rho {m['spearman']:.3f} (n={m['n']}), "
                  f"{m['seconds_per_arch']:.2f} s/arch", flush=True)
    return rows


def markdown(results: dict) -> str:
    lines = [f"Test archs per NB-201 dataset: {results['n_test']} (the same for every row of a dataset; NB-101/NB-301: "
             "all but the largest k's labelled archs).", "",
             "| dataset | ranker or proxy | k labelled | test archs | Kendall τ | Spearman ρ [95% CI] | train s | score s/arch | NAR search: mean acc of 50 picks (mean rank) | top-scored unlabelled cell: acc (rank) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        t = r["test"]
        lo, hi = (t.get("ci95") or {}).get("spearman", (float("nan"), float("nan")))
        ci_text = f" [{lo:.3f}, {hi:.3f}]"
        s = r.get("search")
        search = f"{s['mean_accuracy']:.2f} ({s['mean_rank']:.0f})" if s else "—"
        top = f"{s['top_unlabelled']['accuracy']:.2f} ({s['top_unlabelled']['rank']})" if s else "—"
        train = f"{r['train_seconds']:.0f}" if "train_seconds" in r else "—"
        per = f"{r['score_seconds_per_arch']:.4f}" if r.get("score_seconds_per_arch") is not None else "—"
        name = r["ranker"]
        if "nar" in r:
            name += f" (d_model {r['nar']['d_model']}, {r['nar']['layers']} layers, {r['nar']['epochs']} epochs)"
        lines.append(f"| {r['dataset']} | {name} | {r['k'] or '—'} | {r.get('n_test', results['n_test'])} | {t['kendall']:.3f} | {t['spearman']:.3f}{ci_text} "
                     f"| {train} | {per} | {search} | {top} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
