"""A program's values: the tasks' splits of networks and the numbers programs read on them.

**Splits.** Each task (a space and a dataset) splits its benchmark once, by the *pool seed* (never the GP
seed, so runs with different GP seeds share their networks and cached values): ``selection`` networks
(fitness), then ``validation`` networks (choose the hall of fame's winner), and the rest, *test*
(reported only, never read during the run). With ``fitness.validation_tasks`` the winner is chosen on those
tasks' validation networks alone: tasks whose networks selection never reads.

**Values, not tensors.** A network's statistics are collected when a value needs them (a task per
network, only the names needed, then dropped); what is kept is one float per (network, aggregated
sub-program) and per (network, feature) in a :class:`ValueCache` on disk. A program's score on a network
is network-level arithmetic on those floats, done on the driver (gp/objective.py); so a program that
recombines known aggregates costs nothing, and an aggregate is computed once per network for every program,
generation and run that uses it.
"""
from __future__ import annotations

import json
import logging
import time
import zlib
from collections import OrderedDict
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from eznas.data import BatchSource
from eznas.errors import DataError, EznasError
from eznas.features import FEATURES, network_features
from eznas.gp.as_proxy import terminal_calls, terminal_error, terminal_value
from eznas.gp.config import FitnessConfig, Task
from eznas.gp.profile import BUSY, WAITING, Laps, Profile
from eznas.gp.parse import parse_program
from eznas.gp.program import Program
from eznas.gp.pset import PROXY_PREFIX
from eznas.io import atomic_open
from eznas.networks import arch_seed, resolve_device
from eznas.parallel import Mapper, torch_threads
from eznas.primitives.aggregate import ProgramFailure
from eznas.scoring import score_arch
from eznas.spaces import Arch, SpaceOptions, get_space, space_class
from eznas.stats.collector import COLLECTOR_VERSION, CollectorConfig, NetworkStats, collect, stats_key
from eznas.stats.units import find_units

log = logging.getLogger(__name__)

FLUSH_EVERY = 64  # networks whose new values ensure() writes to the value cache at a time
VALUES_VERSION = 3  # bump when a primitive's or a proxy terminal's numbers change: cached values then no
# longer apply (2: az_expressivity and az_progressivity are finite on archs with a zero feature; 3: the key
# memo was per space, so a cell in two tasks of one space (NB-201 CIFAR-10 and CIFAR-100) could be stored and
# read under the task asked first)
SPLITS = ("selection", "validation", "test")


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
    """The tasks' splits and the values of programs on their networks; ``profile`` times the driver's work
    on them (a run's, gp/profile.py)."""

    def __init__(self, config: FitnessConfig, cache: ValueCache | None, data_root: Path,
                 profile: Profile | None = None):
        self.config, self.cache, self.data_root = config, cache, Path(data_root)
        self.profile = profile or Profile()
        self.handle = DataHandle(config, str(self.data_root))
        self.collector = CollectorConfig(signal=config.signal, dtype=config.dtype, noise_seed=config.pool_seed)
        self.tasks = [Task.parse(t) for t in config.tasks]  # selection's (and the test's)
        self.validation_tasks = [Task.parse(t) for t in config.validation_tasks] or self.tasks  # the winner's
        self.splits: dict[str, dict[str, list[Arch]]] = {}
        for task in dict.fromkeys([*self.tasks, *self.validation_tasks]):
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
        self.references: tuple[str, ...] = ()  # the programs fitness by margin measures against (set by the run)
        self.marks: dict[tuple, dict[str, float]] = {}  # their best correlation per task, by set of networks
        _OPEN[self.handle] = self
        while len(_OPEN) > 2:
            _OPEN.popitem(last=False)

    def networks(self, task: str, split: str = "selection", n: int | None = None) -> list[Arch]:
        """The first ``n`` (all: None) networks of ``split`` of ``task``."""
        return self.splits[task][split][:n]

    def split(self, split: str = "selection", n: int | None = None) -> dict[str, list[Arch]]:
        """Every task's first ``n`` (all: None) networks of ``split``, {task: archs}: for ``validation`` the
        tasks that choose the winner (``fitness.validation_tasks``, else the tasks themselves)."""
        tasks = self.validation_tasks if split == "validation" else self.tasks
        return {str(t): self.networks(str(t), split, n) for t in tasks}

    def arch(self, task: str, uid: str) -> Arch:
        return self._by_uid[(task, uid)]

    def size(self, task: Task) -> tuple[int | None, int | None]:
        """The width and cell count of ``task``'s networks: the task's own, else the fitness config's."""
        c = self.config
        return (c.width if task.width is None else task.width), (c.cells if task.cells is None else task.cells)

    def _space(self, task: Task):
        width, cells = self.size(task)
        probe = self.config.probe if space_class(task.space).has_probes() else None
        return get_space(task.space, SpaceOptions(width=width, cells=cells, probe=probe))

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

    def compute(self, task: Task, arch: Arch, values: Sequence[str], features: bool,
                timings: dict[str, float] | None = None) -> dict[str, float | str]:
        """Build the network, compute ``values`` (aggregated sub-programs and proxy terminals) and, if
        asked, its features, on one torch thread (the numbers do not depend on where they are computed).
        The proxy terminals come first, on the freshly built network (each proxy at its defaults, seeded by
        the network's seed as verify_scores seeds it); then the statistics the aggregates read. ``timings``,
        given, receives the seconds of ``build`` (network and batch), the proxies' shared pass and each proxy
        terminal, ``statistics`` (with the features, when aggregates are asked too), ``aggregates`` and
        ``features``."""
        batches = self._batches.get(task.dataset)
        if batches is None:
            batches = self._batches[task.dataset] = BatchSource(self.data_root, task.dataset,
                                                                self.config.batch_size, self.config.pool_seed)
        terminals = [v for v in values if v.startswith(PROXY_PREFIX)]
        aggregates = [v for v in values if not v.startswith(PROXY_PREFIX)]
        programs = [cached_program(a) for a in aggregates]
        names = tuple(sorted(set().union(*(p.terminals for p in programs)))) if programs else ()
        with torch_threads(1):
            scored = score_arch(self._space(task), arch, terminal_calls(terminals), batches,
                                seed=self.config.pool_seed, device=resolve_device(self.config.device), keep=True,
                                failure=terminal_error)
            out = {t: scored.errors.get(t) or terminal_value(t, scored.scores[t]) for t in terminals}
            steps = scored.steps  # the profile's names: the proxies' pass, when there are proxy terminals
            blocks = {"build": steps["build"], **({"proxy pass": steps["shared pass"]} if terminals else {}),
                      **{t: steps[t] for t in terminals}}
            for name, seconds in blocks.items() if timings is not None else ():
                timings[name] = timings.get(name, 0.0) + seconds
            net, batch = scored.probe.net, scored.probe.batch
            del scored  # the proxies' pass results (gradients, kernels) go before the statistics are collected
            laps = Laps(timings)
            if not programs:
                found = network_features(net, batch.x, len(find_units(net, batch.x))) if features else {}
                laps.lap("features")
                return {**out, **found}
            stats = collect(net, batch, CollectorConfig(**{**asdict(self.collector), "names": names}), features)
            laps.lap("statistics")
            found = values_of(stats, aggregates, features)
            laps.lap("aggregates")
            return {**out, **found}

    # ------------------------------------------------------------------------------------ on the driver
    def ensure(self, aggregates: Iterable[str], networks: dict[str, list[Arch]], mapper: Mapper | None = None,
               tick: Callable[[int], Callable[[], None]] | None = None) -> None:
        """Compute (a task per network) every value of ``aggregates`` (aggregated sub-programs and proxy
        terminals: ``Program.values()``) and the features that the cache lacks on ``networks``
        ({task: archs}), then write the cache; the profile gets each task's timings."""
        profile = self.profile
        with profile.phase("value cache"):
            aggregates = list(dict.fromkeys(aggregates))
            items = []
            for task, archs in networks.items():
                for arch in archs:
                    have = self.cache.get(self.key(Task.parse(task), arch))
                    missing = tuple(a for a in aggregates if a not in have)
                    need_features = any(f not in have for f in FEATURES)
                    if missing or need_features:
                        items.append((self.handle, task, arch.uid, missing, need_features))
            profile.looked_up += sum(len(archs) for archs in networks.values()) - len(items)
        if not items:
            return
        step = tick(len(items)) if tick else None
        for start in range(0, len(items), FLUSH_EVERY):  # written as it goes: a stopped run keeps what it computed
            chunk = items[start:start + FLUSH_EVERY]
            with profile.phase(WAITING):
                results = (mapper or Mapper()).map(value_task, chunk, tick=step)
            with profile.phase("value cache"):
                for (_, task, uid, _, _), (values, timings) in zip(chunk, results):
                    self.cache.update(self.key(Task.parse(task), self.arch(task, uid)), values)
                    profile.add_task(timings)
                self.cache.flush()

    def table(self, networks: dict[str, list[Arch]]) -> dict[str, list[dict[str, float | str]]]:
        """The cached values of each network, {task: [values per arch]}."""
        with self.profile.phase("value cache"):
            return {t: [self.cache.get(self.key(Task.parse(t), a)) for a in archs] for t, archs in networks.items()}


def values_of(stats: NetworkStats, aggregates: Sequence[str], features: bool) -> dict[str, float | str]:
    """The aggregates' values on one network's statistics (a string: the reason one is not defined there),
    sharing each unit's subtree results between them; plus the network's features if asked."""
    caches: list[dict] = [{} for _ in stats.units]
    out: dict[str, float | str] = dict(stats.features) if features else {}
    for text in aggregates:
        try:
            out[text] = cached_program(text).aggregate(0, stats.units, caches)
        except ProgramFailure as exc:
            out[text] = str(exc)
    return out


def value_task(item: tuple[DataHandle, str, str, tuple[str, ...], bool]
               ) -> tuple[dict[str, float | str], dict[str, float]]:
    """Task: the values of some aggregated sub-programs and proxy terminals (and the features) on one network,
    and beside them the seconds of its blocks (``compute``'s; ``open data``; ``total``, the whole task)."""
    start = time.perf_counter()
    handle, task, uid, aggregates, features = item
    data = open_data(handle)
    timings = {"open data": time.perf_counter() - start}
    values = data.compute(Task.parse(task), data.arch(task, uid), aggregates, features, timings)
    timings[BUSY] = time.perf_counter() - start
    return values, timings


@lru_cache(maxsize=16384)
def cached_program(text: str) -> Program:
    return parse_program(text)
