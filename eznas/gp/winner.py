"""The run's winner and what is new: the hall of fame (with winner "novel", beside the run's fittest new
programs) ranked on the validation networks, the references a new program must differ from, and novelty
(``most_similar``: per-network |Spearman| with each reference), which also keeps the run's novel elites;
and the parts of the run's blends (``blend_parts``, ``log_spread``)."""
from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.stats as sps
from deap import gp

from eznas.gp.checkpoint import State, describe, distinct, individual
from eznas.gp.config import EvolutionConfig
from eznas.gp.objective import FLOOR, Evaluation, combine, evaluations, program_scores, reference_marks
from eznas.gp.operators import Individual
from eznas.gp.parse import parse_program
from eznas.gp.program import Program
from eznas.gp.pset import PROXY_PREFIX
from eznas.gp.seeds import SEEDS
from eznas.gp.values import FitnessData
from eznas.io import write_json
from eznas.parallel import Mapper
from eznas.proxies import list_proxies

log = logging.getLogger(__name__)
NOVEL = 0.95  # per-network |Spearman| with every reference below which a program counts as new (bench_discovery's)
NEW_IN_RUN = 0.93  # ... and in the run, on the selection networks (novel elites; new programs validated, too):
# below NOVEL with room, as a program's per-network Spearman moves on other networks (seed 0 of a run with a bar
# of 0.95: the 10 programs validated from under 0.95 on the selection networks were at 0.951-0.966 on the
# validation ones, none new there)
NOVEL_MARGIN = 0.05  # winner "novel": a new program wins only within this much validation fitness of the best


class Judge:
    """Validates a run's programs and tells which are new, for the run of ``cfg`` (its folder ``out``, its
    data, mapper and primitive set); the references' scores on the selection networks are kept."""

    def __init__(self, cfg: EvolutionConfig, out: Path, data: FitnessData, mapper: Mapper,
                 pset: gp.PrimitiveSetTyped):
        self.cfg, self.out, self.data, self.mapper, self.pset = cfg, Path(out), data, mapper, pset
        self._selection_references: dict[str, dict[str, list[float]]] | None = None

    def validate(self, state: State) -> list[dict]:
        """The hall of fame on the validation networks (disjoint from selection and test), best first,
        into hall_of_fame.json: the first is the run's winner. ``fitness`` stays the selection fitness;
        ``validation_fitness`` and ``validation_per_task`` are added, measured with the orientation
        chosen on the selection networks. With ``winner = "novel"`` the run's fittest new programs
        (``novel_programs``) are validated beside the hall of fame, which the seeds' variants may fill."""
        candidates = list(state.hall_of_fame)
        if self.cfg.winner == "novel":
            candidates += self.novel_programs(state, {str(ind) for ind in candidates})
        programs = [Program(gp.PrimitiveTree(ind)) for ind in candidates]
        networks = self.data.split("validation")
        scored = program_scores(programs, self.data, networks, self.mapper)
        reference_scores = self.reference_scores(networks)
        marks = reference_marks(reference_scores.values(), self.data.config, networks)
        self.write_references(reference_scores, networks, marks)
        evals = evaluations(scored, self.data.config, networks, marks=marks)
        rows = []
        for i, (ind, ev, (scores, _)) in enumerate(zip(candidates, evals, scored)):
            chosen = state.memo[str(ind)]
            valid = combine({t: v * ev.orientation for t, v in ev.per_task.items()}, self.cfg.fitness.combine,
                            chosen.orientation, marks)
            similar = most_similar(scores, reference_scores)
            rows.append({**describe(ind, chosen), "validation_fitness": valid.fitness,
                         "validation_per_task": valid.per_task, "validation_failures": ev.failures,
                         "most_similar": similar, "novel": similar is None or similar["spearman"] < NOVEL,
                         "hall_of_fame": i < len(state.hall_of_fame)})
        # stable: ties keep the hall of fame's order; "novel": the new programs first, unless the best of them
        # trails the best program by more than NOVEL_MARGIN (a new but poor program is no discovery)
        best = max(r["validation_fitness"] for r in rows)
        novel = self.cfg.winner == "novel" and any(r["novel"] and r["validation_fitness"] >= best - NOVEL_MARGIN
                                                   for r in rows)
        rows.sort(key=lambda r: (novel and r["novel"], r["validation_fitness"]), reverse=True)
        if self.cfg.winner == "novel" and not novel:
            log.warning("winner novel: no program validated is new on the validation networks within %.2f of the "
                        "best one's fitness; the best one is exported", NOVEL_MARGIN)
        write_json(self.out / "hall_of_fame.json", rows)
        log.info("hall of fame on the validation networks: winner %.4f %s", rows[0]["validation_fitness"],
                 rows[0]["exported"])
        return rows

    def write_references(self, scores: dict[str, dict[str, list[float]]], networks: dict[str, list],
                         marks: dict[str, float] | None = None) -> None:
        """references.json: each reference's fitness on the validation networks (its own orientation; by
        margin, against ``marks``), what a winner is compared with there; the best reference per task is
        logged."""
        refs = references(self.cfg)
        evals = evaluations([(s, Counter()) for s in scores.values()], self.data.config, networks, marks=marks)
        rows = [{"reference": name, "program": refs[name], "validation_fitness": ev.fitness,
                 "validation_per_task": ev.per_task} for name, ev in zip(scores, evals)]
        write_json(self.out / "references.json", rows)
        def on(task: str):  # a reference undefined there (NaN) is never the best
            return lambda r: v if math.isfinite(v := r["validation_per_task"].get(task, math.nan)) else -math.inf

        for task in networks:
            best = max(rows, key=on(task))
            log.info("validation networks of %s: the best reference is %s (%.4f)", task, best["reference"],
                     best["validation_per_task"][task])

    def novel_programs(self, state: State, exclude: set[str]) -> list[Individual]:
        """The ``hall_of_fame`` fittest fully evaluated programs of distinct behaviour, not in ``exclude``,
        that are new on the selection networks (``new_programs``: below NOVEL), and with novel elites as many
        below NEW_IN_RUN, the bar they were kept by (new with room: the fittest below NOVEL may all sit at its
        edge, and be equivalent to a reference on the validation networks); the fittest first."""
        full = [t for t in sorted(state.memo, key=lambda t: state.memo[t].rank, reverse=True)
                if state.memo[t].rank[0] and t not in exclude]
        ranked = distinct([individual(t, state.memo, self.pset) for t in full], state.memo)
        bars = (NOVEL, NEW_IN_RUN) if self.cfg.novel_elites else (NOVEL,)
        found = {str(ind): ind for bar in bars
                 for ind in self.new_programs(ranked, state, self.cfg.hall_of_fame, bar)}
        return sorted(found.values(), key=lambda ind: ind.fitness.values, reverse=True)

    def new_programs(self, ranked: Sequence[Individual], state: State, n: int, bar: float = NEW_IN_RUN,
                     chunk: int = 50) -> list[Individual]:
        """The first ``n`` of ``ranked`` that are fully evaluated and new on the selection networks: per-network
        |Spearman| below ``bar`` with every reference on every task (arithmetic on cached values: every
        aggregate of a full evaluation is known); each program's similarity is kept in ``state.similarity``."""
        found: list[Individual] = []
        ranked = [ind for ind in ranked if state.memo[str(ind)].rank[0]]
        for start in range(0, len(ranked), chunk):
            if len(found) >= n:
                break
            batch = ranked[start:start + chunk]
            if todo := list({str(ind): ind for ind in batch if str(ind) not in state.similarity}.values()):
                networks = self.data.split("selection")
                if self._selection_references is None:
                    self._selection_references = self.reference_scores(networks)
                scored = program_scores([Program(gp.PrimitiveTree(ind)) for ind in todo], self.data, networks,
                                        self.mapper)
                for ind, (scores, _) in zip(todo, scored):
                    similar = most_similar(scores, self._selection_references)
                    state.similarity[str(ind)] = 0.0 if similar is None else similar["spearman"]
            found += [ind for ind in batch if state.similarity[str(ind)] < bar]
        return found[:n]

    def reference_scores(self, networks: dict[str, list]) -> dict[str, dict[str, list[float]]]:
        """Each reference's scores on ``networks`` (by name, then task)."""
        refs = references(self.cfg)
        scored = program_scores([parse_program(t) for t in refs.values()], self.data, networks, self.mapper)
        return {name: scores for name, (scores, _) in zip(refs, scored)}


def references(cfg: EvolutionConfig) -> dict[str, str]:
    """What a new program must differ from (by name: its program text): the seed programs, then the run's
    network terminals that are registered proxies (``params``, ``flops``, the ``zc_<proxy>`` terminals), each
    alone — the seeds and proxies bench_discovery's "equivalent" compares a winner with."""
    refs = {name: SEEDS[name] for name in cfg.seed_programs}
    proxies = set(list_proxies())
    for t in cfg.features:
        if (t in proxies or t.startswith(PROXY_PREFIX)) and t not in refs.values():
            refs[t] = t
    return refs


def most_similar(scores: dict[str, list[float]], others: dict[str, dict[str, list[float]]]) -> dict | None:
    """The one of ``others`` (the references' scores, by name) whose per-network scores agree most with
    ``scores`` (|Spearman|, the largest over tasks, networks where both are defined), with that value and
    task; None without others."""
    best = None
    for name, theirs in others.items():
        for task, ours in scores.items():
            a, b = np.asarray(ours, float), np.asarray(theirs[task], float)
            ok = np.isfinite(a) & np.isfinite(b)
            if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
                continue  # undefined: a constant or nearly no networks
            rho = abs(float(sps.spearmanr(a[ok], b[ok])[0]))
            if best is None or rho > best["spearman"]:
                best = {"reference": name, "spearman": rho, "task": task}
    return best


def blend_parts(memo: dict[str, Evaluation], n: int, always: Sequence[str] = ()) -> list[str]:
    """The parts of the blends: among the full evaluations of distinct behaviour, the best on each task
    (its oriented correlation there: a signal that wins one task is blended even when its minimum over tasks
    is low — the best proxy on DARTS is not the best on NB-201), then the best by fitness up to ``n``, and
    beyond ``n`` the programs in ``always`` that are valid (the run's proxy terminals: signals a user asked
    to combine); ordered by fitness, the fittest first."""
    full = {t: e for t, e in memo.items() if e.stage == "full" and e.fitness > FLOOR}
    by_fitness = sorted(full, key=lambda t: (full[t].fitness, t), reverse=True)
    tasks = sorted({task for e in full.values() for task in e.per_task})
    chosen: dict[str, str] = {}  # behaviour -> program
    for task in tasks:
        best = max(by_fitness, key=lambda t: full[t].per_task[task], default=None)
        if best is not None:
            chosen.setdefault(full[best].behaviour, best)
    for text in by_fitness:
        if len(chosen) >= n:
            break
        chosen.setdefault(full[text].behaviour, text)
    chosen = dict(sorted(chosen.items(), key=lambda kv: (full[kv[1]].fitness, kv[1]), reverse=True)[:n])
    for text in always:
        if text in full:
            chosen.setdefault(full[text].behaviour, text)
    return sorted(chosen.values(), key=lambda t: (full[t].fitness, t), reverse=True)


def log_spread(scores: dict[str, list[float]]) -> float:
    """How widely log |x| of a program's scores spreads over the networks: the mean over tasks of its
    standard deviation (finite values only); 1 where it cannot be measured or is 0 (a constant part)."""
    stds = []
    for values in scores.values():
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(np.abs(np.asarray(values, float)))
        logs = logs[np.isfinite(logs)]
        if len(logs) > 1:
            stds.append(float(np.std(logs)))
    spread = float(np.mean(stds)) if stds else math.nan
    return spread if math.isfinite(spread) and spread > 0 else 1.0
