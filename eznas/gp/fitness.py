"""Fitness: rank correlation between a program's scores and real accuracies, on fixed splits of networks.

**Splits.** Each task (a space and a dataset) splits its benchmark once, by the *pool seed* (never the GP
seed, so runs with different GP seeds share their networks and cached values): ``selection`` networks
(fitness), then ``validation`` networks (choose the hall of fame's winner), and the rest, *test*
(reported only, never read during the run).

**Values, not tensors.** A network's statistics are collected when a value needs them (a task per
network, only the names needed, then dropped); what is kept is one float per (network, aggregated
sub-program) and per (network, feature) in a :class:`ValueCache` on disk. A program's score on a network
is network-level arithmetic on those floats, done here on the driver; so a program that recombines known
aggregates costs nothing, and an aggregate is computed once per network for every program, generation and
run that uses it.

**Racing.** A new program whose aggregates this run has not measured on every selection network is first
scored on the first ``screen`` selection networks of each task; in promotion rounds the ``promote`` best
screened programs (fresh or waiting from earlier rounds) above the run's bar are scored on all of them. An evaluation is ``full`` (all selection networks) or
``screen``; selection ranks full evaluations above screened ones (see ``rank``).

A program's fitness: for each task, Kendall tau (or Spearman) between its scores and the accuracies; the
tasks are combined by ``min`` (default) or ``mean`` after orienting the program: a program whose
correlations sum to < 0 is negated (its exported form too). A program not defined on some network (the
reasons are counted), or constant over a task, gets FLOOR.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import zlib
from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from scipy import stats as sps

from eznas.data import BatchSource
from eznas.errors import DataError, EznasError
from eznas.features import FEATURES, network_features
from eznas.gp.program import Program, parse_program
from eznas.gp.pset import PROXY_PREFIX
from eznas.io import atomic_open
from eznas.parallel import Mapper, torch_threads
from eznas.proxies import Probe
from eznas.gp.as_proxy import proxy_values
from eznas.networks import arch_seed, build_network, resolve_device
from eznas.spaces import Arch, SpaceOptions, get_space
from eznas.spaces.darts import PROBES, has_probes
from eznas.stats import COLLECTOR_VERSION, CollectorConfig, NetworkStats, collect, find_units, stats_key
from eznas.primitives.aggregate import ProgramFailure

log = logging.getLogger(__name__)

FLUSH_EVERY = 64  # networks whose new values ensure() writes to the value cache at a time
FLOOR = -1.0  # the fitness of an invalid program (not defined on a network, or constant scores)
VALUES_VERSION = 3  # bump when a primitive's or a proxy terminal's numbers change: cached values then no
# longer apply (2: az_expressivity and az_progressivity are finite on archs with a zero feature; 3: the key
# memo was per space, so a cell in two tasks of one space (NB-201 CIFAR-10 and CIFAR-100) could be stored and
# read under the task asked first)
SPLITS = ("selection", "validation", "test")


TASK_OPTIONS = ("width", "cells")  # a task's own network size: ``SPACE:DATASET@width=32@cells=5``


@dataclass(frozen=True)
class Task:
    """A space and a dataset; ``width`` / ``cells`` size this task's networks over ``fitness.width`` /
    ``fitness.cells`` (e.g. ``NASBench101:cifar10@width=32`` next to DARTS on its width-3 probe network)."""
    space: str
    dataset: str
    width: int | None = None
    cells: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Task":
        head, *options = text.split("@")
        space, _, dataset = head.partition(":")
        sizes: dict[str, int] = {}
        for option in options:
            name, _, value = option.partition("=")
            if name not in TASK_OPTIONS or not value.isdigit() or int(value) < 1 or name in sizes:
                raise EznasError(f"task {text!r}: bad option {option!r} (valid: @width=N, @cells=N, each once, N >= 1)")
            sizes[name] = int(value)
        return cls(space, dataset or "cifar10", **sizes)

    @property
    def table(self) -> str:
        """``SPACE:DATASET``: what the splits depend on (a task's network size does not change its archs)."""
        return f"{self.space}:{self.dataset}"

    def __str__(self) -> str:
        return self.table + "".join(f"@{n}={getattr(self, n)}" for n in TASK_OPTIONS if getattr(self, n) is not None)


@dataclass(frozen=True)
class FitnessConfig:
    tasks: tuple[str, ...] = ("NASBench201:cifar10", "NASBench201:cifar100", "DARTS:cifar10")
    selection: int = 200  # networks per task that fitness is measured on
    validation: int = 100  # networks per task that choose the winner among the hall of fame
    screen: int = 20  # the first selection networks, on which a new program is tried first
    promote: int = 4  # screened programs per generation that go on at most to all selection networks
    promote_margin: float = 0.1  # ... if their screening fitness is at least the run's bar minus this
    batch_size: int = 16  # SWAP-like counts saturate at 2^batch patterns (16 at batch 4: no signal)
    metric: str = "kendall"  # or "spearman"
    combine: str = "min"  # or "mean"
    signal: str = "logits_sum"
    dtype: str = "float32"  # statistics are rounded to this before programs read them (float32: as users
    # score the exported program; float16 saturates at 65504, which pre-activations of deep NB-201 nets pass)
    pool_seed: int = 0  # the splits, the batch and each network's initialisation (not the GP seed)
    data_root: str | None = None
    device: str = "auto"  # where networks are built and their statistics computed (auto: CUDA when present)
    width: int | None = None  # DARTS/NASBench301 initial channels, NASBench101 stem (None: the space's default)
    cells: int | None = None
    probe: str | None = None  # DARTS/NASBench301 tasks: which network of a genotype ("swap": SWAP's probe network;
    # "none": the space's standard one; None: each space's default, DARTS swap, NASBench301 none; PROBES)

    def __post_init__(self) -> None:
        checks = [("selection", self.selection >= 2, ">= 2"), ("validation", self.validation >= 2, ">= 2"),
                  ("screen", 2 <= self.screen <= self.selection, f"in [2, selection={self.selection}]"),
                  ("promote", self.promote >= 1, ">= 1"), ("batch_size", self.batch_size >= 1, ">= 1"),
                  ("metric", self.metric in ("kendall", "spearman"), "kendall or spearman"),
                  ("combine", self.combine in ("min", "mean"), "min or mean"), ("tasks", bool(self.tasks), "not empty"),
                  ("probe", self.probe is None or self.probe in PROBES, f"one of: {', '.join(PROBES)}")]
        for name, ok, valid in checks:
            if not ok:
                raise EznasError(f"fitness.{name} must be {valid}, got {getattr(self, name)!r}")


@dataclass
class Evaluation:
    fitness: float
    orientation: int  # +1, or -1 when the program is anti-correlated (its negation is exported)
    per_task: dict[str, float]  # oriented correlation per task
    stage: str = "full"  # "full": on all the networks asked for; "screen": on the screening networks only
    networks: int = 0  # networks per task it was measured on
    failures: dict[str, int] = field(default_factory=dict)  # reason -> networks where it was not defined
    behaviour: str = ""  # a hash of the oriented ranking of the networks ("" when invalid): equal behaviour,
    # equal fitness on any networks of these; a monotone transform of a program behaves as the program does

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def rank(self) -> tuple[int, float]:
        """What selection compares: a valid full evaluation beats any screened one, then fitness."""
        return (1 if self.stage == "full" and self.fitness > FLOOR else 0, self.fitness)


def correlate(scores: Sequence[float], acc: Sequence[float], metric: str) -> float:
    s, a = np.asarray(scores, float), np.asarray(acc, float)
    if len(s) < 2 or not np.isfinite(s).all() or np.ptp(s) == 0:
        return math.nan
    r = sps.kendalltau(s, a).statistic if metric == "kendall" else sps.spearmanr(s, a).statistic
    return float(r)


def combine(correlations: dict[str, float], how: str, orientation: int | None = None) -> Evaluation:
    """Orient (by the sign of the correlations' sum, unless ``orientation`` is given), then combine by min
    or mean; FLOOR if any is NaN."""
    values = list(correlations.values())
    if not values or any(math.isnan(v) for v in values):
        if orientation is None:
            return Evaluation(FLOOR, 1, correlations)
        return Evaluation(FLOOR, orientation, {k: orientation * v for k, v in correlations.items()})
    if orientation is None:
        orientation = -1 if math.fsum(values) < 0 else 1
    oriented = {k: orientation * v for k, v in correlations.items()}
    fit = min(oriented.values()) if how == "min" else math.fsum(oriented.values()) / len(oriented)
    return Evaluation(fit, orientation, oriented)


# ---------------------------------------------------------------------------------------------- values
class ValueCache:
    """Network-level values on disk: one JSON file per network, ``{sub-program or feature: value}``, where a
    string value is the reason the sub-program is not defined there. Files are written atomically and
    merged with what is on disk (another run may share the folder); a corrupt file is an error naming it."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._memory: dict[str, dict[str, float | str]] = {}
        self._dirty: set[str] = set()

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, float | str]:
        if key not in self._memory:
            self._memory[key] = self._read(key)
        return self._memory[key]

    def update(self, key: str, values: dict[str, float | str]) -> None:
        self.get(key).update(values)
        self._dirty.add(key)

    def flush(self) -> None:
        for key in sorted(self._dirty):
            merged = {**self._read(key), **self._memory[key]}
            with atomic_open(self.path(key)) as f:
                json.dump({"key": key, "values": merged}, f)
            self._memory[key] = merged
        self._dirty.clear()

    def _read(self, key: str) -> dict[str, float | str]:
        path = self.path(key)
        if not path.is_file():
            return {}
        try:
            blob = json.loads(path.read_text())
            if blob["key"] != key or not isinstance(blob["values"], dict):
                raise ValueError(f"holds key {blob['key']}")
            return {k: v if isinstance(v, str) else float(v) for k, v in blob["values"].items()}
        except Exception as exc:  # noqa: BLE001 - truncated, corrupt or foreign: never use it
            raise DataError(f"value cache file {path} is unreadable ({exc}); delete it to recompute") from None


@dataclass(frozen=True)
class DataHandle:
    """What a worker needs to rebuild a run's FitnessData: small, picklable, hashable."""

    config: FitnessConfig
    data_root: str


_OPEN: OrderedDict[DataHandle, "FitnessData"] = OrderedDict()  # this process's recent FitnessData


def open_data(handle: DataHandle) -> "FitnessData":
    data = _OPEN.get(handle)
    return data if data is not None else FitnessData(handle.config, None, Path(handle.data_root))


class FitnessData:
    """The tasks' splits and the values of programs on their networks."""

    def __init__(self, config: FitnessConfig, cache: ValueCache | None, data_root: Path):
        self.config, self.cache, self.data_root = config, cache, Path(data_root)
        self.handle = DataHandle(config, str(self.data_root))
        self.collector = CollectorConfig(signal=config.signal, dtype=config.dtype, noise_seed=config.pool_seed)
        self.tasks = [Task.parse(t) for t in config.tasks]
        self.splits: dict[str, dict[str, list[Arch]]] = {}
        for task in self.tasks:
            space = self._space(task)
            archs = space.load(space.default_benchmark(self.data_root, task.dataset), task.dataset)
            need = config.selection + config.validation
            if need >= len(archs):
                raise EznasError(f"task {task}: {config.selection} selection + {config.validation} validation "
                                 f"networks asked, the benchmark has {len(archs)} (some must be left for testing)")
            rng = np.random.default_rng([config.pool_seed, zlib.crc32(task.table.encode())])
            order = rng.permutation(len(archs))
            self.splits[str(task)] = {"selection": [archs[i] for i in order[:config.selection]],
                                      "validation": [archs[i] for i in order[config.selection:need]],
                                      "test": [archs[i] for i in order[need:]]}
        self._by_uid = {(t, a.uid): a for t, s in self.splits.items() for archs in s.values() for a in archs}
        self._batches: dict[str, BatchSource] = {}
        self._keys: dict[tuple[str, str], str] = {}
        _OPEN[self.handle] = self
        while len(_OPEN) > 2:
            _OPEN.popitem(last=False)

    def networks(self, task: str, split: str = "selection", n: int | None = None) -> list[Arch]:
        """The first ``n`` (all: None) networks of ``split`` of ``task``."""
        return self.splits[task][split][:n]

    def arch(self, task: str, uid: str) -> Arch:
        return self._by_uid[(task, uid)]

    def size(self, task: Task) -> tuple[int | None, int | None]:
        """The width and cell count of ``task``'s networks: the task's own, else the fitness config's."""
        c = self.config
        return (c.width if task.width is None else task.width), (c.cells if task.cells is None else task.cells)

    def _space(self, task: Task):
        width, cells = self.size(task)
        return get_space(task.space, SpaceOptions(width=width, cells=cells,
                                                  probe=self.config.probe if has_probes(task.space) else None))

    def key(self, task: Task, arch: Arch) -> str:
        """The network's value-cache key: everything that changes its numbers, not which names are read."""
        found = self._keys.get((str(task), arch.uid))  # per task: one uid is a cell of every dataset's table
        if found is None:
            found = self._keys[(str(task), arch.uid)] = self._key(task, arch)
        return found

    def _key(self, task: Task, arch: Arch) -> str:
        c, (width, cells) = self.config, self.size(task)
        return stats_key(kind="values", values_version=VALUES_VERSION, collector_version=COLLECTOR_VERSION,
                         space=task.space, width=width, cells=cells, arch=arch.spec, dataset=task.dataset,
                         network=self._space(task).tag,  # DARTS: which network of the genotype (its probe)
                         batch_seed=c.pool_seed, batch_size=c.batch_size, init="default",
                         init_seed=arch_seed(c.pool_seed, arch.uid),
                         collector={k: v for k, v in asdict(self.collector).items() if k != "names"})

    def compute(self, task: Task, arch: Arch, values: Sequence[str], features: bool) -> dict[str, float | str]:
        """Build the network, compute ``values`` (aggregated sub-programs and proxy terminals) and, if
        asked, its features, on one torch thread (the numbers do not depend on where they are computed).
        The proxy terminals come first, on the freshly built network (each proxy at its defaults, seeded by
        the network's seed as verify_scores seeds it); then the statistics the aggregates read."""
        batches = self._batches.get(task.dataset)
        if batches is None:
            batches = self._batches[task.dataset] = BatchSource(self.data_root, task.dataset,
                                                                self.config.batch_size, self.config.pool_seed)
        device = resolve_device(self.config.device)
        terminals = [v for v in values if v.startswith(PROXY_PREFIX)]
        aggregates = [v for v in values if not v.startswith(PROXY_PREFIX)]
        programs = [_parse(a) for a in aggregates]
        names = tuple(sorted(set().union(*(p.terminals for p in programs)))) if programs else ()
        with torch_threads(1):
            net = build_network(self._space(task), arch, batches.spec.num_classes, self.config.pool_seed,
                                device=device)
            batch = batches.batch().to(device)
            out = proxy_values(Probe(net, batch, seed=arch_seed(self.config.pool_seed, arch.uid), arch=arch),
                               terminals) if terminals else {}
            if not programs:
                return {**out, **(network_features(net, batch.x, len(find_units(net, batch.x))) if features else {})}
            stats = collect(net, batch, CollectorConfig(**{**asdict(self.collector), "names": names}), features)
            return {**out, **values_of(stats, aggregates, features)}

    # ------------------------------------------------------------------------------------ on the driver
    def ensure(self, aggregates: Iterable[str], networks: dict[str, list[Arch]], mapper: Mapper | None = None,
               tick: Callable[[int], Callable[[], None]] | None = None) -> None:
        """Compute (a task per network) every value of ``aggregates`` (aggregated sub-programs and proxy
        terminals: ``Program.values()``) and the features that the cache lacks on ``networks``
        ({task: archs}), then write the cache."""
        aggregates = list(dict.fromkeys(aggregates))
        items = []
        for task, archs in networks.items():
            for arch in archs:
                have = self.cache.get(self.key(Task.parse(task), arch))
                missing = tuple(a for a in aggregates if a not in have)
                need_features = any(f not in have for f in FEATURES)
                if missing or need_features:
                    items.append((self.handle, task, arch.uid, missing, need_features))
        if not items:
            return
        step = tick(len(items)) if tick else None
        for start in range(0, len(items), FLUSH_EVERY):  # written as it goes: a stopped run keeps what it computed
            chunk = items[start:start + FLUSH_EVERY]
            for (_, task, uid, _, _), values in zip(chunk, (mapper or Mapper()).map(value_task, chunk, tick=step)):
                self.cache.update(self.key(Task.parse(task), self.arch(task, uid)), values)
            self.cache.flush()

    def table(self, networks: dict[str, list[Arch]]) -> dict[str, list[dict[str, float | str]]]:
        """The cached values of each network, {task: [values per arch]}."""
        return {t: [self.cache.get(self.key(Task.parse(t), a)) for a in archs] for t, archs in networks.items()}


def values_of(stats: NetworkStats, aggregates: Sequence[str], features: bool) -> dict[str, float | str]:
    """The aggregates' values on one network's statistics (a string: the reason one is not defined there),
    sharing each unit's subtree results between them; plus the network's features if asked."""
    caches: list[dict] = [{} for _ in stats.units]
    out: dict[str, float | str] = dict(stats.features) if features else {}
    for text in aggregates:
        try:
            out[text] = _parse(text).aggregate(0, stats.units, caches)
        except ProgramFailure as exc:
            out[text] = str(exc)
    return out


def value_task(item: tuple[DataHandle, str, str, tuple[str, ...], bool]) -> dict[str, float | str]:
    """Task: the values of some aggregated sub-programs and proxy terminals (and the features) on one network."""
    handle, task, uid, aggregates, features = item
    data = open_data(handle)
    return data.compute(Task.parse(task), data.arch(task, uid), aggregates, features)


@lru_cache(maxsize=16384)
def _parse(text: str) -> Program:
    return parse_program(text)


def program_scores(programs: Sequence[Program], data: FitnessData, networks: dict[str, list[Arch]],
                   mapper: Mapper | None = None, tick: Callable[[int], Callable[[], None]] | None = None
                   ) -> list[tuple[dict[str, list[float]], Counter]]:
    """Each program's scores on ``networks`` ({task: archs}; NaN where not defined) and its failures by
    reason; values missing from the cache are computed first."""
    data.ensure([v for p in programs for v in p.values()], networks, mapper, tick)
    table = data.table(networks)
    uses = Counter(k for p in programs for k in set(p.subtrees))
    shared = {t: dict.fromkeys((k for k, n in uses.items() if n > 1), None) for t in table}  # blends' parts
    out = []
    for program in programs:
        failures: Counter[str] = Counter()
        scores: dict[str, list[float]] = {}
        for task, rows in table.items():  # a task's networks are the pool of a pool program
            scored = program.table_scores(rows, shared[task])
            failures.update(s for s in scored if isinstance(s, str))
            scores[task] = [math.nan if isinstance(s, str) else s for s in scored]
        out.append((scores, failures))
    return out


def evaluate_on(programs: Sequence[Program], data: FitnessData, networks: dict[str, list[Arch]],
                mapper: Mapper | None = None, stage: str = "full") -> list[Evaluation]:
    """Each program's fitness on ``networks`` ({task: archs})."""
    return evaluations(program_scores(programs, data, networks, mapper), data.config, networks, stage)


def evaluations(scored: Sequence[tuple[dict[str, list[float]], Counter]], config: FitnessConfig,
                networks: dict[str, list[Arch]], stage: str = "full") -> list[Evaluation]:
    """The fitness of each of ``program_scores``' results on ``networks``."""
    accuracy = {t: [a.accuracy for a in archs] for t, archs in networks.items()}
    results = []
    for scores, failures in scored:
        ev = combine({t: correlate(s, accuracy[t], config.metric) for t, s in scores.items()}, config.combine)
        ev.stage, ev.networks, ev.failures = stage, min(len(a) for a in networks.values()), dict(failures)
        ev.behaviour = behaviour(scores, ev.orientation) if ev.fitness > FLOOR else ""
        results.append(ev)
    return results


def behaviour(scores: dict[str, list[float]], orientation: int) -> str:
    """A hash of how the oriented scores rank each task's networks (ties kept as ties)."""
    ranks = [sps.rankdata(orientation * np.asarray(s, float), method="dense").astype(np.int32).tobytes()
             for _, s in sorted(scores.items())]
    return hashlib.sha1(b"|".join(ranks)).hexdigest()[:16]


def race(fresh: Sequence[Program], data: FitnessData, mapper: Mapper | None, known: set[str], bar: float,
         waiting: dict[str, Evaluation], promote: bool = True, always: frozenset[str] = frozenset()
         ) -> dict[str, Evaluation]:
    """Racing on the selection networks; returns the new evaluations by program string.

    A fresh program whose aggregates are all in ``known`` (the aggregates this run has measured on every
    selection network), or whose text is in ``always`` (the seed programs in generation 0: a 20-network
    screen dropped the MeCo seed), is evaluated on all of them at once; the others on the screening
    networks. If
    ``promote``, the ``promote`` best by screening fitness among those and the ``waiting`` ones (screened
    earlier, not promoted yet) whose screening fitness reaches ``bar - promote_margin`` (the run's bar: its
    elites' worst full fitness) are evaluated on all selection networks, and their aggregates join
    ``known``. What the value cache holds never changes a result, only how fast it comes."""
    c = data.config
    full = {str(t): data.networks(str(t), "selection") for t in data.tasks}
    screen = {str(t): data.networks(str(t), "selection", c.screen) for t in data.tasks}
    by_text = {str(p): p for p in fresh}
    ready = [t for t, p in by_text.items() if t in always or all(v in known for v in p.values())]
    racing = [t for t in by_text if t not in ready]
    start = time.perf_counter()
    out = dict(zip(racing, evaluate_on([by_text[t] for t in racing], data, screen, mapper, "screen")))
    screened = time.perf_counter() - start
    promoted: list[str] = []
    if promote:
        candidates = {**waiting, **{t: out[t] for t in racing}}
        passing = [t for t, ev in candidates.items() if FLOOR < ev.fitness and ev.fitness >= bar - c.promote_margin]
        promoted = sorted(passing, key=lambda t: candidates[t].fitness, reverse=True)[:c.promote]
    finals = ready + promoted
    programs = [by_text.get(t) or _parse(t) for t in finals]
    out.update(zip(finals, evaluate_on(programs, data, full, mapper)))
    known.update(v for p in programs for v in p.values())
    log.info("racing: %d programs screened on %d networks per task (%.0f s); %s; %d known: full evaluations on "
             "%d per task (%.0f s)", len(racing), c.screen, screened,
             f"{len(promoted)} promoted ({sum(t in waiting for t in promoted)} waiting from before)" if promote
             else "no promotion this generation", len(ready), c.selection, time.perf_counter() - start - screened)
    return out


def evaluate_programs(programs: Sequence[Program], data: FitnessData, mapper: Mapper | None = None,
                      known: set[str] | None = None, bar: float = -math.inf) -> list[Evaluation]:
    """Fitness on the selection networks by racing (see ``race``), for one batch of programs."""
    out = race(programs, data, mapper, set() if known is None else known, bar, {})
    return [out[str(p)] for p in programs]
