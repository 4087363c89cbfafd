"""Does evolution discover a proxy that beats its seeds? The default ``evolve.py`` at several GP seeds, each
winner tested on the pool's test archs (never read during a run) next to every seed program and registered
proxy, on the same archs, batch and initialisations.

    python benchmarks/bench_discovery.py                       # seeds 0,1,2; 1000 test archs per NB-201 dataset
    python benchmarks/bench_discovery.py --part evolve         # only the runs (wall time, peak RSS, cache size)
    python benchmarks/bench_discovery.py --part proxies --n_test 200   # the proxies' side of the test, while runs go on
    python benchmarks/bench_discovery.py --part test --n_test 200      # then the winners, in one run (reuses the proxies' runs)
    python benchmarks/bench_discovery.py --part test --runs OTHER --proxies-from RUNS   # other winners, same archs
    python benchmarks/bench_discovery.py --part test --runs OTHER --proxies-from RUNS,MORE   # + MORE's proxies
    python benchmarks/bench_discovery.py --part test --seeds 0,1,2   # after tests of 0,1 and of 2: both runs reused
    python benchmarks/bench_discovery.py --part ship                 # the winners become eznas's discovered proxies
    python benchmarks/bench_discovery.py --part profile --seeds 0,1  # where the time goes: cold seed 0, warm seed 1
    python benchmarks/bench_discovery.py --part evolve --seeds 0 --runs COLD --section cold   # another run's costs

Per seed: wall time, peak RSS of the run's process tree, the value cache's size after it, the winner (chosen
on the validation networks) and its fitness figures. Per task and batch: Spearman / Kendall with 95% bootstrap
CIs and seconds per arch for every winner, seed program and proxy, each winner's per-arch Spearman
against each of them ("equivalent" at >= 0.95), and its Spearman minus the best registered proxy's with a
paired bootstrap CI (both on the same resamples). Runs go to results/benchmarks/discovery/ (the first run in a runs
folder starts from an empty value cache unless --keep-cache; later ones share it, as runs on one pool do); the figures to
benchmarks/results/discovery.json: ``seeds`` (the runs whose winners are tested), ``test``, the sections
of other evolve runs recorded with ``--section`` (the committed file: ``cold``, the default run of seed 0 from an
empty value cache, alone on the machine) and ``profile``, each part kept when another is written; discovery.md is
written from the whole file. ``--part profile`` (benchmarks/_profile.py) runs the default cold and a second seed warm
in RUNS/profile/ and records their profile.json files and the issue-41 targets into section ``profile``, keyed by the
cold run's GP seed (in discovery.md: their table under ``## profile: cold seed S, warm seed T``, after the test
tables). Every part resumes: evolve runs continue from their checkpoints, verify runs from theirs, and finished ones
are reused.
"""
from __future__ import annotations

import argparse
import json
import math
import pickle
import shlex
import shutil
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from scipy import stats

from _common import folder_bytes, location_args, locations, record, run_evolve, saved, verified
from _profile import SECTION as PROFILE_SECTION, profile_part, sections_markdown
from eznas.config import from_dict
from eznas.gp.winner import NOVEL
from eznas.gp.config import EvolutionConfig
from eznas.gp.discovered import SHIPPED
from eznas.gp.config import FitnessConfig
from eznas.gp.values import FitnessData
from eznas.gp.seeds import SEEDS
from eznas.io import atomic_open, write_bytes
from eznas.metrics import paired_difference_ci
from eznas.proxies import list_proxies
from eznas.spaces import space_class
from eznas.spaces.nb201 import UID_COLUMN
from eznas.verify.summary import result_line

REPO = Path(__file__).resolve().parents[1]
EQUIVALENT = NOVEL  # per-arch Spearman at or above which two proxies count as the same ranking (the run's bar)


def describe_run(run: Path) -> dict:
    """What a finished run folder says: its winner and hall of fame (validated), its logbook and test scores
    (the top 3 on the run's own test archs, at the fitness batch), and how each seed
    program fared in fitness (from the checkpoint's memo: stage, fitness, per task, failures)."""
    hall = json.loads((run / "hall_of_fame.json").read_text())
    memo = pickle.loads((run / "checkpoint.pkl").read_bytes())["memo"]
    return {"run": str(run), "config": json.loads((run / "config.json").read_text()), "winner": hall[0]["exported"],
            "phases": phases(run), "hall_of_fame": hall,
            "logbook": pd.read_csv(run / "logbook.csv").to_dict("records"),
            "test_scores": pd.read_csv(run / "test_scores.csv").to_dict("records"),
            "seed_programs": {name: memo.get(text) for name, text in SEEDS.items()}}


def phases(run: Path) -> dict[str, float]:
    """Seconds of a run's phases from its files' times (right for a run made in one go, not for a resumed or
    re-chosen one): the generations (config.json to the last logbook), the validation of the winner's candidates
    and the references (to hall_of_fame.json), the held-out test of the top 3 (to test_scores.csv), and the
    test's share of the whole (to best_proxy.py)."""
    t = {name: (run / name).stat().st_mtime for name in ("config.json", "logbook.csv", "hall_of_fame.json",
                                                        "test_scores.csv", "best_proxy.py")}
    test = t["test_scores.csv"] - t["hall_of_fame.json"]
    return {"generations": t["logbook.csv"] - t["config.json"], "validation": t["hall_of_fame.json"] - t["logbook.csv"],
            "test": test, "test_share": test / (t["best_proxy.py"] - t["config.json"])}


def test_files(cfg: EvolutionConfig, root: Path, folders: list[Path],
               n_test: int) -> dict[Path, dict[str, tuple[dict, str]]]:
    """Per folder and task: the verify settings and a benchmark file holding the pool's first ``n_test`` test
    archs (each folder its own copy: the path its verify runs are started with)."""
    data = FitnessData(cfg.fitness, None, root)
    out: dict[Path, dict[str, tuple[dict, str]]] = {folder: {} for folder in folders}
    for task in data.tasks:
        archs = data.networks(str(task), "test", n_test if n_test > 0 else None)
        space, dataset = task.space, task.dataset
        if space == "NASBench201":
            table = pd.read_csv(root / "nb201" / "nb201_acc_200ep.csv")
            subset = table[table["index"].isin({int(a.uid) for a in archs})]
        else:
            table = pd.read_csv(data._space(task).default_benchmark(root, dataset))
            rows = sorted(int(a.uid) for a in archs)  # uid = row: the subset keeps it, so the networks' seeds
            subset = table.iloc[rows].assign(**{UID_COLUMN: rows})
        # the network fitness scored: DARTS genotypes on the run's probe network (None: the space's default)
        kw = {"search_space": space, "dataset": dataset}
        width, cells = data.size(task)  # the task's own network size, else the run's (NB-101's stem too)
        kw.update({k: v for k, v in (("width", width), ("cells", cells)) if v is not None})
        if space_class(space).has_probes():
            kw.update(probe=cfg.fitness.probe)
        for folder in folders:
            path = folder / f"test-{space}-{dataset}.csv"
            with atomic_open(path) as f:
                subset.to_csv(f, index=False)
            out[folder][str(task)] = (kw, str(path))
    return out


def finished_config(run: Path) -> dict | None:
    """The config of a finished verify run folder (its summary's), else None."""
    summary = run / "summary.json"
    return json.loads(summary.read_text())["config"] if summary.is_file() else None


def scored(run: Path, proxies: tuple[str, ...]) -> tuple[str, ...]:
    """The proxies a finished verify run folder scored (its summary's config), else ``proxies``."""
    config = finished_config(run)
    return tuple(config["proxies"]) if config else proxies


def join_scored(runs: list[tuple[Path, dict, pd.DataFrame]]) -> tuple[dict, pd.DataFrame]:
    """Verify runs of the same archs, (folder, summary, scores) each, joined arch by arch: every proxy and
    column of each; the first run's figures are kept for a name several hold. Runs of other archs than the
    first's are an error naming both folders."""
    (first, summary, scores), *others = runs
    for folder, other, frame in others:
        if set(frame["uid"]) != set(scores["uid"]):
            raise SystemExit(f"error: --proxies-from: {folder} scored other archs than {first}")
        scores = scores.merge(frame[["uid", *(c for c in frame.columns if c not in scores.columns)]], on="uid")
        summary = {**summary, "proxies": {**summary["proxies"], **{k: v for k, v in other["proxies"].items()
                                                                  if k not in summary["proxies"]}}}
    return summary, scores


def winner_groups(verify_dir: Path, tag: str, winners: dict[int, str],
                  apart: bool) -> dict[str, tuple[dict[int, str], tuple[str, ...] | None]]:
    """The verify runs scoring the winners on one task and batch, ``{group: (members, programs)}``: a finished
    run of this tag that already scored a winner (an earlier test part's group, of these or other seeds) is
    reused with the programs it scored; the others share one new run (``programs`` None: the members'), or each
    have their own with ``apart``."""
    groups, rest = {}, dict(winners)
    for folder in sorted(verify_dir.glob(f"{tag}-seed*")):
        config = finished_config(folder) if rest else None
        if config is None:
            continue
        programs = tuple(config["programs"])
        if found := {s: w for s, w in rest.items() if w in programs}:
            groups[folder.name[len(tag) + 1:]] = (found, programs)
            rest = {s: w for s, w in rest.items() if s not in found}
    new = ({f"seed{s}": {s: w} for s, w in rest.items()} if apart
           else {"seeds" + "-".join(map(str, rest)): rest} if rest else {})
    return {**groups, **{g: (members, None) for g, members in new.items()}}


def agreement(scores: pd.DataFrame, winner: str, others: list[str]) -> dict[str, float]:
    """Per-arch Spearman between the winner's scores and each other column (archs where both are finite)."""
    out = {}
    for name in others:
        both = scores[[winner, name]].replace([float("inf"), -float("inf")], float("nan")).dropna()
        out[name] = float(stats.spearmanr(both[winner], both[name]).statistic) if len(both) > 2 else float("nan")
    return out


def paired(scores: pd.DataFrame, winner: str, measured: dict[str, dict]) -> dict:
    """The winner's Spearman minus the best registered proxy's on these archs, with a paired bootstrap CI."""
    proxies = set(list_proxies())
    registered = [n for n in measured if n in proxies and math.isfinite(measured[n]["spearman"])]
    if not registered:
        return {}
    best = max(registered, key=lambda n: measured[n]["spearman"])
    return {"vs": best, **paired_difference_ci(scores[winner], scores[best], scores["accuracy"])}


NOT_RUNS = ("seeds", "test", PROFILE_SECTION)  # the sections that are not other evolve runs' (--section)
TARGETS = {"NASBench201:cifar10": 0.93, "NASBench201:cifar100": 0.92, "DARTS:cifar10": 0.85}  # the issue's rho


def markdown(results: dict) -> str:
    """discovery.md: the test tables (when the file has a test section), then the profiles (section profile)."""
    tables = [held_out_tables(results)] if results.get("test") else []
    if results.get(PROFILE_SECTION):
        tables.append(sections_markdown(results[PROFILE_SECTION]))
    return "\n".join(tables)


def held_out_tables(results: dict) -> str:
    """The test tables: every winner, seed program and proxy per task and batch, then each winner against
    the targets (equivalence, beating the best proxy, the rho thresholds)."""
    names = {v: k for k, v in SEEDS.items()}  # seed program text -> its seed's name
    winners = {s: e["winner"] for s, e in results["seeds"].items()}
    tags = list(results["test"])
    rows = list(dict.fromkeys(n for t in tags for n in results["test"][t]["proxies"]))

    proxies = set(list_proxies())

    def label(name: str) -> str:
        seeds = [f"seed {s}" for s, w in winners.items() if w == name]
        if seeds:
            return f"winner ({', '.join(seeds)})"
        return name if name in proxies or name not in names else f"seed program {names[name]}"

    def cell(m: dict | None) -> str:
        if not m:
            return "—"
        lo, hi = m["ci95"]["spearman"]
        return f"{m['spearman']:.3f} / {m['kendall']:.3f} [{lo:.3f}, {hi:.3f}] {m['seconds_per_arch']:.3f} s"

    def cost(e: dict) -> str:
        ph = e.get("phases")
        share = f"{ph['test_share']:.1%}" if ph else "—"
        return (f"{e['wall_seconds']:.0f} s | {e['peak_rss_gb']:.2f} GB | {e['cache_bytes'] / 1e6:.1f} MB | {share} | "
                f"{e.get('costs_from', 'this benchmark')}")

    lines = ["| seed | wall | peak RSS | value cache after | held-out test share | measured by |", "|---|---|---|---|---|---|"]
    lines += [f"| {s} | {cost(e)} |" for s, e in results["seeds"].items() if "wall_seconds" in e]
    lines += [f"| {s} ({section}) | {cost(e)} |" for section, runs in results.items() if section not in NOT_RUNS
              for s, e in runs.items() if "wall_seconds" in e]
    head = " | ".join(f"{results['test'][t]['task']} b{results['test'][t]['batch_size']} "
                      f"(n={results['test'][t]['n_archs']})" for t in tags)
    lines += ["", "Spearman / Kendall [Spearman's 95% bootstrap CI] and seconds per arch (a winners' run: the first "
              "program's include the statistics and proxy terminals the others share).", "",
              f"| program or proxy | {head} |", "|---|" + "---|" * len(tags)]
    for name in rows:
        lines.append(f"| {label(name)} | " + " | ".join(cell(results["test"][t]["proxies"].get(name)) for t in tags) + " |")
    lines += ["", "| seed | most similar per arch (Spearman), per task | equivalent (>= 0.95) to | beats the best proxy "
              "on every task | CIs apart on | rho minus the best proxy's [paired 95% CI], per task | rho targets met |",
              "|---|---|---|---|---|---|---|"]
    for s, w in winners.items():
        if any(w not in results["test"][t]["proxies"] for t in tags):
            lines.append(f"| {s} | not tested yet (--part test --seeds {s}) | | | | | |")
            continue
        similar, equivalent, beats, apart, met, diffs = [], set(), True, [], [], []
        for t in tags:
            entry = results["test"][t]
            agree = entry["agreement"].get(s, {})
            if agree:
                top = max(agree, key=lambda k: agree[k])
                similar.append(f"{label(top)} {agree[top]:.3f}")
                equivalent |= {label(k) for k, v in agree.items() if v >= EQUIVALENT}
            mine = entry["proxies"][w]
            best = max((m for n, m in entry["proxies"].items() if n in proxies), key=lambda m: m["spearman"])
            beats &= mine["spearman"] > best["spearman"]
            if mine["ci95"]["spearman"][0] > best["ci95"]["spearman"][1]:
                apart.append(entry["task"])
            if d := entry.get("paired", {}).get(s):
                diffs.append(f"{d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] vs {label(d['vs'])}")
            if mine["spearman"] >= TARGETS.get(entry["task"], 1.0):
                met.append(entry["task"])
        lines.append(f"| {s} | {'; '.join(similar)} | {', '.join(sorted(equivalent)) or 'none'} | "
                     f"{'yes' if beats else 'no'} | {', '.join(apart) or 'none'} | {'; '.join(diffs) or '—'} | "
                     f"{', '.join(met) or 'none'} |")
    return "\n".join(lines) + "\n"


def ship(results: dict, out: Path = SHIPPED) -> list[dict]:
    """The seeds' winners as eznas's shipped discovered proxies (``eznas.gp.discovered``), with their provenance:
    ``discovered_s<seed>`` per seed, and ``discovered`` the one with the best validation fitness (the runs' own
    choice among candidates; a test figure never chooses). A run's signal and pool seed come from its recorded
    config, else from the defaults of the time (``config_recorded`` false)."""
    entries = []
    for seed, run in sorted(results["seeds"].items(), key=lambda item: int(item[0])):
        best, config = run["hall_of_fame"][0], run.get("config")
        fitness = config["fitness"] if config else asdict(FitnessConfig())
        test = {f"{t['task']} b{t['batch_size']} (n={t['n_archs']})": {
                    k: t["proxies"][best["exported"]][k] for k in ("spearman", "kendall", "ci95", "n")}
                for t in results.get("test", {}).values() if best["exported"] in t["proxies"]}
        entries.append({"name": f"discovered_s{seed}", "program": best["exported"], "gp_seed": int(seed),
                        "tasks": list(best["fitness_per_task"]), "signal": fitness["signal"],
                        "noise_seed": fitness["pool_seed"], "batch_size": fitness["batch_size"],
                        "fitness": best["fitness"], "fitness_per_task": best["fitness_per_task"],
                        "validation_fitness": best["validation_fitness"],
                        "validation_per_task": best["validation_per_task"], "test": test,
                        "config_recorded": config is not None, "config": config, "run": run["run"],
                        "source": f"benchmarks/results/discovery.json, seeds.{seed}"})
    if not entries:
        raise SystemExit("error: --part ship: no finished run in the results (run --part evolve first)")
    default = max(entries, key=lambda e: e["validation_fitness"])
    shipped = [{**default, "name": "discovered", "default_of": default["name"]}, *entries]
    with atomic_open(out) as f:
        json.dump({"written_by": "benchmarks/bench_discovery.py --part ship", "proxies": shipped}, f, indent=1)
    return shipped


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("all", "evolve", "test", "proxies", "ship", "profile"), default="all",
                   help="proxies: only score the proxies and seed programs on the test archs (what --part test "
                   "reuses; needs the first seed's config.json, not its result, so it can run beside --part evolve); "
                   "ship: write the recorded winners into eznas/gp/discovered.json (eznas's discovered proxies); profile: "
                   "the first seed cold, the second warm, in RUNS/profile/, their profile.json files and the targets "
                   "into section profile of --out (keyed by the first seed; the other sections kept)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--section", default="seeds",
                   help="evolve part: the section of --out its runs are recorded under (default seeds: the runs the "
                   "test part tests; another name keeps other runs' costs beside them, e.g. cold: a run from an "
                   "empty value cache, timed alone; not test or profile, the other parts' sections), the other "
                   "sections kept")
    p.add_argument("--n_test", type=int, default=1000, help="test archs per task (DARTS: all of its test split)")
    p.add_argument("--batches", default=None, help="verify batch sizes (default 16 and the fitness batch)")
    p.add_argument("--proxies", default=",".join(list_proxies()), help="default: every registered proxy")
    p.add_argument("--keep-cache", action="store_true", help="do not empty the value cache before the first run")
    p.add_argument("--evolve-args", default="", help="extra evolve.py flags (e.g. '--workers 2'; shell quoting)")
    p.add_argument("--proxies-from", default=None, metavar="RUNS[,RUNS]",
                   help="test part: take the test files from the first of these runs folders and the proxies' and "
                   "seed programs' verify runs from each (other benchmarks' on the same pool, tasks and --n_test: "
                   "nothing is scored twice; a finished run is reused with the proxies it scored, and the folders' "
                   "columns are joined arch by arch); the winners' runs stay in --runs")
    p.add_argument("--tasks", default=None, help="test on these of the runs' tasks only, in this order (comma-separated, "
                   "e.g. DARTS:cifar10); default: all")
    p.add_argument("--costs-from", default=None, metavar="SECTION|JSON",
                   help="runs copied from others and their winners chosen again (evolve.py --resume COPY --winner "
                   "...): the seeds section is each run's measured cost from the evolve part's record (a --section "
                   "of --out, or another json's seeds), and the copy's description (winner, hall of fame, logbook)")
    p.add_argument("--winners-apart", action="store_true",
                   help="test part: score each winner in its own verify run (seconds per arch of each alone; a new "
                   "seed adds only its own run); default: the seeds' winners in one run, sharing each arch's "
                   "statistics and proxy terminals. Either way a winner that a finished verify run of the task "
                   "already scored (an earlier --part test's) is taken from that run")
    location_args(p, runs="results/benchmarks/discovery", out=str(REPO / "benchmarks" / "results" / "discovery.json"))
    return p.parse_args()


def main() -> None:
    args = parse_args()
    root, runs, out = locations(args)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.section in ("test", PROFILE_SECTION):
        raise SystemExit(f"error: --section {args.section}: the {args.section} part's section; name another")
    results = saved(out)
    results.setdefault("seeds", {})
    if args.part == "ship":
        for entry in ship(results):
            print(f"{entry['name']}: GP seed {entry['gp_seed']}, validation {entry['validation_fitness']:.4f}")
        print(f"wrote {SHIPPED}")
        return
    if args.part == "profile":
        results = profile_part(runs / "profile", seeds, shlex.split(args.evolve_args), out, run_evolve)
    if args.part in ("all", "evolve"):
        results = evolve_part(runs, out, seeds, args.evolve_args.split(), args.keep_cache, results, args.section)
    if args.costs_from and args.part != "profile":
        results = costs_from(args.costs_from, runs, out, seeds, results)
    if args.part in ("all", "test", "proxies"):
        results = test_part(args, root, runs, out, seeds, results)
    if args.part != "proxies":
        if results.get("test") or results.get(PROFILE_SECTION):
            md = markdown(results)
            write_bytes(out.with_suffix(".md"), md.encode())
            print(md)
        print(f"wrote {out}")


def evolve_part(runs: Path, out: Path, seeds: list[int], extra: list[str], keep_cache: bool, results: dict,
                section: str = "seeds") -> dict:
    """Each seed's evolve.py run (measured unless finished and measured already), described into ``out``'s
    ``section``: the results file's content after."""
    cache = runs / "values"
    # a cold first run: computing values is part of its cost (any run already there, of any seed, keeps it)
    if not keep_cache and not any(runs.glob("seed*/config.json")):
        shutil.rmtree(cache, ignore_errors=True)
    for seed in seeds:
        run = runs / f"seed{seed}"
        entry = results.get(section, {}).get(str(seed))
        if not ((run / "best_proxy.py").is_file() and entry):  # else finished and measured: described again
            entry = {**run_evolve(seed, run, cache, extra), "cache_bytes": folder_bytes(cache)}
        results = record(out, section, str(seed), {**entry, **describe_run(run)})
        print(f"seed {seed}: {entry['wall_seconds']:.0f} s, peak RSS {entry['peak_rss_gb']:.2f} GB, "
              f"cache {entry['cache_bytes'] / 1e9:.2f} GB, winner {results[section][str(seed)]['winner']}",
              flush=True)
    return results


def costs_from(source: str, runs: Path, out: Path, seeds: list[int], results: dict) -> dict:
    """--costs-from: each seed's measured cost from the evolve part's record ``source`` (a section of ``out``,
    else a json file's seeds) with its copied run's description, into ``out``: the results file's content after."""
    cost = results[source] if source in results else json.loads(Path(source).read_text())["seeds"]
    for seed in seeds:
        measured = {k: v for k, v in cost[str(seed)].items()
                    if k in ("wall_seconds", "peak_rss_gb", "resumed", "cache_bytes", "phases")}
        # a copy's file times are not the run's: its phases are the measured run's, when that recorded them
        described = {k: v for k, v in describe_run(runs / f"seed{seed}").items() if k != "phases"}
        results = record(out, "seeds", str(seed), {**measured, "costs_from": source, **described})
    return results


class Tester:
    """What the test part's verify runs share: the first seed's run config (pool seed, fitness tasks), the
    data root, the winners' runs folder, the source folders of the proxies' side with their copies of the test
    files, and the proxies scored where no finished run says which."""

    def __init__(self, cfg: EvolutionConfig, root: Path, runs: Path, sources: list[Path], n_test: int,
                 proxies: tuple[str, ...]) -> None:
        self.cfg, self.root, self.runs, self.sources, self.proxies = cfg, root, runs, sources, proxies
        # each source folder holds its own copy of the test files (the same archs: the pool, tasks and --n_test
        # are the same), the benchmark path its verify runs were started with
        self.files_of = test_files(cfg, root, sources, n_test)
        self.files = self.files_of[sources[0]]

    def verify(self, where: Path, tag: str, kw: dict, bench: str, batch: int, proxies: tuple,
               programs: tuple) -> tuple[dict, pd.DataFrame]:
        """A verify run of the test archs in ``where``/verify/``tag`` (a finished run is reused, an unfinished
        one resumed)."""
        return verified(where, where / "verify" / tag, **kw, batch_size=batch, seed=self.cfg.fitness.pool_seed,
                        proxies=proxies, programs=programs, benchmark_path=bench, n_samples=-1,
                        data_root=str(self.root))

    def proxies_side(self, tag: str, task: str, batch: int) -> tuple[dict, pd.DataFrame]:
        """The proxies and seed programs on the test archs: each source folder's verify run (a finished one
        with the proxies it scored, else --proxies), joined arch by arch; the first folder's figures are kept
        for a name several hold."""
        return join_scored([(where / "verify" / tag, *self.verify(where, tag, *self.files_of[where][task], batch,
                                                                  scored(where / "verify" / tag, self.proxies),
                                                                  tuple(SEEDS.values()))) for where in self.sources])

    def entry(self, tag: str, task: str, batch: int, winners: dict[int, str], apart: bool) -> dict:
        """One task and batch: every proxy's, seed program's and winner's figures, each winner's per-arch
        agreement with the others and its paired difference with the best registered proxy."""
        kw, bench = self.files[task]
        # the proxies and seed programs once, in one run (the winners' runs compare with it per arch)
        summary, scores = self.proxies_side(tag, task, batch)
        entry = {"task": task, "batch_size": batch, "n_archs": summary["n_archs"],
                 "proxies": dict(summary["proxies"]), "agreement": {}}
        # the winners together (one statistics pass and one set of proxy terminals per arch serve them
        # all; seconds per arch: the first program's include the shared collection), or each on its own;
        # a winner a finished run of this tag already scored is taken from it
        for group, (members, programs) in winner_groups(self.runs / "verify", tag, winners, apart).items():
            mine, own = self.verify(self.runs, f"{tag}-{group}", kw, bench, batch, (),
                                    programs or tuple(dict.fromkeys(members.values())))
            for s, w in members.items():
                entry["proxies"][w] = mine["proxies"][w]
                both = scores.merge(own[["uid", w]], on="uid", suffixes=("", " (winner)"))
                column = w if w not in scores.columns else f"{w} (winner)"
                entry["agreement"][str(s)] = agreement(both, column, [c for c in summary["proxies"] if c != w])
                entry.setdefault("paired", {})[str(s)] = paired(both, column, summary["proxies"])
        return entry


def test_part(args: argparse.Namespace, root: Path, runs: Path, out: Path, seeds: list[int], results: dict) -> dict:
    """The winners, seed programs and proxies on the test archs, per task and batch (--part proxies: only the
    proxies' side, nothing recorded): the results file's content after."""
    winners = {s: results["seeds"][str(s)]["winner"] for s in seeds if str(s) in results["seeds"]}
    if args.part == "proxies":
        winners = {}
    elif not winners:
        raise SystemExit("error: no finished evolution run to test; run --part evolve first")
    cfg = from_dict(EvolutionConfig, json.loads((runs / f"seed{seeds[0]}" / "config.json").read_text()), "config")
    batches = [int(b) for b in args.batches.split(",")] if args.batches else sorted({16, cfg.fitness.batch_size})
    sources = [Path(f) for f in args.proxies_from.split(",")] if args.proxies_from else [runs]  # the proxies' side
    tester = Tester(cfg, root, runs, sources, args.n_test, tuple(args.proxies.split(",")))
    order = args.tasks.split(",") if args.tasks else list(tester.files)
    if unknown := [t for t in order if t not in tester.files]:
        raise SystemExit(f"error: --tasks: {unknown[0]!r} is not a task of these runs ({', '.join(tester.files)})")
    for task in order:
        for batch in batches:
            tag = f"{task.replace(':', '-').replace('@', '-').replace('=', '')}-b{batch}"  # @width=32: -width32
            entry = tester.entry(tag, task, batch, winners, args.winners_apart)
            print(f"--- {tag}: {entry['n_archs']} archs")
            for name, m in entry["proxies"].items():
                print(result_line(name, m))
            if args.part != "proxies":
                results = record(out, "test", tag, entry)
    return results


if __name__ == "__main__":
    main()
