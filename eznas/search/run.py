"""One architecture search: a strategy proposes, a proxy (or an evolved program) scores, the best score
wins; the benchmark table says how good the found arch really is.

The run folder holds ``config.json`` (the resolved config), ``state.json`` (the checkpoint: every arch
scored, the REA population, the RNG, the seconds spent; written atomically about every
``CHECKPOINT_SECONDS`` and at the end), ``trajectory.csv`` (per arch scored: seconds, its score and
accuracy, and the best-so-far arch's), ``result.json`` and ``search.png``. ``resume`` continues the
search in the folder: the settings must be the run's, except the budgets, which may grow.

``scores`` (a ``verify_scores.py`` run folder with the same space, dataset, batch and seed) supplies the
fitness of the archs it scored: they are looked up, not computed, and each counts the verify run's
seconds per arch, so a benchmark of many searches pays for each arch's score once. ``score_cache`` (a file,
``eznas.search.cache``) does the same for the archs searches visit: read where there, appended when scored.

A pool-level fitness (``az_nas``, or an evolved program with ``net_rank``) ranks an arch among a pool: in a
search the pool is every arch scored so far. Each arch's per-arch parts are scored (or looked up) once; the
scores of all archs scored are recomputed from them after each new one, so REA's tournaments compare ranks
among everything seen, and the best-so-far at step i is the best of the first i ranked among themselves.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from eznas.data import BatchSource, resolve_data_root
from eznas.errors import DataError, EznasError
from eznas.io import atomic_open, check_writable, write_json
from eznas.networks import resolve_device
from eznas.proxies import ProxyCall, parse_proxy, per_arch_calls
from eznas.gp.as_proxy import program_call
from eznas.registry import Valid, at_least, check_values
from eznas.scoring import score_archs
from eznas.search.cache import ScoreCache
from eznas.search.encoding import ENCODINGS, Encoding, get_encoding
from eznas.search.strategies import STRATEGIES, Scored, SearchState, Universe, make_strategy
from eznas.spaces import Arch, SpaceOptions, get_space
from eznas.spaces.darts import has_probes

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 30.0
FULL_TABLES = ("NASBench201", "NATSBenchSSS")  # spaces whose table holds every arch: always searched in it
BUDGETS = ("budget", "time_budget")  # what a resumed search may change
# the best test accuracy in each NB-201 table (the reference optimum; ours is computed from the table)
NB201_OPTIMUM = {"cifar10": 94.37, "cifar100": 73.51, "ImageNet16-120": 47.31}


def table_rank(accuracies: np.ndarray, accuracy: float) -> int:
    """An accuracy's rank in a table: 1 + the archs strictly more accurate (ties share the better rank)."""
    return 1 + int((accuracies > accuracy).sum())


@dataclass(frozen=True)
class SearchConfig:
    search_space: str = "NASBench201"
    dataset: str = "cifar10"
    strategy: str = "rea"
    proxy: str | None = None  # a registered proxy, name[:key=value]; meco when no program is given
    program: str | None = None  # an evolved program (higher is better)
    budget: int = 1000  # archs scored
    time_budget: float | None = None  # seconds of scoring; the search stops at whichever budget ends first
    population: int = 20  # rea
    sample_size: int = 5  # rea: the tournament
    seed: int = 0  # the strategy's draws
    score_seed: int | None = None  # the batch and each network's initialisation (None: seed)
    batch_size: int = 16
    in_table: bool | None = None  # propose only the benchmark table's archs (None: only where it is the space)
    accuracy_key: str | None = None
    benchmark_path: str | None = None
    data_root: str | None = None
    device: str = "auto"
    probe: str | None = None  # DARTS/NASBench301: which network of a genotype is scored
    width: int | None = None
    cells: int | None = None
    scores: str | None = None  # a verify_scores.py run folder whose scores of the fitness are looked up
    score_cache: str | None = None  # a file of the fitness's per-arch values shared by searches (eznas.search.cache)
    out: str | None = None


RANGES = {"budget": at_least(1), "time_budget": Valid(lambda t: t is None or t > 0, "> 0"),
          "population": at_least(2), "sample_size": at_least(1), "seed": at_least(0),
          "score_seed": Valid(lambda v: v is None or v >= 0, ">= 0"), "batch_size": at_least(1),
          "width": at_least(1), "cells": at_least(1)}


def check_config(cfg: SearchConfig) -> None:
    """Every setting valid before anything is read (EznasError naming the flag and the valid values)."""
    check_values(dataclasses.asdict(cfg), RANGES, name=lambda k: f"--{k}")
    STRATEGIES.get(cfg.strategy)
    if cfg.search_space not in ENCODINGS:
        raise EznasError(f"--search_space {cfg.search_space} cannot be searched yet; valid: {', '.join(ENCODINGS)}")
    if cfg.proxy and cfg.program:
        raise EznasError("give one fitness: --proxy or --program/--program-file, not both")
    if cfg.strategy == "rea" and cfg.population > cfg.budget:
        raise EznasError(f"--population {cfg.population} is larger than --budget {cfg.budget}: the first "
                         "population alone would exceed the budget")
    if cfg.probe is not None and not has_probes(cfg.search_space):
        raise EznasError(f"--probe applies to DARTS or NASBench301 only, not {cfg.search_space}")


def resolved(cfg: SearchConfig) -> SearchConfig:
    """Defaults filled in: the fitness, whether the search keeps to the table, the DARTS probe network."""
    probe = cfg.probe or getattr(get_space(cfg.search_space), "probe", None) if has_probes(cfg.search_space) else None
    return dataclasses.replace(
        cfg, proxy=cfg.proxy if cfg.proxy or cfg.program else "meco", probe=probe,
        score_seed=cfg.seed if cfg.score_seed is None else cfg.score_seed,
        in_table=cfg.search_space in FULL_TABLES if cfg.in_table is None else cfg.in_table)


def fitness_call(cfg: SearchConfig) -> ProxyCall:
    return parse_proxy(cfg.proxy, cfg.batch_size) if cfg.proxy else program_call(cfg.program, noise_seed=cfg.score_seed)


# the verify settings that must equal the search's for its scores to be the ones the search would compute
SCORE_SETTINGS = {"search_space": "search_space", "dataset": "dataset", "batch_size": "batch_size",
                  "seed": "score_seed", "probe": "probe", "width": "width", "cells": "cells"}  # verify's: ours


def looked_up_scores(cfg: SearchConfig, label: str, parts: list[str]) -> tuple[dict[str, dict[str, float]], float]:
    """A verify run's values of ``parts`` (the fitness's per-arch columns: ``label`` itself, or a pool
    fitness's components) by uid, and the fitness's seconds per arch; its settings must be the search's
    (first_batch, fresh_batch and init at their defaults), else an error names the one that differs."""
    folder = Path(cfg.scores)
    try:
        summary = json.loads((folder / "summary.json").read_text())
        table = pd.read_csv(folder / "scores.csv", dtype={"uid": str})
    except (OSError, ValueError) as exc:
        raise DataError(f"--scores {folder}: not a finished verify_scores.py run folder ({exc})") from None
    run = summary["config"]
    wanted = {**{k: getattr(cfg, ours) for k, ours in SCORE_SETTINGS.items()}, "first_batch": False, "fresh_batch": False,
              "init": "default"}
    for key, value in wanted.items():
        if run.get(key) != value:
            raise EznasError(f"--scores {folder}: its {key} is {run.get(key)!r}, the search's {value!r}: its "
                             "scores are not the ones this search would compute")
    missing = [c for c in parts if c not in table.columns]
    if label not in summary["proxies"] or missing:
        raise EznasError(f"--scores {folder}: no scores of {(missing or [label])[0]!r} there (it scored "
                         f"{', '.join(summary['proxies'])})")
    values = table[parts].astype(float).to_dict("records")
    return dict(zip(table["uid"], values)), summary["proxies"][label]["seconds_per_arch"]


def generated_uid(spec: str) -> str:
    """The id of an arch outside the table (its network's initialisation seed follows from it)."""
    return f"g{zlib.crc32(spec.encode()):08x}"


class Search:
    def __init__(self, cfg: SearchConfig, resume: bool = False):
        check_config(cfg)
        self.cfg = cfg = resolved(cfg)
        self.out = Path(cfg.out) if cfg.out else Path("results") / "search" / (
            f"{cfg.search_space}-{cfg.dataset}-{cfg.strategy}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
        self.call = fitness_call(cfg)
        self.per_arch = per_arch_calls({self.call.label: self.call}, cfg.batch_size)  # a pool fitness: its parts
        self.space = get_space(cfg.search_space, SpaceOptions(width=cfg.width, cells=cfg.cells, probe=cfg.probe))
        self.encoding: Encoding = get_encoding(cfg.search_space)
        root = resolve_data_root(cfg.data_root)
        bench = Path(cfg.benchmark_path) if cfg.benchmark_path else self.space.default_benchmark(root, cfg.dataset)
        self.table = self.space.load(bench, cfg.dataset, cfg.accuracy_key)
        if not self.table:
            raise DataError(f"{bench}: no architectures with an accuracy")
        self.by_code = {self.encoding.encode(a.spec): a for a in self.table}
        self.universe = Universe(self.encoding, list(self.by_code)) if cfg.in_table else None
        self.strategy = make_strategy(cfg.strategy, cfg.population, cfg.sample_size)
        self.rng = np.random.default_rng(cfg.seed)
        self.state = SearchState()
        self.device = resolve_device(cfg.device)
        self.known, self.known_seconds = (looked_up_scores(cfg, self.call.label, list(self.per_arch))
                                          if cfg.scores else ({}, 0.0))
        self.cache = ScoreCache(cfg.score_cache, {  # what the values depend on: other settings are an error
            **{k: getattr(cfg, ours) for k, ours in SCORE_SETTINGS.items()}, "device": self.device.type,
            "fitness": self.call.label, "parts": list(self.per_arch)}) if cfg.score_cache else None
        self._prepare_folder(resume)
        self.batches = BatchSource(root, cfg.dataset, cfg.batch_size, cfg.score_seed)
        self.rank_pool()  # a resumed pool search: its scores from the parts

    # -------------------------------------------------------------------------------- folder and checkpoint
    def _prepare_folder(self, resume: bool) -> None:
        config, state = self.out / "config.json", self.out / "state.json"
        if config.is_file() and not resume:
            raise EznasError(f"{self.out} already holds a search; use --resume to continue it or another --out")
        check_writable(self.out, folder=True, what="--out")
        if resume and state.is_file():
            try:
                before = json.loads(config.read_text())
                saved = json.loads(state.read_text())
            except (OSError, ValueError) as exc:
                raise DataError(f"--resume {self.out}: unreadable checkpoint ({exc}); move it aside") from None
            now = json.loads(json.dumps(dataclasses.asdict(self.cfg)))
            for key in now:
                if key not in BUDGETS and key != "out" and before.get(key) != now[key]:
                    raise EznasError(f"--resume {self.out}: --{key} differs from the search's ({key}: "
                                     f"{before.get(key)!r} there, {now[key]!r} now)")
            self.state = SearchState([Scored(tuple(h["code"]), h["uid"], h["spec"], h["score"], h["accuracy"],
                                             h["seconds"], h.get("parts", {})) for h in saved["history"]],
                                     list(saved["population"]), saved["elapsed"])
            self.rng.bit_generator.state = saved["rng"]
            log.info("%s: resuming after %d archs scored", self.out, len(self.state.history))
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(config, dataclasses.asdict(self.cfg))

    def checkpoint(self) -> None:
        s = self.state
        write_json(self.out / "state.json", {
            "history": [dataclasses.asdict(h) for h in s.history], "population": s.population,
            "elapsed": s.elapsed, "rng": self.rng.bit_generator.state})

    # -------------------------------------------------------------------------------- the loop
    def arch(self, code: tuple) -> Arch:
        known = self.by_code.get(code)
        if known is not None:
            return known
        spec = self.encoding.decode(code)
        return Arch(generated_uid(spec), spec, math.nan)

    def score(self, arch: Arch) -> tuple[dict[str, float], float]:
        """The fitness's per-arch values of ``arch`` (NaN where not defined), looked up (``--scores``, then
        the score cache) or computed (and added to the cache), and its seconds: a looked-up arch's are what
        it cost where it was scored (a verify run's, per arch on average)."""
        if arch.uid in self.known:
            values, seconds = self.known[arch.uid], self.known_seconds
        elif self.cache is not None and (hit := self.cache.lookup(arch.uid)) is not None:
            values, seconds = hit  # scored before, perhaps by a search beside this one
        else:
            start = time.perf_counter()
            (result,) = score_archs(self.space, [arch], list(self.per_arch.values()), self.batches,
                                    seed=self.cfg.score_seed, device=self.device)
            values, seconds = result.scores, time.perf_counter() - start
            for label, error in result.errors.items():
                log.debug("%s on %s: %s", label, arch.uid, error)
        parts = {label: float(values[label]) if math.isfinite(values[label]) else math.nan for label in self.per_arch}
        if self.cache is not None and arch.uid not in self.cache and arch.uid not in self.known:
            self.cache.add(arch.uid, parts, seconds)
        return parts, seconds

    def pool_scores(self, history: list[Scored]) -> np.ndarray:
        """A pool fitness's scores of ``history``, ranked among themselves (NaN where not defined)."""
        scores = np.asarray(self.call.proxy.pool(pd.DataFrame([s.parts for s in history])), float)
        return np.where(np.isfinite(scores), scores, np.nan)

    def rank_pool(self) -> None:
        """Every arch's score among all scored so far (a pool fitness; a per-arch one keeps its own)."""
        if self.call.proxy.pool and self.state.history:
            for s, value in zip(self.state.history, self.pool_scores(self.state.history)):
                s.score = float(value)

    def done(self) -> bool:
        c, s = self.cfg, self.state
        return len(s.history) >= c.budget or (c.time_budget is not None and s.elapsed >= c.time_budget)

    def run(self, tick: Callable[[Scored], None] | None = None) -> dict[str, Any]:
        last = time.perf_counter()
        while not self.done():
            code = self.strategy.propose(self.state, self.encoding, self.universe, self.rng)
            if code is None:
                log.warning("every arch the search may propose is scored (%d)", len(self.state.history))
                break
            arch = self.arch(code)
            parts, seconds = self.score(arch)
            self.state.elapsed += seconds
            pool = bool(self.call.proxy.pool)
            self.state.history.append(Scored(code, arch.uid, arch.spec, math.nan if pool else parts[self.call.label],
                                             arch.accuracy, seconds, parts if pool else {}))
            self.rank_pool()
            self.strategy.observe(self.state, len(self.state.history) - 1)
            if tick:
                tick(self.state.history[-1])
            if time.perf_counter() - last > CHECKPOINT_SECONDS:
                self.checkpoint()
                last = time.perf_counter()
        self.checkpoint()
        return self.finish()

    # -------------------------------------------------------------------------------- results
    def trajectory(self) -> pd.DataFrame:
        """Per arch scored: its score (a pool fitness's: among all the search scored) and the best-so-far
        arch (a pool fitness's: the best of the first i archs ranked among themselves, as the search saw it)."""
        rows, best, elapsed, history = [], None, 0.0, self.state.history
        for i, s in enumerate(history, start=1):
            elapsed += s.seconds
            if self.call.proxy.pool:
                prefix = self.pool_scores(history[:i])
                top = int(np.nanargmax(prefix)) if np.isfinite(prefix).any() else None
                best = None if top is None else dataclasses.replace(history[top], score=float(prefix[top]))
            elif not math.isnan(s.score) and (best is None or s.score > best.score):
                best = s
            rows.append({"archs_scored": i, "seconds": elapsed, "uid": s.uid, "score": s.score,
                         "accuracy": s.accuracy, "best_uid": best.uid if best else None,
                         "best_score": best.score if best else math.nan,
                         "best_accuracy": best.accuracy if best else math.nan, "spec": s.spec})
        return pd.DataFrame(rows)

    def finish(self) -> dict[str, Any]:
        cfg, best = self.cfg, self.state.best()
        accuracies = np.array([a.accuracy for a in self.table])
        found: dict[str, Any] | None = None
        if best is not None:
            found = {"uid": best.uid, "spec": best.spec, "score": best.score}
            if not math.isnan(best.accuracy):
                rank = table_rank(accuracies, best.accuracy)
                found.update(accuracy=best.accuracy, rank=rank, top_percent=100.0 * rank / len(accuracies))
        scored = [s.accuracy for s in self.state.history if not math.isnan(s.accuracy)]
        result = {
            "config": dataclasses.asdict(cfg), "fitness": self.call.label, "archs_scored": len(self.state.history),
            "seconds": self.state.elapsed, "found": found, "table_archs": len(self.table),
            "table_optimum": float(accuracies.max()),
            "oracle_of_scored": max(scored) if scored else None,  # the best true accuracy among the archs scored
            "not_finite": sum(math.isnan(s.score) for s in self.state.history),
            "looked_up": sum(s.uid in self.known for s in self.state.history),  # scores read from --scores
        }
        if cfg.search_space == "NASBench201":
            result["published_optimum"] = NB201_OPTIMUM.get(cfg.dataset)
        table = self.trajectory()
        with atomic_open(self.out / "trajectory.csv") as f:
            table.to_csv(f, index=False)
        write_json(self.out / "result.json", result)
        plot_search(self.out / "search.png", table, result)
        return result


def plot_search(path: Path, table: pd.DataFrame, result: dict[str, Any]) -> None:
    """Best-so-far proxy score and the true accuracy of that arch, against the archs scored."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    if len(table):
        left.plot(table.archs_scored, table.best_score)
        right.plot(table.archs_scored, table.best_accuracy, label="best-scored arch")
        right.plot(table.archs_scored, table.accuracy.cummax(), linestyle=":", label="best arch scored (oracle)")
    right.axhline(result["table_optimum"], color="grey", linestyle="--", label="table optimum")
    left.set(xlabel="archs scored", ylabel=f"best {result['fitness'][:40]}")
    right.set(xlabel="archs scored", ylabel="accuracy (%)")
    right.legend(fontsize=7)
    c = result["config"]
    fig.suptitle(f"{c['strategy']} on {c['search_space']} {c['dataset']}, seed {c['seed']}", fontsize=10)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
