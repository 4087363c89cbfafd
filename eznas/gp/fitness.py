"""Fitness: rank correlation between a program's scores and real accuracies on fixed mini-sets.

Each task (a space and a dataset) gets ``minisets`` fixed mini-sets of ``networks`` archs drawn by the
run seed (EZNAS: 4 x 20); every other arch of the benchmark is held out for testing. A network's
statistics are collected once (a small shared batch, float16, only the names the terminals use) and
kept in the disk cache; a generation evaluates all its new programs network by network, sharing each
unit's subtree results between programs: a task per network, so workers share the networks, not the
programs, and each reads only its own networks' statistics.

A program's fitness on one evaluation: for each task, Kendall tau (or Spearman) between its scores on
that generation's mini-set and the accuracies; the tasks are combined by ``min`` (default) or ``mean``
after orienting the program: a program whose correlations sum to < 0 is negated (its exported form
too), so an anti-correlated program is as good as its mirror image. A program that fails or gives a
non-finite score on any network, or ties all networks, gets FLOOR.
"""
from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from scipy import stats as sps

from eznas.data import BatchSource
from eznas.gp.program import Program, parse_program
from eznas.parallel import Mapper, torch_threads
from eznas.scoring import arch_seed, resolve_device
from eznas.spaces import Arch, SpaceOptions, get_space
from eznas.stats import CollectorConfig, NetworkStats, StatsCache, collect, stats_key

log = logging.getLogger(__name__)

FLOOR = -1.0  # the fitness of an invalid program (fails, non-finite, or constant scores)


@dataclass(frozen=True)
class Task:
    space: str
    dataset: str

    @classmethod
    def parse(cls, text: str) -> "Task":
        space, _, dataset = text.partition(":")
        return cls(space, dataset or "cifar10")

    def __str__(self) -> str:
        return f"{self.space}:{self.dataset}"


@dataclass(frozen=True)
class FitnessConfig:
    tasks: tuple[str, ...] = ("NASBench201:cifar10", "NASBench201:cifar100", "DARTS:cifar10")
    minisets: int = 4
    networks: int = 20  # per mini-set: the networks one evaluation scores per task
    batch_size: int = 4
    metric: str = "kendall"  # or "spearman"
    combine: str = "min"  # or "mean"
    signal: str = "logits_sum"
    dtype: str = "float16"
    seed: int = 0
    data_root: str | None = None
    device: str = "cpu"
    width: int | None = None  # DARTS networks (None: the space's default)
    cells: int | None = None


@dataclass
class Evaluation:
    fitness: float
    orientation: int  # +1, or -1 when the program is anti-correlated (its negation is exported)
    per_task: dict[str, float]  # oriented correlation per task

    def to_dict(self) -> dict:
        return asdict(self)


def correlate(scores: Sequence[float], acc: Sequence[float], metric: str) -> float:
    s, a = np.asarray(scores, float), np.asarray(acc, float)
    if len(s) < 2 or not np.isfinite(s).all() or np.ptp(s) == 0:
        return math.nan
    r = sps.kendalltau(s, a).statistic if metric == "kendall" else sps.spearmanr(s, a).statistic
    return float(r)


def combine(correlations: dict[str, float], how: str) -> Evaluation:
    """Orient by the sign of the correlations' sum, then combine by min or mean; FLOOR if any is NaN."""
    values = list(correlations.values())
    if not values or any(math.isnan(v) for v in values):
        return Evaluation(FLOOR, 1, correlations)
    orientation = -1 if math.fsum(values) < 0 else 1
    oriented = {k: orientation * v for k, v in correlations.items()}
    fit = min(oriented.values()) if how == "min" else math.fsum(oriented.values()) / len(oriented)
    return Evaluation(fit, orientation, oriented)


@dataclass(frozen=True)
class DataHandle:
    """What a worker needs to rebuild a run's FitnessData: small, picklable, hashable."""

    config: FitnessConfig
    terminals: tuple[str, ...]
    cache_folder: str
    data_root: str


_OPEN: OrderedDict[DataHandle, "FitnessData"] = OrderedDict()  # this process's recent FitnessData


def open_data(handle: DataHandle) -> "FitnessData":
    """The FitnessData of ``handle``: the one this process already has, or rebuilt from the cache."""
    data = _OPEN.get(handle)
    if data is None:
        data = FitnessData(handle.config, handle.terminals, StatsCache(handle.cache_folder), Path(handle.data_root))
    return data


class FitnessData:
    """The tasks' fixed mini-sets, held-out archs and statistics (cached on disk, computed once by
    ``prepare``; a worker that finds a network's statistics missing computes them)."""

    def __init__(self, config: FitnessConfig, terminals: Sequence[str], cache: StatsCache, data_root: Path):
        self.config, self.cache, self.data_root = config, cache, Path(data_root)
        self.handle = DataHandle(config, tuple(terminals), str(cache.folder), str(self.data_root))
        self.collector = CollectorConfig(names=tuple(terminals), signal=config.signal, dtype=config.dtype,
                                         noise_seed=config.seed)
        self.tasks = [Task.parse(t) for t in config.tasks]
        self.minisets: dict[str, list[list[Arch]]] = {}
        self.heldout: dict[str, list[Arch]] = {}
        rng = np.random.default_rng(config.seed)
        for task in self.tasks:
            space = self._space(task)
            archs = space.load(space.default_benchmark(self.data_root, task.dataset), task.dataset)
            need = config.minisets * config.networks
            if need > len(archs):
                raise ValueError(f"task {task}: {need} fitness networks asked, the benchmark has {len(archs)}")
            order = rng.permutation(len(archs))
            chosen = [archs[i] for i in order[:need]]
            self.minisets[str(task)] = [chosen[k * config.networks:(k + 1) * config.networks]
                                        for k in range(config.minisets)]
            self.heldout[str(task)] = [archs[i] for i in order[need:]]
        self._by_uid = {(str(t), a.uid): a for t in self.tasks for a in self.networks(str(t), None)}
        self._batches: dict[str, BatchSource] = {}
        _OPEN[self.handle] = self
        while len(_OPEN) > 2:
            _OPEN.popitem(last=False)

    def networks(self, task: str, miniset: int | None) -> list[Arch]:
        """Mini-set number ``miniset`` of ``task``, or all its mini-sets together (None)."""
        sets = self.minisets[task]
        return [a for s in sets for a in s] if miniset is None else sets[miniset]

    def _space(self, task: Task):
        return get_space(task.space, SpaceOptions(width=self.config.width, cells=self.config.cells))

    def arch(self, task: str, uid: str) -> Arch:
        """A fitness network of ``task`` by its uid."""
        return self._by_uid[(task, uid)]

    def key(self, task: Task, arch: Arch) -> str:
        c = self.config
        return stats_key(space=task.space, width=c.width, cells=c.cells, arch=arch.spec, dataset=task.dataset,
                         batch_seed=c.seed, batch_size=c.batch_size, init="default",
                         init_seed=arch_seed(c.seed, arch.uid), collector=asdict(self.collector))

    def stats(self, task: Task, arch: Arch) -> NetworkStats:
        """The network's statistics: from the cache, or collected now (with one torch thread, so the
        numbers do not depend on where they were computed) and cached."""
        key = self.key(task, arch)
        found = self.cache.get(key)
        if found is not None:
            return found
        batches = self._batches.get(task.dataset)
        if batches is None:
            batches = self._batches[task.dataset] = BatchSource(self.data_root, task.dataset,
                                                                self.config.batch_size, self.config.seed)
        device = resolve_device(self.config.device)
        with torch_threads(1):
            torch.manual_seed(arch_seed(self.config.seed, arch.uid))
            net = self._space(task).build(arch.spec, batches.spec.num_classes).to(device).train()
            stats = collect(net, batches.batch().to(device), self.collector)
        for u in stats.units:
            u.tensors = {k: v.cpu() for k, v in u.tensors.items()}
        self.cache.put(key, stats, {"task": str(task), "uid": arch.uid})
        return stats

    def prepare(self, mapper: Mapper | None = None, progress: Callable[[int], Callable[[], None]] | None = None) -> None:
        """Collect the statistics of every fitness network that the cache lacks, a task per network."""
        todo = [(str(t), a.uid) for t in self.tasks for a in self.networks(str(t), None)
                if not self.cache.path(self.key(t, a)).is_file()]
        tick = progress(len(todo)) if progress and todo else None
        (mapper or Mapper()).map(collect_task, [(self.handle, t, uid) for t, uid in todo], tick=tick)


def collect_task(item: tuple[DataHandle, str, str]) -> None:
    """Task: make sure one fitness network's statistics are in the cache."""
    handle, task, uid = item
    data = open_data(handle)
    data.stats(Task.parse(task), data.arch(task, uid))


def score_task(item: tuple[DataHandle, str, str, tuple[str, ...]]) -> list[float]:
    """Task: every program's (string's) score on one fitness network; NaN where it fails."""
    handle, task, uid, texts = item
    data = open_data(handle)
    with torch_threads(1):
        return score_network([_parse(t) for t in texts], data.stats(Task.parse(task), data.arch(task, uid)))


@lru_cache(maxsize=4096)
def _parse(text: str) -> Program:
    return parse_program(text)


def score_network(programs: Sequence[Program], stats: NetworkStats) -> list[float]:
    """The programs' scores on one network, sharing each unit's subtree results between them."""
    caches: list[dict] = [{} for _ in stats.units]
    return [program.score(stats, caches) for program in programs]


def evaluate_programs(programs: Sequence[Program], data: FitnessData, choice: dict[str, int | None],
                      mapper: Mapper | None = None) -> list[Evaluation]:
    """Fitness of each program on the chosen mini-set of every task (None: all its mini-sets at once):
    the 2-network pre-filter here, then
    a task per network (all surviving programs on it, see ``score_task``) on ``mapper``, then the
    correlations here. One torch thread everywhere: the same numbers wherever a task runs."""
    with torch_threads(1):
        alive = [prefilter(p, data) for p in programs]
    texts = tuple(dict.fromkeys(str(p) for p, ok in zip(programs, alive) if ok))
    chosen = {str(t): data.networks(str(t), choice[str(t)]) for t in data.tasks}
    networks = [(t, a) for t, archs in chosen.items() for a in archs]
    columns = (mapper or Mapper()).map(score_task, [(data.handle, t, a.uid, texts) for t, a in networks]) \
        if texts else []
    scores = {text: {str(t): [] for t in data.tasks} for text in texts}
    for (task, _), column in zip(networks, columns):
        for text, s in zip(texts, column):
            scores[text][task].append(s)
    accuracy = {t: [a.accuracy for a in archs] for t, archs in chosen.items()}
    results = []
    for program, ok in zip(programs, alive):
        if not ok:
            results.append(Evaluation(FLOOR, 1, {}))
            continue
        corr = {t: correlate(scores[str(program)][t], acc, data.config.metric) for t, acc in accuracy.items()}
        results.append(combine(corr, data.config.combine))
    return results


def prefilter(program: Program, data: FitnessData, n: int = 2) -> bool:
    """A cheap validity check: finite scores on the first ``n`` networks of the first task's mini-set."""
    task = data.tasks[0]
    return all(math.isfinite(program.score(data.stats(task, a))) for a in data.networks(str(task), 0)[:n])
