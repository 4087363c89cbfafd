"""Leave-one-space-out: does a proxy discovered without a space rank that space's networks?

For each space S of {NB-201, DARTS, NB-101, NB-301, NAS-Bench-Macro}, its *held-out archs* are the test split
of S's task in the default pool (pool seed 0: the archs outside the 200 selection and 100 validation
networks that a run with S among its tasks would read), scored on the network S's task scores (DARTS: SWAP's
probe network; NB-301: its training network; NB-101: stem 32). Three parts, each resumable:

* ``--part proxies``: on each space's held-out archs every registered proxy (AZ-NAS's pool score among them)
  and every seed program, with Spearman / Kendall, 95% bootstrap CIs and seconds per arch; the untuned rank
  ensembles rank(meco) + rank(synflow) and the same plus AZ-NAS's expressivity and progressivity; and the
  best equal-weight rank ensemble of 2-4 registered per-network proxies **chosen on the other spaces** (the
  highest mean Spearman over the other spaces' held-out archs, never S's own): the null hypothesis a
  discovered proxy must beat. NAS-Bench-Macro is scored on all 600 rows of the mirror (the README's table
  of every proxy on it); its held-out archs are the 300 outside its selection and validation splits.
* ``--part evolve``: the default run with every task but S's (``ALL_TASKS`` minus S's), per GP seed.
* ``--part test``: each such run's winner on S's held-out archs, beside every baseline: its Spearman minus
  the best baseline's with a paired bootstrap CI, and the issue's targets. The run's whole hall of fame is
  scored too (the programs share one collection of statistics per network), so that the ways a run may
  choose its winner (``RULES``: the default novel program, the best by validation, the smallest near it, an
  ensemble of the best five...) are compared over every held-out space: a default is chosen by that table.
  ``--variant`` runs the evolve and test parts for a factor of what makes a winner transfer (``VARIANTS``:
  tasks combined by mean or by the margin over each task's best reference, MeCo among the proxy terminals, raw
  statistics only, no blends, equal-weight blends, the winner chosen on a space selection never read), each its
  own set of runs, compared over the held-out spaces in the variants table.
* ``--part nar``: labels-equivalent against NAR (NB-201 only: its encoding is an NB-201 cell), beside the ridge
  ranker over proxies that every space gets.

    python benchmarks/bench_transfer.py --part proxies                     # every space's baselines
    python benchmarks/bench_transfer.py --part evolve --spaces NASBenchMacro --seeds 0
    python benchmarks/bench_transfer.py --part test                        # every finished run's winner
    python benchmarks/bench_transfer.py --part evolve --variant mean --spaces NASBench101
    python benchmarks/bench_transfer.py --part save --spaces NASBench301   # before a session ends: commit the
                                                                           # archs scored so far; --part proxies
                                                                           # later scores only the rest

Each finished piece (a space's per-arch scores, a run's winner and cost, a winner's per-arch scores) is written
into benchmarks/results/transfer.json at once, so an interrupted benchmark resumes from the committed file
(run folders under --runs are not kept in git; an unfinished verify or evolve run there resumes too).
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from eznas.data import resolve_data_root
from eznas.gp.discovered import hand_made
from eznas.features import FEATURES
from eznas.gp.config import DEFAULT_TASKS, PROXY_TERMINALS, FitnessConfig, Task
from eznas.gp.values import FitnessData
from eznas.gp.seeds import SEEDS
from eznas.io import atomic_open, write_bytes, write_json
from eznas.metrics import bootstrap_ci, correlations, paired_difference_ci
from eznas.proxies import get_proxy, list_proxies
from eznas.rankers import fit_ridge, nar, signed_log
from eznas.spaces import space_class
from eznas.spaces.nb201 import UID_COLUMN
from _common import folder_bytes, record, run_evolve
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
ALL_TASKS = DEFAULT_TASKS  # the default run's tasks, every space with data; a held-out space's run drops its own
LABELS = (16, 32, 64, 128, 256)  # labelled archs of the held-out space a ridge ranker trains on
LABEL_DRAWS = 30  # random draws of the labelled archs per k
MIN_TEST = 64  # archs left to judge on when the labelled archs come out of the held-out ones
NAR_SPACES = ("NASBench201",)  # NAR's encoding is an NB-201 cell's
NAR_CONFIG = nar.NARConfig(d_model=64, layers=2, epochs=100)  # the rankers benchmark's NAR
NAR_DRAWS = 10
# the factors of what makes a winner transfer (item 4 of the transfer issue): each a set of leave-one-space-out
# runs, the default run's flags plus these. A default changes only when its variant does better over the held-out
# spaces (the variants table), never by one space's test archs
NO_SIZE = ("--set", "features=" + ",".join(PROXY_TERMINALS), "--set", "seed_programs=" + ",".join(
    name for name, text in SEEDS.items() if not set(re.findall(r"\w+", text)) & set(FEATURES)))
VARIANTS = {"default": (),
            "mean": ("--set", "fitness.combine=mean"),  # tasks combined by their mean Kendall, not the worst
            "margin": ("--set", "fitness.combine=margin"),  # the worst task's margin over its best reference: a
            # low-ceiling task (NB-301's small network, every signal's Kendall ~.3) no longer alone decides
            "meco-terminals": ("--proxy_terminals", "meco,synflow,az_expressivity,az_progressivity"),
            "raw": ("--proxy_terminals", "none"),  # programs over the statistics and network features only
            "no-blends": ("--blend", "0"),  # no fitted log-linear blends of the best programs
            "equal-blends": ("--set", "blend_weights=1"),  # blends with equal weights: nothing fitted, as the
            # hand-made rank ensembles
            # the winner chosen on a space selection never read: the next space after the held-out one in ALL_TASKS'
            # order (a fixed rule, set before any run), its tasks taken out of selection (``run_tasks``)
            "validation-space": ("--validation_tasks", "<the next space's tasks>"),
            # no size terms (params, flops, n_units, depth) in the programs' hands, nor the seeds that read them:
            # the size priors the fitness spaces reward and NAS-Bench-Macro inverts (margin's and validation-
            # space's winners there)
            "no-size": NO_SIZE,
            "margin-no-size": ("--set", "fitness.combine=margin", *NO_SIZE),
            # and blends with equal weights (nothing fitted but each part's orientation)
            "margin-no-size-equal": ("--set", "fitness.combine=margin", *NO_SIZE, "--set", "blend_weights=1")}
TARGETS = {"NASBench201": 0.93, "DARTS": 0.93, "NASBench101": 0.83, "NASBench301": 0.68, "NASBenchMacro": 0.80}


def held_out(root: Path, space: str) -> tuple[FitnessData, Task, list, list]:
    """S's task (with its fitness data), the archs to score (the held-out ones, or every row) and the held-out
    uids."""
    task_text, n = SPACES[space]
    data = FitnessData(FitnessConfig(tasks=(task_text,)), None, root)
    task = data.tasks[0]
    test = data.networks(str(task), "test", n)
    archs = test
    if space in EVERY_ROW:
        built = data._space(task)
        archs = built.load(built.default_benchmark(root, task.dataset), task.dataset)
    return data, task, archs, [a.uid for a in test]


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


def verify_config(root: Path, folder: Path, space: str, proxies: tuple[str, ...], programs: tuple[str, ...],
                  skip: frozenset[str] = frozenset(), every_row: bool = True) -> VerifyConfig:
    """The verify run of ``proxies`` and ``programs`` on the space's archs (its held-out ones only, without
    ``every_row``) but ``skip`` (uids; a benchmark file written into ``folder``), on the network its task
    scores."""
    data, task, archs, held = held_out(root, space)
    archs = [a for a in archs if a.uid not in skip and (every_row or a.uid in set(held))]
    folder.mkdir(parents=True, exist_ok=True)
    bench = folder / "archs.csv"
    subset_file(root, task, data._space(task), archs, bench)
    width, cells = data.size(task)
    return VerifyConfig(search_space=task.space, dataset=task.dataset, batch_size=BATCH, n_samples=-1, seed=0,
                        proxies=proxies, programs=programs, benchmark_path=str(bench), data_root=str(root),
                        device="cpu", out=str(folder / "verify"), results_csv=str(folder / "all_tests.csv"),
                        width=width, cells=cells, probe=FitnessConfig().probe if space_class(task.space).has_probes() else None)


def scored(cfg: VerifyConfig) -> dict:
    """A verify run (resumed if unfinished, reused if finished): its per-arch scores and seconds per arch."""
    summary = run_verify(cfg, resume=True)
    scores = pd.read_csv(Path(cfg.out) / "scores.csv", dtype={"uid": str})
    names = [*cfg.proxies, *cfg.programs]
    return {"n_archs": len(scores), "uid": scores["uid"].tolist(), "accuracy": scores["accuracy"].tolist(),
            "scores": {n: [compact(v) for v in scores[n].astype(float)] for n in names},
            "seconds_per_arch": {n: compact(summary["proxies"][n]["seconds_per_arch"]) for n in names
                                 if n in summary["proxies"]}}


def compact(value: float) -> float | None:
    """A score as the results file keeps it: 7 significant digits (ranks are all that is read), None if not finite."""
    return float(f"{value:.7g}") if math.isfinite(value) else None


def score_space(root: Path, runs: Path, space: str, saved: dict | None = None) -> dict:
    """Every hand-made registered proxy and seed program on the space's archs; ``saved``: the per-arch scores
    of an earlier session (``--part save``), so only the other archs are scored."""
    _, task, _, test_uids = held_out(root, space)
    folder = runs / "proxies" / space / (f"rest{len(saved['uid'])}" if saved else "")
    cfg = verify_config(root, folder, space, tuple(hand_made()), tuple(SEEDS.values()),
                        frozenset(saved["uid"]) if saved else frozenset())
    entry = scored(cfg)
    if saved:  # the saved rows first; seconds per arch over both
        n_new, n_old = entry["n_archs"], len(saved["uid"])
        entry = {"n_archs": n_new + n_old, "uid": saved["uid"] + entry["uid"],
                 "accuracy": saved["accuracy"] + entry["accuracy"],
                 "scores": {k: saved["scores"].get(k, [None] * n_old) + v for k, v in entry["scores"].items()},
                 "seconds_per_arch": {k: (sum(f.get(k, 0.0) for f in saved["folders"].values()) + v * n_new)
                                      / (n_old + n_new) for k, v in entry["seconds_per_arch"].items()}}
        table = pd.DataFrame({k: pd.Series(v, dtype=float) for k, v in entry["scores"].items()})
        for name in entry["scores"]:  # a pool-level proxy ranks among all the archs: combined again over both
            if name in set(hand_made()) and (proxy := get_proxy(name)).pool is not None:
                entry["scores"][name] = [None if not math.isfinite(v) else float(v) for v in proxy.pool(table)]
    return {"task": str(task), "network": {"width": cfg.width, "cells": cfg.cells, "probe": cfg.probe},
            "held_out": test_uids, **entry}


def save_partial(runs: Path, space: str, before: dict | None) -> dict | None:
    """The per-arch scores the unfinished ``--part proxies`` runs of the space hold (their checkpoints), with
    those saved ``before`` (an earlier session's), to be committed so that a later session scores only the
    rest: rows by uid, and each verify folder's seconds per proxy (a folder saved again replaces its own).
    None when there is nothing to save."""
    rows, folders = [], dict(before["folders"]) if before else {}
    if before:
        rows.append(pd.DataFrame({"uid": before["uid"], "accuracy": before["accuracy"],
                                  **{n: pd.Series(v, dtype=float) for n, v in before["scores"].items()}}))
    for state_file in sorted((runs / "proxies" / space).glob("**/partial_state.json")):
        state = json.loads(state_file.read_text())
        table = pd.read_csv(state_file.with_name("partial_scores.csv"), dtype={"uid": str})
        names = [n for n in dict.fromkeys((*state["config"]["proxies"], *state["config"]["programs"]))
                 if n in table]  # per arch (a seed program named like a proxy, params, is one column)
        rows.append(table[["uid", "accuracy", *names]])
        folders[str(state_file.parent.relative_to(runs))] = {n: state["seconds"].get(n, 0.0) for n in names}
    if not rows:
        return None
    table = pd.concat(rows).drop_duplicates("uid")
    return {"uid": table["uid"].tolist(), "accuracy": table["accuracy"].tolist(), "folders": folders,
            "scores": {n: [None if not math.isfinite(v) else v for v in table[n].astype(float)]
                       for n in table.columns[2:]}}


def hall_of_fame(run: Path) -> list[dict]:
    """What the run chose its winner among (its winner first): per distinct exported program, the figures a
    choice rule may read, all from the run's own selection and validation networks."""
    seen, out = set(), []
    for entry in json.loads((run / "hall_of_fame.json").read_text()):
        if entry["exported"] not in seen:
            seen.add(entry["exported"])
            out.append({k: entry[k] for k in ("exported", "fitness", "validation_fitness", "size", "novel")})
    return out


def run_name(space: str, seed: int, variant: str = "default") -> str:
    """The folder (and results key) stem of a run without ``space``: the default variant's has no suffix."""
    return f"{space}-seed{seed}" + ("" if variant == "default" else f"-{variant}")


def run_key(space: str, seed: int, variant: str = "default") -> str:
    return f"{space}:seed{seed}" + ("" if variant == "default" else f":{variant}")


def test_winner(root: Path, runs: Path, space: str, seed: int, hall: list[dict], variant: str = "default") -> dict:
    """A run's winner, and every other program of its hall of fame (``hall``, winner first: one shared
    collection of statistics per network, so they cost about what the winner does), on the space's archs."""
    cfg = verify_config(root, runs / "test" / f"{run_name(space, seed, variant)}-hall", space, (),
                        tuple(h["exported"] for h in hall), every_row=False)
    return {"space": space, "seed": seed, "variant": variant, "winner": hall[0]["exported"], "hall": hall, **scored(cfg)}


def top_by_validation(hall: list[dict], k: int) -> list[dict]:
    return sorted(hall, key=lambda h: -h["validation_fitness"])[:k]


def smallest_near_best(hall: list[dict], within: float) -> dict:
    """The smallest program whose validation fitness is within ``within`` of the best (ties: the better)."""
    bar = top_by_validation(hall, 1)[0]["validation_fitness"] - within
    return min((h for h in hall if h["validation_fitness"] >= bar), key=lambda h: (h["size"], -h["validation_fitness"]))


# how a run may choose its winner among its hall of fame, each from the run's own figures only (item 4 of the
# transfer issue: the default is the rule that does best over the held-out spaces, never one space's test archs)
RULES = {
    "novel, best validation (default)": lambda hall: [hall[0]],
    "best validation": lambda hall: top_by_validation(hall, 1),
    "best selection fitness": lambda hall: [max(hall, key=lambda h: h["fitness"])],
    "smallest within .01 of the best validation": lambda hall: [smallest_near_best(hall, 0.01)],
    "rank ensemble of the 5 best by validation": lambda hall: top_by_validation(hall, 5),
}


def rules_on(test: dict, table: pd.DataFrame) -> dict[str, dict]:
    """Each choice rule's program(s) on the held-out archs of ``table`` (an ensemble: the sum of ranks)."""
    scores = pd.DataFrame({"uid": test["uid"], **{n: pd.Series(v, dtype=float) for n, v in test["scores"].items()}})
    merged = table[["uid", "accuracy"]].merge(scores, on="uid")
    out = {}
    for rule, choose in RULES.items():
        chosen = [h["exported"] for h in choose(test["hall"])]
        column = merged[chosen[0]] if len(chosen) == 1 else rank_sum(merged, tuple(chosen))
        out[rule] = {**measure(column, merged["accuracy"]), "programs": chosen}
    return out


def without(space: str) -> tuple[str, ...]:
    """The default run's tasks without ``space``'s."""
    return tuple(t for t in ALL_TASKS if Task.parse(t).space != space)


def run_tasks(space: str, variant: str) -> tuple[tuple[str, ...], list[str]]:
    """The tasks and the variant's flags of the run without ``space``; "validation-space" takes the tasks of the
    space after ``space`` (in ALL_TASKS' order, cyclic) out of selection, as its ``--validation_tasks``."""
    tasks = without(space)
    if variant != "validation-space":
        return tasks, list(VARIANTS[variant])
    spaces = list(dict.fromkeys(Task.parse(t).space for t in ALL_TASKS))
    judge = spaces[(spaces.index(space) + 1) % len(spaces)]
    validation = tuple(t for t in tasks if Task.parse(t).space == judge)
    return tuple(t for t in tasks if t not in validation), ["--validation_tasks", ",".join(validation)]


def evolve_without(runs: Path, space: str, seed: int, extra: list[str], variant: str = "default") -> dict:
    """The default run (with the variant's flags) on every task but the space's (resumed if unfinished): its
    cost and winner."""
    run = runs / "evolve" / f"without-{run_name(space, seed, variant)}"
    tasks, flags = run_tasks(space, variant)
    cost = run_evolve(seed, run, runs / "values", ["--tasks", ",".join(tasks), *flags, *extra])
    hall = hall_of_fame(run)
    return {**cost, "cache_bytes": folder_bytes(runs / "values"), "tasks": list(tasks), "variant": variant,
            "flags": flags, "winner": hall[0]["exported"], "run": str(run), "hall": hall}


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


def per_network() -> list[str]:
    return [n for n in hand_made() if get_proxy(n).pool is None and not get_proxy(n).arch_only]


def label_draws(space: str, entry: dict, draws: int, seed: int = 0) -> dict[int, list[list[str]]]:
    """Per k of ``LABELS``, ``draws`` random sets of k labelled archs' uids: from the rows outside the held-out
    ones for a space scored on every row, else from the held-out archs themselves (k leaving at least
    ``MIN_TEST`` of them to judge on)."""
    whole, held = frame(entry, held_out_only=False), frame(entry)
    pool = whole[~whole["uid"].isin(set(held["uid"]))] if space in EVERY_ROW else held
    ks = [k for k in LABELS if k <= len(pool) - (0 if space in EVERY_ROW else MIN_TEST)]
    rng = np.random.default_rng(seed)
    return {k: [pool["uid"].iloc[rng.choice(len(pool), k, replace=False)].tolist() for _ in range(draws)] for k in ks}


def on_same_archs(held: pd.DataFrame, learner: str, runs: dict[int, list[tuple[list[str], float]]],
                  columns: dict[str, pd.Series]) -> dict:
    """A few-shot learner against ``columns`` (per-arch scores indexed like ``held``): ``runs`` holds, per k, each
    draw's labelled uids and the learner's Spearman on the held-out archs it did not train on; each column's
    Spearman on the very same archs. The curve of means per k, and ``equivalent[c]``: the smallest k whose
    learner mean reaches column c's (None when no k does)."""
    curve: dict[int, dict[str, float]] = {}
    for k, draws in runs.items():
        rhos: dict[str, list[float]] = {learner: [rho for _, rho in draws], **{c: [] for c in columns}}
        for train, _ in draws:
            test = held[~held["uid"].isin(set(train))]
            for c, scores in columns.items():
                rhos[c].append(stats.spearmanr(scores.loc[test.index], test["accuracy"], nan_policy="omit").statistic)
        curve[k] = {c: float(np.mean(v)) for c, v in rhos.items()}
    ks = sorted(curve)
    return {"ks": ks, "draws": len(next(iter(runs.values()), [])), "curve": {str(k): v for k, v in curve.items()},
            "equivalent": {c: next((k for k in ks if curve[k][learner] >= curve[k][c]), None) for c in columns}}


def labels_equivalent(space: str, entry: dict, columns: dict[str, pd.Series], draws: int = LABEL_DRAWS) -> dict:
    """How many labelled archs of the space a few-shot competitor needs to match each of ``columns`` (per-arch
    scores indexed like the held-out table): ridge over every registered per-network proxy (signed log,
    standardised; ``eznas.rankers.fit_ridge``) trained on k archs (``label_draws``), Spearman on the held-out
    archs it did not train on, mean over ``draws`` random draws; each column's on the very same archs."""
    whole, held = frame(entry, held_out_only=False), frame(entry)
    features = [n for n in per_network() if n in held and np.isfinite(held[n].to_numpy(float)).any()]
    runs: dict[int, list[tuple[list[str], float]]] = {}
    for k, draws_k in label_draws(space, entry, draws).items():
        for train_uids in draws_k:
            train = whole[whole["uid"].isin(set(train_uids))]
            test = held[~held["uid"].isin(set(train_uids))]
            mean, std, weights = fit_ridge(train[features], train["accuracy"].to_numpy(float))
            z = np.nan_to_num((signed_log(test[features].to_numpy(float)) - mean) / std, nan=0.0)
            runs.setdefault(k, []).append((train_uids, stats.spearmanr(z @ np.array(weights), test["accuracy"]).statistic))
    return {"features": features, "labelled_from": "other rows" if space in EVERY_ROW else "held-out archs",
            **on_same_archs(held, "ridge", runs, columns)}


def nar_draws(root: Path, space: str, entry: dict, draws: int = NAR_DRAWS) -> dict:
    """NAR (``eznas.rankers.nar``, the rankers benchmark's size) trained on k labelled archs of an NB-201 space
    (NAR's encoding is NB-201's cell; the epoch kept by Kendall on those same labelled archs: no other labels),
    per draw its labelled uids and its Spearman on the held-out archs it did not train on."""
    _, task, archs, _ = held_out(root, space)
    held = frame(entry)
    code = dict(zip(held.index, (nar.encode(spec) for spec in held["uid"].map({a.uid: a.spec for a in archs}))))
    out: dict[str, list[dict]] = {}
    for k, draws_k in label_draws(space, entry, draws, seed=1).items():
        for train_uids in draws_k:
            train = held[held["uid"].isin(set(train_uids))]
            test = held[~held["uid"].isin(set(train_uids))]
            x = np.stack([code[i] for i in train.index])
            y = train["accuracy"].to_numpy(float)
            model, _ = nar.train(x, y, x, y, NAR_CONFIG)
            score = nar.predict(model, np.stack([code[i] for i in test.index]))
            out.setdefault(str(k), []).append({"train": train_uids,
                                               "spearman": float(stats.spearmanr(score, test["accuracy"]).statistic)})
        logging.getLogger(__name__).info("%s: NAR on %d labelled archs: mean rho %.3f", space, k,
                                         np.mean([d["spearman"] for d in out[str(k)]]))
    return {"config": asdict(NAR_CONFIG), "draws": out}


def report(results: dict) -> dict:
    """Per scored space: every proxy, seed program and baseline ensemble on the held-out archs."""
    out = {}
    for space, entry in results["proxies"].items():
        table = frame(entry)
        rows = {n: measure(table[n], table["accuracy"]) for n in entry["scores"]}
        for name, members in UNTUNED.items():
            rows[name] = measure(rank_sum(table, members), table["accuracy"])
        chosen = chosen_elsewhere(results, space, per_network())
        if chosen:
            members, rho = chosen
            rows["best ensemble chosen on the other spaces"] = {
                **measure(rank_sum(table, members), table["accuracy"]), "members": list(members),
                "mean_rho_elsewhere": rho, "chosen_on": sorted(s for s in results["proxies"] if s != space)}
        best_single = max((n for n in per_network() if math.isfinite(rows[n]["spearman"])),
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
    for key, test in results.get("tests", {}).items():
        space = test["space"]
        if space in out:
            out[space].setdefault("winners", {})[key] = judge(results, out[space], test)
            if "hall" in test:
                out[space].setdefault("rules", {})[key] = rules_on(test, frame(results["proxies"][space]))
    for space, entry in results["proxies"].items():
        table, figures = frame(entry), out[space]
        columns = {figures["best_single"]: table[figures["best_single"]]}
        if chosen := figures["rows"].get("best ensemble chosen on the other spaces"):
            columns["best ensemble chosen on the other spaces"] = rank_sum(table, tuple(chosen["members"]))
        for key, test in results.get("tests", {}).items():
            if test["space"] == space:
                by_uid = dict(zip(test["uid"], test["scores"][test["winner"]]))
                columns[key] = pd.Series([by_uid.get(u) for u in table["uid"]], index=table.index, dtype=float)
        figures["labels"] = labels_equivalent(space, entry, columns)
        if recorded := results.get("nar", {}).get(space):
            runs = {int(k): [(d["train"], d["spearman"]) for d in v] for k, v in recorded["draws"].items()}
            figures["nar_labels"] = on_same_archs(frame(entry), "nar", runs, columns)
    return out


def baselines(table: pd.DataFrame, figures: dict) -> dict[str, pd.Series]:
    """The baselines' per-arch scores: every registered proxy (AZ-NAS too), the untuned rank ensembles and
    the ensemble chosen on the other spaces (seed programs are shown, not counted: they restate proxies)."""
    out = {n: table[n] for n in figures["rows"] if n in set(hand_made())}
    out.update({name: rank_sum(table, members) for name, members in UNTUNED.items()})
    chosen = figures["rows"].get("best ensemble chosen on the other spaces")
    if chosen:
        out["best ensemble chosen on the other spaces"] = rank_sum(table, tuple(chosen["members"]))
    return out


def judge(results: dict, figures: dict, test: dict) -> dict:
    """A winner on its held-out space: its figures, the best baseline's, the paired difference and targets."""
    space = test["space"]
    table = frame(results["proxies"][space]).merge(
        pd.DataFrame({"uid": test["uid"], "winner": pd.Series(test["scores"][test["winner"]], dtype=float)}), on="uid")
    mine = measure(table["winner"], table["accuracy"])
    rival = baselines(table, figures)
    rhos = {n: figures["rows"][n]["spearman"] for n in rival if math.isfinite(figures["rows"][n]["spearman"])}
    best = max(rhos, key=rhos.get)
    diff = paired_difference_ci(table["winner"], rival[best], table["accuracy"])
    variant, default = test.get("variant", "default"), results.get("tests", {}).get(run_key(space, test["seed"]))
    against = {}
    if variant != "default" and default:  # the variant's winner against the default run's, on the same archs
        both = table.merge(pd.DataFrame({"uid": default["uid"], "default": pd.Series(
            default["scores"][default["winner"]], dtype=float)}), on="uid")
        against = {"vs_default": paired_difference_ci(both["winner"], both["default"], both["accuracy"])}
    return {"winner": test["winner"], "seed": test["seed"], "variant": variant, "n": len(table), **against,
            **mine, "best_baseline": best,
            "best_baseline_spearman": rhos[best], "vs_best": diff,
            "at_least_as_good": mine["spearman"] >= rhos[best], "ci_above": diff["ci"][0] > 0,
            "target": TARGETS[space], "target_met": mine["spearman"] >= TARGETS[space],
            "seconds_per_arch": test["seconds_per_arch"].get(test["winner"])}


def markdown(results: dict, figures: dict) -> str:
    registered = set(list_proxies())  # a seed program whose text is a proxy's name (params) is that proxy
    names = {v: f"seed program {k}" for k, v in SEEDS.items() if v not in registered}

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
    learners = {"labels": ("ridge", "a ridge ranker over every registered per-network proxy", LABEL_DRAWS),
                "nar_labels": ("nar", f"NAR ({NAR_CONFIG.d_model} wide, {NAR_CONFIG.layers} layers, {NAR_CONFIG.epochs} "
                               f"epochs; NB-201 only: its encoding is an NB-201 cell)", NAR_DRAWS)}
    for key, (learner, what, draws) in learners.items():
        if not any(figures[s].get(key) for s in spaces):
            continue
        lines += ["", f"Labels-equivalent: the fewest labelled archs of the held-out space with which {what} matches "
                  f"the column's Spearman on the same archs (mean of {draws} draws; k from {', '.join(map(str, LABELS))}, "
                  f"at most n - {MIN_TEST} where the labelled archs come out of the held-out ones; '> k' where no k "
                  "reaches it).", "",
                  f"| held-out space | {learner} mean ρ by k | best single proxy | ensemble chosen elsewhere | winners |",
                  "|---|---|---|---|---|"]
        for s in spaces:
            lab = figures[s].get(key)
            if not lab:
                continue
            curve = ", ".join(f"{k}: {v[learner]:.3f}" for k, v in lab["curve"].items())
            eq = lab["equivalent"]
            say = lambda c: "—" if c not in eq or not lab["ks"] else (f"> {lab['ks'][-1]}" if eq[c] is None else str(eq[c]))  # noqa: E731
            winners = "; ".join(f"{c}: {say(c)}" for c in eq if c in figures[s].get("winners", {})) or "—"
            lines.append(f"| {s} | {curve} | {figures[s]['best_single']}: {say(figures[s]['best_single'])} | "
                         f"{say('best ensemble chosen on the other spaces')} | {winners} |")
    judged = [(s, k, w) for s in spaces for k, w in figures[s].get("winners", {}).items()]
    if judged:
        lines += ["", "The default run without the held-out space (its tasks: every other space's), its winner on "
                  "the held-out archs:", "",
                  "| held-out space | seed | variant | winner ρ [95% CI] / τ | best baseline ρ | winner minus best "
                  "[paired 95% CI] | at least as good | CI above | target |", "|---|---|---|---|---|---|---|---|---|"]
        for s, key, w in judged:
            lo, hi = w["ci95"]["spearman"]
            d = w["vs_best"]
            lines.append(f"| {s} | {w['seed']} | {w['variant']} | {w['spearman']:.3f} [{lo:.3f}, {hi:.3f}] / {w['kendall']:.3f} | "
                         f"{w['best_baseline']} {w['best_baseline_spearman']:.3f} | {d['diff']:+.3f} "
                         f"[{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] | {'yes' if w['at_least_as_good'] else 'no'} | "
                         f"{'yes' if w['ci_above'] else 'no'} | {w['target']:.2f}: {'met' if w['target_met'] else 'missed'} |")
        for s, key, w in judged:
            lines.append(f"\n{key}: `{w['winner']}`")
    variants = variant_table(figures)
    if len(variants) > 1:
        held = sorted({s for row in variants.values() for s in row})
        lines += ["", "What makes a winner transfer: each variant of the default run (`VARIANTS`: its flags) evolved without "
                  "the held-out space, its winner's Spearman there (seed 0) and its difference from the default run's "
                  "winner on the same archs [paired 95% CI], and its mean over the held-out spaces it has been run on "
                  "beside the default's over the same spaces.", "",
                  "| variant | " + " | ".join(held) + " | mean (the default's there; spaces) |", "|---|" + "---|" * (len(held) + 1)]
        default = variants.get("default", {})

        def versus(s: str, v: str) -> str:
            d = figures[s]["winners"][run_key(s, 0, v)].get("vs_default")
            return f" ({d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}])" if d else ""

        for v, row in variants.items():
            both = [s for s in row if s in default]
            mean = f"{np.mean(list(row.values())):.3f}" + (
                f" ({np.mean([default[s] for s in both]):.3f}; {len(row)})" if len(both) == len(row) else f" (—; {len(row)})")
            lines.append(f"| {v} (`{' '.join(VARIANTS[v]) or 'no flags'}`) | "
                         + " | ".join(f"{row[s]:.3f}{versus(s, v)}" if s in row else "—" for s in held) + f" | {mean} |")
    ruled = rules_table(figures)
    if ruled:
        held = sorted({s for rules in ruled.values() for row in rules.values() for s in row})
        lines += ["", "How a run chooses its winner among its hall of fame (each rule reads only the run's own selection "
                  "and validation figures), per variant: Spearman on the held-out space's archs (seed 0), and the mean "
                  "over the held-out spaces the variant has been run on.", "",
                  "| variant | rule | " + " | ".join(held) + " | mean (spaces) |", "|---|---|" + "---|" * (len(held) + 1)]
        for v, rules in ruled.items():
            for rule, row in rules.items():
                lines.append(f"| {v} | {rule} | " + " | ".join(f"{row[s]:.3f}" if s in row else "—" for s in held)
                             + f" | {np.mean(list(row.values())):.3f} ({len(row)}) |")
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


def rules_table(figures: dict, seed: int = 0) -> dict[str, dict[str, dict[str, float]]]:
    """variant -> choice rule -> held-out space -> the Spearman there of the program(s) the rule chooses among the
    hall of fame of the variant's run (GP seed ``seed``)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for space, f in figures.items():
        for key, rules in f.get("rules", {}).items():
            w = f["winners"][key]
            if w["seed"] == seed:
                for rule, m in rules.items():
                    out.setdefault(w["variant"], {}).setdefault(rule, {})[space] = m["spearman"]
    return dict(sorted(out.items(), key=lambda kv: list(VARIANTS).index(kv[0])))


def variant_table(figures: dict, seed: int = 0) -> dict[str, dict[str, float]]:
    """variant -> held-out space -> its winner's Spearman there (GP seed ``seed``)."""
    out: dict[str, dict[str, float]] = {}
    for space, f in figures.items():
        for w in f.get("winners", {}).values():
            if w["seed"] == seed:
                out.setdefault(w["variant"], {})[space] = w["spearman"]
    return dict(sorted(out.items(), key=lambda kv: list(VARIANTS).index(kv[0])))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("proxies", "save", "evolve", "test", "nar", "report"), default="proxies",
                   help="proxies: the baselines on each space's held-out archs; save: record an unfinished proxies "
                   "part's per-arch scores (commit them: a later session scores only the rest); evolve: the runs "
                   "without each space; test: their winners on the held-out archs; nar: NAR's labels-equivalent "
                   f"({', '.join(NAR_SPACES)}); report: the tables from what is recorded")
    p.add_argument("--spaces", default=",".join(SPACES), help=f"held-out spaces (default: {', '.join(SPACES)})")
    p.add_argument("--seeds", default="0", help="GP seeds of the evolve and test parts (default 0)")
    p.add_argument("--evolve-args", default="", help="extra evolve.py flags (e.g. '--workers 2')")
    p.add_argument("--variant", choices=tuple(VARIANTS), default="default",
                   help="evolve and test parts: the default run with these flags added: "
                   + "; ".join(f"{k}: {' '.join(v) or 'none'}" for k, v in VARIANTS.items()))
    p.add_argument("--data-root", default=None)
    p.add_argument("--runs", default="results/benchmarks/transfer")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "transfer.json"))
    args = p.parse_args()
    root, runs, out = resolve_data_root(args.data_root), Path(args.runs), Path(args.out)
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    if unknown := [s for s in spaces if s not in SPACES]:
        raise SystemExit(f"error: --spaces: unknown space {unknown[0]!r}; valid: {', '.join(SPACES)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise SystemExit(f"error: --seeds: not comma-separated integers: {args.seeds!r}") from None
    results = json.loads(out.read_text()) if out.is_file() else {}
    for space in spaces:
        if args.part == "save" and space not in results.get("proxies", {}) and \
                (saved := save_partial(runs, space, results.get("partial", {}).get(space))):
            results = record(out, "partial", space, saved)
            print(f"{space}: {len(saved['uid'])} archs' scores saved", flush=True)
        if args.part == "proxies" and space not in results.get("proxies", {}):
            results = record(out, "proxies", space, score_space(root, runs, space, results.get("partial", {}).get(space)))
            results.get("partial", {}).pop(space, None)
            write_json(out, results)
            print(f"{space}: {results['proxies'][space]['n_archs']} archs scored", flush=True)
        if args.part == "nar" and space in NAR_SPACES and space in results.get("proxies", {}) \
                and space not in results.get("nar", {}):
            results = record(out, "nar", space, nar_draws(root, space, results["proxies"][space]))
        for seed in seeds if args.part in ("evolve", "test") else ():
            key = run_key(space, seed, args.variant)
            run = results.get("runs", {}).get(key)
            if args.part == "evolve" and run is None:
                results = record(out, "runs", key, evolve_without(runs, space, seed, args.evolve_args.split(),
                                                                     args.variant))
                print(f"{key}: winner {results['runs'][key]['winner']}", flush=True)
            elif args.part == "evolve" and "hall" not in run:  # recorded before the hall was: from its folder
                results = record(out, "runs", key, {**run, "hall": hall_of_fame(Path(run["run"]))})
            if args.part == "test" and run and "hall" in run and "hall" not in results.get("tests", {}).get(key, {}):
                results = record(out, "tests", key, test_winner(root, runs, space, seed, run["hall"],
                                                                     run.get("variant", "default")))
    results = json.loads(out.read_text()) if out.is_file() else {}
    if results.get("proxies"):
        figures = report(results)
        results = record(out, "figures", "spaces", figures)  # the file as it is now: a part beside this one
        # may have recorded its piece while the figures were computed
        md = markdown(results, figures)
        write_bytes(out.with_suffix(".md"), md.encode())
        print(md)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
