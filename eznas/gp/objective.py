"""The objective: rank correlation between a program's scores and real accuracies, and racing.

**Racing.** A new program whose aggregates this run has not measured on every selection network is first
scored on the first ``screen`` selection networks of each task; in promotion rounds the ``promote`` best
screened programs (fresh or waiting from earlier rounds) above the run's bar are scored on all of them. An evaluation is ``full`` (all selection networks) or
``screen``; selection ranks full evaluations above screened ones (see ``rank``).

A program's fitness: for each task, Kendall tau (or Spearman) between its scores and the accuracies; the
tasks are combined by ``min`` (default) or ``mean`` after orienting the program: a program whose
correlations sum to < 0 is negated (its exported form too). ``margin``: the worst task's margin over the
best reference there (the seed programs and the proxy terminals alone, ``FitnessData.references``, on the same
networks), so that a task where every signal is weak (a low ceiling) does not alone decide the fitness. A
program not defined on some network (the reasons are counted), or constant over a task, gets FLOOR.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
from scipy import stats as sps

from eznas.gp.config import FitnessConfig
from eznas.gp.program import Program
from eznas.gp.values import FitnessData, cached_program
from eznas.parallel import Mapper
from eznas.spaces import Arch

log = logging.getLogger(__name__)

FLOOR = -1.0  # the fitness of an invalid program (not defined on a network, or constant scores)


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


MARGIN_FLOOR = FLOOR + 1e-3  # the lowest fitness of a valid program by margin (its margins reach -2)


def combine(correlations: dict[str, float], how: str, orientation: int | None = None,
            marks: dict[str, float] | None = None) -> Evaluation:
    """Orient (by the sign of the correlations' sum, unless ``orientation`` is given), then combine by min
    or mean, or by ``margin``: the least of each task's correlation minus its mark (``marks``, the best
    reference's there; 0 where none), at least MARGIN_FLOOR; FLOOR if any is NaN."""
    values = list(correlations.values())
    if not values or any(math.isnan(v) for v in values):
        if orientation is None:
            return Evaluation(FLOOR, 1, correlations)
        return Evaluation(FLOOR, orientation, {k: orientation * v for k, v in correlations.items()})
    if orientation is None:
        orientation = -1 if math.fsum(values) < 0 else 1
    oriented = {k: orientation * v for k, v in correlations.items()}
    if how == "margin":
        fit = max(MARGIN_FLOOR, min(v - (marks or {}).get(k, 0.0) for k, v in oriented.items()))
    else:
        fit = min(oriented.values()) if how == "min" else math.fsum(oriented.values()) / len(oriented)
    return Evaluation(fit, orientation, oriented)


def reference_marks(scores: Iterable[dict[str, list[float]]], config: FitnessConfig,
                    networks: dict[str, list[Arch]]) -> dict[str, float] | None:
    """With fitness combined by margin, each task's best correlation among the references' (``scores``: their
    scores on ``networks``, by task), each reference in its own orientation (the sign of its correlations'
    sum): what ``margin`` measures against; a reference undefined on a task is not counted there. None for
    the other ways to combine tasks."""
    if config.combine != "margin":
        return None
    accuracy = {t: [a.accuracy for a in archs] for t, archs in networks.items()}
    best: dict[str, float] = {}
    for by_task in scores:
        found = {t: correlate(s, accuracy[t], config.metric) for t, s in by_task.items()}
        sign = -1 if math.fsum(v for v in found.values() if math.isfinite(v)) < 0 else 1
        for task, v in found.items():
            if math.isfinite(v):
                best[task] = max(best.get(task, -math.inf), sign * v)
    return best


def marks_on(data: FitnessData, networks: dict[str, list[Arch]], mapper: Mapper | None = None
             ) -> dict[str, float] | None:
    """The references' marks on ``networks`` when fitness is combined by margin (None otherwise), computed once
    per set of networks."""
    if data.config.combine != "margin":
        return None
    key = tuple((t, tuple(a.uid for a in archs)) for t, archs in sorted(networks.items()))
    if key not in data.marks:
        scored = program_scores([cached_program(t) for t in data.references], data, networks, mapper)
        data.marks[key] = reference_marks((scores for scores, _ in scored), data.config, networks)
    return data.marks[key]


def program_scores(programs: Sequence[Program], data: FitnessData, networks: dict[str, list[Arch]],
                   mapper: Mapper | None = None, tick: Callable[[int], Callable[[], None]] | None = None
                   ) -> list[tuple[dict[str, list[float]], Counter]]:
    """Each program's scores on ``networks`` ({task: archs}; NaN where not defined) and its failures by
    reason; values missing from the cache are computed first."""
    with data.profile.phase("objective"):
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
    with data.profile.phase("objective"):
        marks = marks_on(data, networks, mapper)
        return evaluations(program_scores(programs, data, networks, mapper), data.config, networks, stage, marks)


def evaluations(scored: Sequence[tuple[dict[str, list[float]], Counter]], config: FitnessConfig,
                networks: dict[str, list[Arch]], stage: str = "full", marks: dict[str, float] | None = None
                ) -> list[Evaluation]:
    """The fitness of each of ``program_scores``' results on ``networks`` (``marks``: see ``combine``)."""
    accuracy = {t: [a.accuracy for a in archs] for t, archs in networks.items()}
    results = []
    for scores, failures in scored:
        ev = combine({t: correlate(s, accuracy[t], config.metric) for t, s in scores.items()}, config.combine,
                     marks=marks)
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
    full, screen = data.split("selection"), data.split("selection", c.screen)
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
    programs = [by_text.get(t) or cached_program(t) for t in finals]
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
