"""The evolution loop: seeded population, varOr offspring, elitism + unique tournaments, hall of fame,
logbook, and an atomic checkpoint every generation (``resume`` continues it exactly); at the end the hall of
fame is ranked on the validation networks, which choose the exported winner."""
from __future__ import annotations

import logging
import math
import pickle
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.stats as sps
from deap import base, gp, tools

from eznas.errors import DataError, EznasError
from eznas.features import FEATURES
from eznas.gp.export import check_exportable
from eznas.gp.fitness import (FLOOR, Evaluation, FitnessConfig, FitnessData, combine, evaluations, program_scores,
                              race)
from eznas.gp.operators import (Individual, cx_join, cx_one_point, gen_half_and_half, limit_height, mut_uniform,
                                sel_tournament_unique, var_blend, var_or)
from eznas.gp.program import Program, parse_program
from eznas.gp.pset import PROXY_PREFIX, language, make_pset, network_terminals
from eznas.gp.seeds import SEEDS
from eznas.io import atomic_open, read_pickle, write_json
from eznas.parallel import Mapper, ParallelConfig
from eznas.proxies import list_proxies
from eznas.stats import NAMES

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 2  # 2: network-level language, (stage, fitness) ranks, validation
WINNERS = ("best", "novel")
NOVEL = 0.95  # per-network |Spearman| with every reference below which a program counts as new (bench_discovery's)
NEW_IN_RUN = 0.93  # ... and in the run, on the selection networks (novel elites; new programs validated, too):
# below NOVEL with room, as a program's per-network Spearman moves on other networks (seed 0 of a run with a bar
# of 0.95: the 10 programs validated from under 0.95 on the selection networks were at 0.951-0.966 on the
# validation ones, none new there)
NOVEL_MARGIN = 0.05  # winner "novel": a new program wins only within this much validation fitness of the best
# the default proxy terminals: with blends, the setting that won the discovery benchmark (README, Discovery)
PROXY_TERMINALS = ("zc_az_expressivity", "zc_az_progressivity", "zc_synflow")


@dataclass(frozen=True)
class EvolutionConfig:
    """EZNAS's settings as defaults (population 50, 50 offspring, tournament 4, cx 0.4, mut 0.4,
    height <= 10, 10 generations), plus elitism and seed programs."""

    population: int = 50
    offspring: int = 50
    generations: int = 10
    tournament: int = 4
    cxpb: float = 0.4
    mutpb: float = 0.4
    joinpb: float = 0.1  # two parents joined under a network-level operation (cx_join), from reproduction's 0.2
    max_height: int = 10
    init_min: int = 2
    init_max: int = 6
    net_depth: int = 2  # new programs use network-level arithmetic only above this depth
    elites: int = 5
    promote_every: int = 2  # promote screened programs in generations 0, 2, 4, ... (keep generations even)
    hall_of_fame: int = 10
    blend_parts: int = 6  # in promotion generations, blend (var_blend) this many distinct full programs (each
    # task's best, then the fittest; and the proxy terminals), 2 and 3 at a time, and let the blend_keep best
    # blends join the offspring (0: no blends)
    blend_keep: int = 2
    novel_elites: int = 5  # each generation also keep this many of the fittest new programs (per-network
    # |Spearman| < NEW_IN_RUN with every reference on every task's selection networks; ``references``) beside the
    # elites (at most population - elites), and blend them: new lineages are refined during the run, not only
    # filtered at its end (0: off; 5 won the discovery benchmark: README Discovery, "Novel elites")
    pool_ops: bool = True  # the language has pool-level ops (net_rank: log(rank / m) among the networks scored
    # together), and blends are rank blends too (AZ-NAS-style weighted sums of log ranks); the exported
    # program is then a pool program where it has one (it scores a pool of networks, as AZ-NAS does)
    winner: str = "novel"  # the exported program: "novel", the best on the validation networks of those not
    # equivalent (per-network Spearman >= NOVEL on a task's validation networks) to a reference (a seed program,
    # or a network terminal that is a registered proxy, alone: ``references``), or "best"
    seed: int = 0
    test_networks: int = 100  # held-out test networks per task on which the top 3 are tested at the end
    seed_programs: tuple[str, ...] = tuple(SEEDS)  # names in eznas.gp.seeds.SEEDS
    terminals: tuple[str, ...] = NAMES
    features: tuple[str, ...] = FEATURES + PROXY_TERMINALS  # network-level terminals: features, zc_<proxy> ones
    fitness: FitnessConfig = field(default_factory=FitnessConfig)
    # where, not what (free to change on resume): two local worker processes, this machine's two cores
    parallel: ParallelConfig = field(default_factory=lambda: ParallelConfig("loky", workers=2))

    def __post_init__(self) -> None:
        valid = network_terminals()
        if unknown := [f for f in self.features if f not in valid]:
            raise EznasError(f"features: unknown network terminal {unknown[0]!r}; valid: {', '.join(valid)}")
        check_exportable(t for t in self.features if t.startswith(PROXY_PREFIX))  # best_proxy.py carries them
        if self.winner not in WINNERS:
            raise EznasError(f"winner must be one of {', '.join(WINNERS)}, got {self.winner!r}")
        if self.novel_elites < 0:
            raise EznasError(f"novel_elites must be >= 0, got {self.novel_elites}")
        if self.blend_parts < 0 or self.blend_parts == 1 or self.blend_keep < 0:
            raise EznasError(f"blend_parts must be 0 (no blends) or >= 2 and blend_keep >= 0, got "
                             f"blend_parts={self.blend_parts}, blend_keep={self.blend_keep}")
        rates = {"cxpb": self.cxpb, "mutpb": self.mutpb, "joinpb": self.joinpb}
        if any(not 0 <= v <= 1 for v in rates.values()) or sum(rates.values()) > 1:
            raise EznasError(f"cxpb, mutpb and joinpb must be in [0, 1] with a sum <= 1, got "
                             f"{', '.join(f'{k}={v}' for k, v in rates.items())}")


RESUMABLE_CHANGES = ("generations", "parallel", "winner", "test_networks")  # the settings a resumed run may change (winner: chosen again)
BEFORE = {"blend_parts": 0, "winner": "best", "pool_ops": False, "novel_elites": 0}  # what a run made before a setting existed used (not its default)


@dataclass
class State:
    generation: int
    population: list[Individual]
    hall_of_fame: tools.HallOfFame
    logbook: tools.Logbook
    memo: dict[str, Evaluation]
    known: set[str] = field(default_factory=set)  # aggregates measured on every selection network (racing)
    similarity: dict[str, float] = field(default_factory=dict)  # full program -> its most_similar reference's
    # |Spearman| on the selection networks (0 without references): < NEW_IN_RUN is new in the run


def make_toolbox(pset: gp.PrimitiveSetTyped, cfg: EvolutionConfig, rng: random.Random,
                 evaluate: Callable[[Sequence[Individual]], list[Evaluation]]) -> base.Toolbox:
    """All the wiring in one place, under DEAP's aliases; every random draw comes from ``rng``."""
    tb = base.Toolbox()
    tb.register("expr", gen_half_and_half, pset, cfg.init_min, cfg.init_max, rng, net_depth=cfg.net_depth)
    tb.register("individual", lambda: Individual(tb.expr()))
    tb.register("mate", limit_height(partial(cx_one_point, rng=rng), cfg.max_height, rng))
    tb.register("mutate", limit_height(partial(mut_uniform, pset=pset, rng=rng), cfg.max_height, rng))
    tb.register("select", sel_tournament_unique, tournsize=cfg.tournament, rng=rng)
    tb.register("join", limit_height(partial(cx_join, pset=pset, rng=rng), cfg.max_height, rng))
    tb.register("variate", var_or, toolbox=tb, lambda_=cfg.offspring, cxpb=cfg.cxpb, mutpb=cfg.mutpb, rng=rng,
                joinpb=cfg.joinpb)
    tb.register("evaluate", evaluate)
    tb.register("map", map)
    return tb


def make_stats() -> tools.Statistics:
    stats = tools.Statistics(key=lambda ind: ind.fitness.values[1])
    for name, fn in (("avg", np.mean), ("std", np.std), ("min", np.min), ("max", np.max)):
        stats.register(name, fn)
    return stats


class Evolution:
    """One run: ``run()`` evolves (from scratch, or from the run folder's checkpoint) to the last generation."""

    def __init__(self, cfg: EvolutionConfig, out: Path, data: FitnessData, mapper: Mapper | None = None):
        self.cfg, self.out, self.data = cfg, Path(out), data
        self.mapper = mapper or Mapper()
        self.pset = make_pset(tuple(cfg.terminals), tuple(cfg.features), cfg.pool_ops)
        self.rng = random.Random(cfg.seed)  # the run's only source of randomness (checkpointed)
        self.toolbox = make_toolbox(self.pset, cfg, self.rng, self._evaluate)
        self.stats = make_stats()
        self.generation = 0
        self._selection_references: dict[str, dict[str, list[float]]] | None = None

    # ------------------------------------------------------------------------------------ evaluation
    def _evaluate(self, individuals: Sequence[Individual], state: State, promote: bool = True,
                  always: frozenset[str] = frozenset()) -> dict[str, Evaluation]:
        """Racing on the selection networks (see fitness.race); the same on any backend. Screened programs
        are promoted in generations 0, ``promote_every``, 2 x ``promote_every``... (a full evaluation costs a
        pass over every selection network, whatever the number of programs; not "the last generation", which
        would make a run continued to more generations differ from one run straight); the bar is the worst
        full fitness among the run's ``elites`` best so far."""
        programs = [Program(gp.PrimitiveTree(ind)) for ind in individuals]
        full = sorted((e.fitness for e in state.memo.values() if e.rank[0]), reverse=True)
        bar = full[self.cfg.elites - 1] if len(full) >= self.cfg.elites else -math.inf
        waiting = {t: e for t, e in state.memo.items() if e.stage == "screen"}
        promote = promote and self.generation % self.cfg.promote_every == 0
        return race(programs, self.data, self.mapper, state.known, bar, waiting, promote, always)

    def evaluate_invalid(self, population: Sequence[Individual], state: State, promote: bool = True,
                         always: frozenset[str] = frozenset()) -> int:
        """Evaluate the individuals without a fitness (memoised by program string); returns how many ran.
        ``promote=False``: no promotion round (screened programs wait), whatever the generation; programs in
        ``always`` are evaluated in full, never screened."""
        memo = state.memo
        todo = [ind for ind in population if not ind.fitness.valid]
        fresh: dict[str, Individual] = {}
        for ind in todo:
            if str(ind) not in memo:
                fresh.setdefault(str(ind), ind)
        memo.update(self.toolbox.evaluate(list(fresh.values()), state, promote, always))
        for ind in population:  # promoted programs of earlier generations have new fitness too
            ind.fitness.values = memo[str(ind)].rank
        return len(fresh)

    # ------------------------------------------------------------------------------------ the loop
    def initial_state(self) -> State:
        self.rng.seed(self.cfg.seed)
        texts = [SEEDS[name] for name in self.cfg.seed_programs]
        texts += [t for t in self.cfg.features if t.startswith(PROXY_PREFIX)]  # each proxy terminal alone, too
        seeds = [Individual(parse_program(text, self.pset).tree) for text in texts][:self.cfg.population]
        population = seeds + [self.toolbox.individual() for _ in range(self.cfg.population - len(seeds))]
        state = State(0, population, self._hall_of_fame({}), tools.Logbook(), {})
        self.generation = 0
        # the proxy terminals are measured on every selection network first, like the features: a program over
        # them and the features is then evaluated in full at once (free: arithmetic on cached scalars), never
        # screened on a few networks (a 20-network screen dropped every terminal and so every hybrid of them)
        if terminals := [t for t in self.cfg.features if t.startswith(PROXY_PREFIX)]:
            self.data.ensure(terminals, self._networks("selection"), self.mapper)
            state.known.update(terminals)
        # the seeds are evaluated in full (in the promotion's pass over the networks), never screened: a
        # 20-network screen dropped the MeCo seed, and blends need the seeds' signals measured
        nevals = self.evaluate_invalid(population, state, always=frozenset(str(ind) for ind in seeds))
        self._record(state, nevals)
        return state

    def step(self, state: State) -> None:
        self.generation = state.generation + 1
        offspring = self.toolbox.variate(state.population)
        nevals = self.evaluate_invalid(offspring, state)
        if self.cfg.blend_parts and self.generation % self.cfg.promote_every == 0:
            blends, n = self.blends(state)
            offspring, nevals = offspring + blends, nevals + n
        pool = list({str(ind): ind for ind in state.population + offspring}.values())  # duplicates removed
        for ind in pool:
            ind.fitness.values = state.memo[str(ind)].rank
        pool = distinct(pool, state.memo)
        ranked = sorted(pool, key=lambda ind: ind.fitness.values, reverse=True)
        elites = ranked[: self.cfg.elites]
        room = min(self.cfg.novel_elites, self.cfg.population - len(elites))  # at most the population
        if new := self.new_programs(ranked[self.cfg.elites:], state, room):
            log.info("gen %d: %d new programs kept beside the elites; the fittest %.4f %s", self.generation,
                     len(new), new[0].fitness.values[1], new[0])
        elites += new
        rest = [ind for ind in pool if all(ind is not e for e in elites)]
        state.population = elites + self.toolbox.select(rest, self.cfg.population - len(elites))
        state.generation = self.generation
        self._record(state, nevals)

    def blends(self, state: State) -> tuple[list[Individual], int]:
        """The ``blend_keep`` best log-linear blends and (``pool_ops``) rank blends (``var_blend``) of the run's
        ``blend_parts`` programs chosen by ``blend_parts``, within the height limit; each is evaluated in full
        at once (its parts' values are known). Returns them and how many blends were evaluated."""
        new = [str(ind) for ind in state.population if state.similarity.get(str(ind), 1.0) < NEW_IN_RUN]
        texts = blend_parts(state.memo, self.cfg.blend_parts,
                            [t for t in self.cfg.features if t.startswith(PROXY_PREFIX)] + new[:self.cfg.novel_elites])
        spreads = [log_spread(scores) for scores, _ in program_scores(
            [parse_program(t, self.pset) for t in texts], self.data, self._networks("selection"), self.mapper)]
        parts = [(t, state.memo[t].orientation) for t in texts]
        texts = var_blend(parts, spreads=spreads) + (var_blend(parts, rank=True) if self.cfg.pool_ops else [])
        blends = [Individual(parse_program(t, self.pset).tree) for t in texts]
        blends = [b for b in blends if b.height <= self.cfg.max_height]
        # every part is fully measured, so every blend is evaluated in full at once (no screen, no promotion)
        n = self.evaluate_invalid(blends, state, promote=False)
        ranked = sorted(blends, key=lambda ind: ind.fitness.values, reverse=True)[: self.cfg.blend_keep]
        log.info("gen %d: %d blends of %d programs; best %.4f %s", self.generation, len(blends), len(parts),
                 ranked[0].fitness.values[1] if ranked else math.nan, ranked[0] if ranked else "-")
        return ranked, n

    def _record(self, state: State, nevals: int) -> None:
        state.hall_of_fame = self._hall_of_fame(state.memo)
        heights = [ind.height for ind in state.population]
        evals = [state.memo[str(ind)] for ind in state.population]
        reasons = Counter(max(e.failures, key=e.failures.get) for e in evals if e.failures)
        state.logbook.record(gen=state.generation, nevals=nevals, **self.stats.compile(state.population),
                             full=sum(e.rank[0] for e in evals), invalid=sum(e.fitness <= FLOOR for e in evals),
                             best=str(state.hall_of_fame[0]), height_avg=float(np.mean(heights)))
        log.info("gen %d: %d evaluated, best %.4f %s", state.generation, nevals,
                 state.hall_of_fame[0].fitness.values[1], state.hall_of_fame[0])
        if reasons:
            log.info("gen %d: programs not defined on some network, by reason: %s", state.generation,
                     "; ".join(f"{r} ({n})" for r, n in reasons.most_common(5)))
        self.save(state)

    def run(self, state: State | None = None, on_generation: Callable[[State], None] | None = None) -> State:
        """Evolve to the last generation, from scratch or from a loaded state (whose files are rewritten
        first: a run killed between its checkpoint and its logbook leaves them behind)."""
        if state is None:
            state = self.initial_state()
        else:
            self.save(state)
        if on_generation:
            on_generation(state)
        while state.generation < self.cfg.generations:
            self.step(state)
            if on_generation:
                on_generation(state)
        return state

    # ------------------------------------------------------------------------------------ persistence
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pkl"

    def save(self, state: State) -> None:
        """The checkpoint (atomic), then the human-readable logbook and hall of fame."""
        blob = {
            "version": CHECKPOINT_VERSION,
            "config": asdict(self.cfg),
            "language": language(self.pset),
            "generation": state.generation,
            "population": [str(ind) for ind in state.population],
            "logbook": list(state.logbook),
            "memo": {k: v.to_dict() for k, v in state.memo.items()},
            "known": sorted(state.known),
            "similarity": state.similarity,
            "random_state": self.rng.getstate(),
        }
        with atomic_open(self.checkpoint_path, "wb") as f:
            pickle.dump(blob, f)
        with atomic_open(self.out / "logbook.csv") as f:
            pd.DataFrame(list(state.logbook)).to_csv(f, index=False)
        write_json(self.out / "hall_of_fame.json", [self.describe(ind, state.memo[str(ind)]) for ind in state.hall_of_fame])

    def describe(self, ind: Individual, ev: Evaluation) -> dict:
        return {"program": str(ind), "exported": exported_program(str(ind), ev.orientation), "fitness": ev.fitness,
                "orientation": ev.orientation, "fitness_per_task": ev.per_task, "stage": ev.stage,
                "networks": ev.networks, "failures": ev.failures, "height": ind.height, "size": len(ind)}

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
        networks = self._networks("validation")
        scored = program_scores(programs, self.data, networks, self.mapper)
        evals = evaluations(scored, self.data.config, networks)
        reference_scores = self._reference_scores(networks)
        self._write_references(reference_scores, networks)
        rows = []
        for i, (ind, ev, (scores, _)) in enumerate(zip(candidates, evals, scored)):
            chosen = state.memo[str(ind)]
            valid = combine({t: v * ev.orientation for t, v in ev.per_task.items()}, self.cfg.fitness.combine,
                            chosen.orientation)
            similar = most_similar(scores, reference_scores)
            rows.append({**self.describe(ind, chosen), "validation_fitness": valid.fitness,
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

    def _write_references(self, scores: dict[str, dict[str, list[float]]], networks: dict[str, list]) -> None:
        """references.json: each reference's fitness on the validation networks (its own orientation), what
        a winner is compared with there; the best reference per task is logged."""
        refs = references(self.cfg)
        evals = evaluations([(s, Counter()) for s in scores.values()], self.data.config, networks)
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
        ranked = distinct([self._individual(t, state.memo) for t in full], state.memo)
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
                networks = self._networks("selection")
                if self._selection_references is None:
                    self._selection_references = self._reference_scores(networks)
                scored = program_scores([Program(gp.PrimitiveTree(ind)) for ind in todo], self.data, networks,
                                        self.mapper)
                for ind, (scores, _) in zip(todo, scored):
                    similar = most_similar(scores, self._selection_references)
                    state.similarity[str(ind)] = 0.0 if similar is None else similar["spearman"]
            found += [ind for ind in batch if state.similarity[str(ind)] < bar]
        return found[:n]

    def _networks(self, split: str) -> dict[str, list]:
        return {str(t): self.data.networks(str(t), split) for t in self.data.tasks}

    def _reference_scores(self, networks: dict[str, list]) -> dict[str, dict[str, list[float]]]:
        """Each reference's scores on ``networks`` (by name, then task)."""
        refs = references(self.cfg)
        scored = program_scores([parse_program(t) for t in refs.values()], self.data, networks, self.mapper)
        return {name: scores for name, (scores, _) in zip(refs, scored)}

    def load(self) -> State:
        """The checkpoint's state; a truncated or foreign file is an error naming it."""
        path = self.checkpoint_path
        try:
            with open(path, "rb") as f:
                blob = read_pickle(f)
            if blob.get("version") != CHECKPOINT_VERSION:
                raise ValueError(f"checkpoint version {blob.get('version')}, expected {CHECKPOINT_VERSION}")
        except FileNotFoundError:
            raise DataError(f"no checkpoint to resume: {path} does not exist") from None
        except Exception as exc:  # noqa: BLE001 - truncated, corrupt or foreign
            raise DataError(f"checkpoint {path} is unreadable ({exc}); {self._last_logged()}") from None
        if blob.get("language") != language(self.pset):
            raise DataError(f"checkpoint {path} was made with another primitive language (primitives or terminals "
                            "differ from this version of eznas); start a new run or use the eznas it was made with")
        saved, now = jsonable(blob["config"]), jsonable(asdict(self.cfg))
        default = {**jsonable(asdict(EvolutionConfig())), **BEFORE}  # a setting newer than the checkpoint
        diff = sorted(k for k in set(saved) | set(now)
                      if k not in RESUMABLE_CHANGES and saved.get(k, default.get(k)) != now.get(k))
        if diff:
            raise DataError(f"checkpoint {path} was made with another configuration (differs in: {', '.join(diff)})")
        memo = {k: Evaluation(**v) for k, v in blob["memo"].items()}
        population = [self._individual(text, memo) for text in blob["population"]]
        hof = self._hall_of_fame(memo)
        logbook = tools.Logbook()
        for record in blob["logbook"]:
            logbook.record(**record)
        self.rng.setstate(blob["random_state"])
        self.generation = blob["generation"]
        return State(blob["generation"], population, hof, logbook, memo, set(blob["known"]),
                     blob.get("similarity", {}))

    def _hall_of_fame(self, memo: dict[str, Evaluation]) -> tools.HallOfFame:
        """The best ``hall_of_fame`` programs ever evaluated in the run, by (full, fitness); ties keep the
        order they were first evaluated in. Rebuilt from the memo, so a program promoted later moves up."""
        hof = tools.HallOfFame(self.cfg.hall_of_fame, similar=lambda a, b: str(a) == str(b))
        ranked = sorted(memo, key=lambda t: memo[t].rank, reverse=True)
        best = distinct([self._individual(t, memo) for t in ranked], memo)[:self.cfg.hall_of_fame]
        for ind in reversed(best):  # worst first keeps the order among equals
            hof.insert(ind)
        return hof

    def _individual(self, text: str, memo: dict[str, Evaluation]) -> Individual:
        ind = Individual(parse_program(text, self.pset).tree)
        ind.fitness.values = memo[text].rank
        return ind

    def _last_logged(self) -> str:
        try:
            gens = pd.read_csv(self.out / "logbook.csv")["gen"]
            return f"the last generation in logbook.csv is {int(gens.max())}"
        except Exception:  # noqa: BLE001
            return "no logbook.csv to tell the last good generation"


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


def distinct(individuals: Sequence[Individual], memo: dict[str, Evaluation]) -> list[Individual]:
    """The individuals without behavioural duplicates: of programs that rank the networks alike (same stage
    and behaviour, e.g. n_units and log(n_units)), the smallest is kept (the first among equal sizes), in
    its place; invalid programs are kept as they are."""
    keep: dict[tuple, Individual] = {}
    for ind in individuals:
        ev = memo[str(ind)]
        key = (ev.stage, ev.behaviour) if ev.behaviour else ("", str(ind))
        if key not in keep or len(ind) < len(keep[key]):
            keep[key] = ind
    chosen = {id(ind) for ind in keep.values()}
    return [ind for ind in individuals if id(ind) in chosen]


def jsonable(obj):  # tuples and lists compare equal after a JSON-like normalisation
    import json

    return json.loads(json.dumps(obj, default=str))


def exported_program(text: str, orientation: int) -> str:
    """The program as exported: negated when anti-correlated, so that higher is always better."""
    program = parse_program(text)
    return str(program.negated() if orientation < 0 else program)
