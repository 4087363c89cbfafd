"""Where a run's time goes (``profile.json`` in the run folder).

On the driver, :meth:`Profile.phase` times coarse blocks with ``time.perf_counter`` and charges each second to
the innermost phase open (so the phases never overlap and their sum is at most the run's wall time) and to the
outermost, the run's *stage* (setup, network features, evolution, validation, test, export). On the workers,
each network's value task times its own blocks (build, the proxies' shared pass, each proxy terminal,
statistics, aggregates, features) and returns them beside its values (``FitnessData.compute``); the driver
sums them here (:meth:`Profile.add_task`). Nothing here changes what a run computes or writes elsewhere."""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from eznas.gp.pset import PROXY_PREFIX
from eznas.io import write_json

PROFILE = "profile.json"
PROFILE_VERSION = 1
WAITING = "waiting on workers"  # the driver's wall time inside the mapper
OTHER = "other"  # the run's wall time outside every phase
BUSY = "total"  # a value task's own wall time, the key beside its phases
GROUPS = {  # what the targets of issue 41 read; a phase belongs to at most one group
    "computing values": (WAITING, "value cache"),
    "fitness arithmetic": ("objective",),
    "GP bookkeeping": ("variation", "selection", "novelty", "blends", "bookkeeping", "checkpoint"),
    "validation, test and export": ("validation", "test", "export"),
}


class Laps:
    """A worker's stopwatch: ``lap(name)`` adds the seconds since the last lap to ``timings[name]``
    (``timings`` None: records nothing; ``name`` None: only restarts)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings, self.mark = timings, time.perf_counter()

    def lap(self, name: str | None = None) -> None:
        now = time.perf_counter()
        if self.timings is not None and name is not None:
            self.timings[name] = self.timings.get(name, 0.0) + now - self.mark
        self.mark = now


class Profile:
    """A run's (or a resumed run's part's) timings: driver phases by stage, worker phases summed over the
    networks computed, and how many networks were computed or answered by the value cache alone."""

    def __init__(self) -> None:
        self.started = self._mark = time.perf_counter()
        self.seconds: defaultdict[tuple[str, str], float] = defaultdict(float)  # (stage, phase) -> exclusive s
        self.worker: defaultdict[str, float] = defaultdict(float)  # worker phase -> seconds over all networks
        self.terminal_networks: Counter[str] = Counter()  # proxy terminal -> networks it was computed on
        self.computed = 0  # value tasks run: a network whose values the cache lacked
        self.looked_up = 0  # network visits the value cache answered alone
        self._stack: list[str] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Charge the block's wall time to ``name`` (minus the phases opened inside it)."""
        self._charge()
        self._stack.append(name)
        try:
            yield
        finally:
            self._charge()
            self._stack.pop()

    def _charge(self) -> None:
        now = time.perf_counter()
        if self._stack:
            self.seconds[(self._stack[0], self._stack[-1])] += now - self._mark
        self._mark = now

    def add_task(self, timings: dict[str, float]) -> None:
        """One network's value task: its phases' seconds and its total (``BUSY``)."""
        self.computed += 1
        for name, seconds in timings.items():
            self.worker[name] += seconds
            if name.startswith(PROXY_PREFIX):
                self.terminal_networks[name] += 1

    # ------------------------------------------------------------------------------------ the report
    def report(self, workers: int, covers: str, resumed_from: int | None = None) -> dict:
        """profile.json's content; ``covers`` says which part of the run it timed."""
        wall = time.perf_counter() - self.started
        phases: defaultdict[str, float] = defaultdict(float)
        stages: defaultdict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for (stage, name), seconds in self.seconds.items():
            phases[name] += seconds
            stages[stage][name] += seconds
        phases[OTHER] = max(0.0, wall - sum(phases.values()))

        def row(seconds: float) -> dict[str, float]:
            return {"seconds": seconds, "share": seconds / wall if wall > 0 else 0.0}

        busy = self.worker.get(BUSY, 0.0)
        waiting = phases.get(WAITING, 0.0)
        own = {k: v for k, v in self.worker.items() if k != BUSY}
        return {
            "version": PROFILE_VERSION, "covers": covers, "resumed": resumed_from is not None,
            "resumed_from_generation": resumed_from, "wall_seconds": wall, "workers": workers,
            "phases": {k: row(v) for k, v in sorted(phases.items(), key=lambda kv: -kv[1])},
            "stages": {s: {**row(sum(p.values())), "phases": dict(sorted(p.items(), key=lambda kv: -kv[1]))}
                       for s, p in stages.items()},
            "groups": {g: {"phases": list(names), **row(sum(phases.get(n, 0.0) for n in names))}
                       for g, names in GROUPS.items()},
            "networks": {"computed": self.computed, "looked_up": self.looked_up},
            "worker_phases": {k: {"seconds": v, "share_of_busy": v / busy if busy > 0 else 0.0,
                                  "per_network": v / self.computed if self.computed else 0.0}
                              for k, v in sorted(own.items(), key=lambda kv: -kv[1])},
            "terminals": {t: {"seconds": self.worker[t], "networks": n, "seconds_per_network": self.worker[t] / n}
                          for t, n in sorted(self.terminal_networks.items())},
            "idle": {"worker_busy_seconds": busy, "capacity_seconds": wall * workers,
                     "idle_share": 1 - busy / (wall * workers) if wall > 0 else 0.0,
                     "waiting_seconds": waiting,
                     "busy_while_waiting": busy / (waiting * workers) if waiting > 0 else None},
        }

    def write(self, folder: Path, workers: int, covers: str, resumed_from: int | None = None) -> dict:
        report = self.report(workers, covers, resumed_from)
        write_json(Path(folder) / PROFILE, report)
        return report


def covers(resumed_from: int | None, generations: int) -> str:
    """What a profile timed: the whole run, or the part a resumed run did (the checkpoint's generation)."""
    if resumed_from is None:
        return "the whole run"
    if resumed_from >= generations:
        return f"the resumed part: validation, test and export (generations 0 to {resumed_from} ran before)"
    return (f"the resumed part: generations {resumed_from + 1} to {generations}, validation, test and export "
            f"(generations 0 to {resumed_from} ran before)")


def summary_line(report: dict, top: int = 5) -> str:
    """Where the time went, in one line: the top driver phases with their shares (the workers' top phases
    inside the wait), the workers' idle share and the networks computed."""
    def pct(share: float) -> str:
        return f"{100 * share:.0f}%"

    parts = []
    for name, row in list(report["phases"].items())[:top]:
        text = f"{name} {pct(row['share'])}"
        if name == WAITING and report["worker_phases"]:
            inner = list(report["worker_phases"].items())[:3]
            text += " (" + ", ".join(f"{k} {pct(v['share_of_busy'])}" for k, v in inner) + " of the workers' time)"
        parts.append(text)
    n = report["networks"]
    return (f"profile of {report['covers']}: {report['wall_seconds']:.1f} s: " + ", ".join(parts)
            + f"; workers idle {pct(report['idle']['idle_share'])}; {n['computed']} networks computed, "
            f"{n['looked_up']} looked up")
