"""Leave-one-space-out: does a proxy hold on a space that no fitness read? This part: the baselines.

For each space S of {NB-201, DARTS, NB-101, NB-301, NAS-Bench-Macro}, its *held-out archs* are the test split
of S's task in the default pool (pool seed 0: the archs outside the 200 selection and 100 validation
networks that a run with S among its tasks would read), scored on the network S's task scores (DARTS: SWAP's
probe network; NB-301: its training network; NB-101: stem 32). On them:

* every registered proxy (AZ-NAS's components and its pool score among them) and every seed program, with
  Spearman / Kendall and 95% bootstrap CIs and seconds per arch;
* the untuned rank ensembles rank(meco) + rank(synflow), and the same plus AZ-NAS's expressivity and
  progressivity;
* the best equal-weight rank ensemble of 2-4 registered per-network proxies **chosen on the other spaces**
  (the highest mean Spearman over the other spaces' held-out archs; never on S's own): the null hypothesis
  that a discovered proxy must beat.

NAS-Bench-Macro is scored on all 600 rows of the mirror (the README's table of every proxy on it); its held-out
archs are the 300 of them outside its selection and validation splits.

    python benchmarks/bench_transfer.py                             # every space (resumes; finished ones kept)
    python benchmarks/bench_transfer.py --spaces NASBenchMacro      # one space

Each space's per-arch scores are written into benchmarks/results/transfer.json as soon as it is scored, so an
interrupted benchmark resumes from the committed file (run folders under --runs are not kept in git; an
unfinished verify run there resumes too).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from eznas.data import resolve_data_root
from eznas.gp.fitness import FitnessConfig, FitnessData, Task
from eznas.gp.seeds import SEEDS
from eznas.io import atomic_open, write_bytes, write_json
from eznas.metrics import bootstrap_ci, correlations, paired_difference_ci
from eznas.proxies import get_proxy, list_proxies
from eznas.spaces.darts import has_probes
from eznas.spaces.nb201 import UID_COLUMN
from eznas.verify import VerifyConfig, run_verify

REPO = Path(__file__).resolve().parents[1]
# held-out space -> (the task whose archs and network it is scored on, held-out archs scored: None = all)
SPACES = {"NASBench201": ("NASBench201:cifar10", 300), "DARTS": ("DARTS:cifar10", None),
          "NASBench101": ("NASBench101:cifar10@width=32", None), "NASBench301": ("NASBench301:cifar10", 200),
          "NASBenchMacro": ("NASBenchMacro:cifar10", None)}
EVERY_ROW = {"NASBenchMacro"}  # scored on its whole table (the held-out archs are a subset)
UNTUNED = {"rank(meco)+rank(synflow)": ("meco", "synflow"),
           "rank(meco)+rank(synflow)+rank(az_expressivity)+rank(az_progressivity)":
               ("meco", "synflow", "az_expressivity", "az_progressivity")}
BATCH = 16


def held_out(root: Path, space: str) -> tuple[Task, list, list]:
    """S's task, the archs to score (the held-out ones, or every row) and the held-out uids."""
    task_text, n = SPACES[space]
    data = FitnessData(FitnessConfig(tasks=(task_text,)), None, root)
    task = data.tasks[0]
    test = data.networks(str(task), "test", n)
    archs = test
    if space in EVERY_ROW:
        archs = data._space(task).load(data._space(task).default_benchmark(root, task.dataset), task.dataset)
    return task, archs, [a.uid for a in test]


def subset_file(root: Path, task: Task, data_space, archs: list, path: Path) -> None:
    """A benchmark file of ``archs`` in the space's own layout, each row keeping its uid (so its seed)."""
    bench = data_space.default_benchmark(root, task.dataset)
    if task.space == "NASBench201":
        table = pd.read_csv(bench)
        subset = table[table["index"].isin({int(a.uid) for a in archs})]
    else:
        table = pd.read_csv(bench, dtype=str)
        rows = sorted(int(a.uid) for a in archs)
        subset = table.iloc[rows].assign(**{UID_COLUMN: rows})
    with atomic_open(path) as f:
        subset.to_csv(f, index=False)


def score_space(root: Path, runs: Path, space: str) -> dict:
    """Every registered proxy and seed program on the space's archs (a verify run, resumed if unfinished)."""
    task, archs, test_uids = held_out(root, space)
    data = FitnessData(FitnessConfig(tasks=(str(task),)), None, root)
    folder = runs / "proxies" / space
    folder.mkdir(parents=True, exist_ok=True)
    bench = folder / "archs.csv"
    subset_file(root, task, data._space(task), archs, bench)
    width, cells = data.size(task)
    cfg = VerifyConfig(search_space=task.space, dataset=task.dataset, batch_size=BATCH, n_samples=-1, seed=0,
                       proxies=tuple(list_proxies()), programs=tuple(SEEDS.values()), benchmark_path=str(bench),
                       data_root=str(root), device="cpu", out=str(folder / "verify"),
                       results_csv=str(folder / "all_tests.csv"), width=width, cells=cells,
                       probe=FitnessConfig().probe if has_probes(task.space) else None)
    summary = run_verify(cfg, resume=True)
    scores = pd.read_csv(folder / "verify" / "scores.csv", dtype={"uid": str})
    names = [*cfg.proxies, *cfg.programs]
    return {"task": str(task), "network": {"width": width, "cells": cells, "probe": cfg.probe},
            "n_archs": len(scores), "held_out": test_uids, "uid": scores["uid"].tolist(),
            "accuracy": scores["accuracy"].tolist(),
            "scores": {n: [None if not math.isfinite(v) else v for v in scores[n].astype(float)] for n in names},
            "seconds_per_arch": {n: summary["proxies"][n]["seconds_per_arch"] for n in names
                                 if n in summary["proxies"]}}


def frame(entry: dict, held_out_only: bool = True) -> pd.DataFrame:
    """One space's per-arch table (accuracy and every score), its held-out archs only by default."""
    table = pd.DataFrame({"uid": entry["uid"], "accuracy": entry["accuracy"],
                          **{n: pd.Series(v, dtype=float) for n, v in entry["scores"].items()}})
    return table[table["uid"].isin(set(entry["held_out"]))] if held_out_only else table


def rank_sum(table: pd.DataFrame, members: tuple[str, ...]) -> pd.Series:
    """An equal-weight rank ensemble: the sum of the members' ranks (an arch a member has no score for gets
    none)."""
    return sum(table[m].rank() for m in members)


def measure(scores: pd.Series, accuracy: pd.Series) -> dict:
    ok = np.isfinite(scores.to_numpy(float)) & np.isfinite(accuracy.to_numpy(float))
    s, a = scores.to_numpy(float)[ok], accuracy.to_numpy(float)[ok]
    return {**correlations(s, a), "ci95": bootstrap_ci(s, a)}


def ensembles(candidates: list[str]) -> list[tuple[str, ...]]:
    return [c for k in (2, 3, 4) for c in itertools.combinations(candidates, k)]


def chosen_elsewhere(results: dict, space: str, candidates: list[str]) -> tuple[tuple[str, ...], float] | None:
    """The equal-weight rank ensemble of 2-4 ``candidates`` with the best mean Spearman over the *other*
    scored spaces' held-out archs (None until at least one other space is scored)."""
    others = [frame(e) for s, e in results["proxies"].items() if s != space]
    if not others:
        return None
    best, best_rho = None, -math.inf
    for members in ensembles(candidates):
        rhos = [stats.spearmanr(rank_sum(t, members), t["accuracy"], nan_policy="omit").statistic for t in others]
        if all(math.isfinite(r) for r in rhos) and float(np.mean(rhos)) > best_rho:
            best, best_rho = members, float(np.mean(rhos))
    return (best, best_rho) if best else None


def report(results: dict) -> dict:
    """Per scored space: every proxy, seed program and baseline ensemble on the held-out archs."""
    per_network = [n for n in list_proxies() if get_proxy(n).pool is None and not get_proxy(n).arch_only]
    out = {}
    for space, entry in results["proxies"].items():
        table = frame(entry)
        rows = {n: measure(table[n], table["accuracy"]) for n in entry["scores"]}
        for name, members in UNTUNED.items():
            rows[name] = measure(rank_sum(table, members), table["accuracy"])
        chosen = chosen_elsewhere(results, space, per_network)
        if chosen:
            members, rho = chosen
            rows["best ensemble chosen on the other spaces"] = {
                **measure(rank_sum(table, members), table["accuracy"]), "members": list(members),
                "mean_rho_elsewhere": rho, "chosen_on": sorted(s for s in results["proxies"] if s != space)}
        best_single = max((n for n in per_network if math.isfinite(rows[n]["spearman"])),
                          key=lambda n: rows[n]["spearman"])
        out[space] = {"task": entry["task"], "n_held_out": len(table), "rows": rows, "best_single": best_single,
                      "seconds_per_arch": entry["seconds_per_arch"]}
        if space in EVERY_ROW:
            whole = frame(entry, held_out_only=False)
            out[space]["every_row"] = {"n": len(whole), "rows": {n: measure(whole[n], whole["accuracy"])
                                                                  for n in entry["scores"]}}
        if "best ensemble chosen on the other spaces" in rows:
            members = tuple(rows["best ensemble chosen on the other spaces"]["members"])
            out[space]["ensemble_vs_best_single"] = paired_difference_ci(
                rank_sum(table, members), table[best_single], table["accuracy"])
    return out


def markdown(results: dict, figures: dict) -> str:
    names = {v: f"seed program {k}" for k, v in SEEDS.items()}

    def cell(m: dict | None) -> str:
        if not m or not math.isfinite(m["spearman"]):
            return "—"
        lo, hi = m["ci95"]["spearman"]
        return f"{m['spearman']:.3f} [{lo:.3f}, {hi:.3f}] / {m['kendall']:.3f}"

    spaces = list(figures)
    lines = ["Spearman [95% bootstrap CI] / Kendall on each space's held-out archs (outside the default pool's "
             "selection and validation splits), batch 16, seed 0.", "",
             "| proxy | " + " | ".join(f"{s} ({figures[s]['task']}, n={figures[s]['n_held_out']})" for s in spaces)
             + " |", "|---|" + "---|" * len(spaces)]
    rows = list(dict.fromkeys(r for s in spaces for r in figures[s]["rows"]))
    for row in rows:
        lines.append(f"| {names.get(row, row)} | " + " | ".join(cell(figures[s]["rows"].get(row)) for s in spaces) + " |")
    lines += ["", "| held-out space | best single proxy | ensemble chosen on the other spaces (mean ρ there) | "
              "ensemble minus best single [paired 95% CI] |", "|---|---|---|---|"]
    for s in spaces:
        f = figures[s]
        chosen = f["rows"].get("best ensemble chosen on the other spaces")
        d = f.get("ensemble_vs_best_single")
        lines.append(f"| {s} | {f['best_single']} {f['rows'][f['best_single']]['spearman']:.3f} | "
                     + (f"{' + '.join(chosen['members'])} ({chosen['mean_rho_elsewhere']:.3f})" if chosen else "—")
                     + " | " + (f"{d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" if d else "—") + " |")
    for s in spaces:
        if "every_row" in figures[s]:
            every = figures[s]["every_row"]
            lines += ["", f"{s}: every registered proxy and seed program on all {every['n']} rows of the table "
                      "(Spearman [95% CI] / Kendall; seconds per arch)", "", "| proxy | ρ / τ | s/arch |", "|---|---|---|"]
            order = sorted(every["rows"], key=lambda n: -np.nan_to_num(every["rows"][n]["spearman"], nan=-9))
            for n in order:
                sec = figures[s]["seconds_per_arch"].get(n)
                lines.append(f"| {names.get(n, n)} | {cell(every['rows'][n])} | "
                             f"{'—' if sec is None else f'{sec:.3f}'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spaces", default=",".join(SPACES), help=f"held-out spaces to score (default: {', '.join(SPACES)})")
    p.add_argument("--data-root", default=None)
    p.add_argument("--runs", default="results/benchmarks/transfer")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "transfer.json"))
    args = p.parse_args()
    root, runs, out = resolve_data_root(args.data_root), Path(args.runs), Path(args.out)
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    if unknown := [s for s in spaces if s not in SPACES]:
        raise SystemExit(f"error: --spaces: unknown space {unknown[0]!r}; valid: {', '.join(SPACES)}")
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.setdefault("proxies", {})
    for space in spaces:
        if space in results["proxies"]:
            print(f"{space}: scored (from {out})", flush=True)
            continue
        results["proxies"][space] = score_space(root, runs, space)
        write_json(out, results)  # each finished space at once: a later interruption keeps it
        print(f"{space}: {results['proxies'][space]['n_archs']} archs scored", flush=True)
    figures = report(results)
    results["figures"] = figures
    write_json(out, results)
    md = markdown(results, figures)
    write_bytes(out.with_suffix(".md"), md.encode())
    print(md)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
