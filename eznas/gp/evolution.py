"""The evolution loop: seeded population, varOr offspring, elitism + unique tournaments, hall of fame,
logbook, and an atomic checkpoint every generation (``resume`` continues it exactly)."""
from __future__ import annotations

import logging
import operator
import pickle
import random
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from deap import algorithms, base, gp, tools

from eznas.errors import DataError
from eznas.gp.fitness import FLOOR, Evaluation, FitnessConfig, FitnessData, evaluate_programs, prefilter
from eznas.gp.operators import Individual, cx_one_point, gen_subtree, sel_tournament_unique
from eznas.gp.program import Program, parse_program
from eznas.gp.pset import make_pset
from eznas.gp.seeds import SEEDS
from eznas.io import atomic_open, write_json
from eznas.stats import NAMES, StatsCache

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1


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
    max_height: int = 10
    init_min: int = 2
    init_max: int = 6
    elites: int = 5
    hall_of_fame: int = 10
    seed: int = 0
    seed_programs: tuple[str, ...] = tuple(SEEDS)  # names in eznas.gp.seeds.SEEDS
    terminals: tuple[str, ...] = NAMES
    workers: int = 1
    fitness: FitnessConfig = field(default_factory=FitnessConfig)


@dataclass
class State:
    generation: int
    population: list[Individual]
    hall_of_fame: tools.HallOfFame
    logbook: tools.Logbook
    memo: dict[str, Evaluation]


def make_toolbox(pset: gp.PrimitiveSetTyped, cfg: EvolutionConfig,
                 evaluate: Callable[[Sequence[Individual]], list[Evaluation]]) -> base.Toolbox:
    """All the wiring in one place, under DEAP's aliases."""
    tb = base.Toolbox()
    tb.register("expr", gp.genHalfAndHalf, pset=pset, min_=cfg.init_min, max_=cfg.init_max)
    tb.register("individual", lambda: Individual(tb.expr()))
    tb.register("mate", cx_one_point)
    tb.register("mutate", gp.mutUniform, expr=gen_subtree, pset=pset)
    limit = gp.staticLimit(key=operator.attrgetter("height"), max_value=cfg.max_height)
    tb.decorate("mate", limit)
    tb.decorate("mutate", limit)
    tb.register("select", sel_tournament_unique, tournsize=cfg.tournament)
    tb.register("evaluate", evaluate)
    tb.register("map", map)
    return tb


def make_stats() -> tools.Statistics:
    stats = tools.Statistics(key=lambda ind: ind.fitness.values[0])
    for name, fn in (("avg", np.mean), ("std", np.std), ("min", np.min), ("max", np.max)):
        stats.register(name, fn)
    return stats


class Evolution:
    """One run: ``run()`` evolves (from scratch, or from the run folder's checkpoint) to the last generation."""

    def __init__(self, cfg: EvolutionConfig, out: Path, data: FitnessData):
        self.cfg, self.out, self.data = cfg, Path(out), data
        self.pset = make_pset(tuple(cfg.terminals))
        self.toolbox = make_toolbox(self.pset, cfg, self._evaluate)
        self.stats = make_stats()
        self.generation = 0

    # ------------------------------------------------------------------------------------ evaluation
    def _choice(self) -> dict[str, int]:
        """This generation's mini-set per task: drawn from (seed, generation), whatever the worker count."""
        rng = np.random.default_rng([self.cfg.seed, self.generation])
        return {str(t): int(rng.integers(self.cfg.fitness.minisets)) for t in self.data.tasks}

    def _evaluate(self, individuals: Sequence[Individual]) -> list[Evaluation]:
        choice = self._choice()
        programs = [Program(ind) for ind in individuals]
        valid = [i for i, p in enumerate(programs) if prefilter(p, self.data)]
        results = [Evaluation(FLOOR, 1, {}) for _ in programs]
        texts = [str(programs[i]) for i in valid]
        if self.cfg.workers > 1 and len(texts) > 1:
            from joblib import Parallel, delayed

            chunks = [texts[k::self.cfg.workers] for k in range(self.cfg.workers)]
            d = self.data
            parts = Parallel(n_jobs=self.cfg.workers, backend="loky")(
                delayed(evaluate_chunk)(c, d.config, d.collector.names, str(d.cache.folder), str(d.data_root), choice)
                for c in chunks if c)
            by_text = {t: ev for c, part in zip([c for c in chunks if c], parts) for t, ev in zip(c, part)}
            evaluations = [by_text[t] for t in texts]
        else:
            evaluations = evaluate_programs([programs[i] for i in valid], self.data, choice)
        for i, ev in zip(valid, evaluations):
            results[i] = ev
        return results

    def evaluate_invalid(self, population: Sequence[Individual], memo: dict[str, Evaluation]) -> int:
        """Evaluate the individuals without a fitness (memoised by program string); returns how many ran."""
        todo = [ind for ind in population if not ind.fitness.valid]
        fresh: dict[str, Individual] = {}
        for ind in todo:
            if str(ind) not in memo:
                fresh.setdefault(str(ind), ind)
        for key, ev in zip(fresh, self.toolbox.evaluate(list(fresh.values()))):
            memo[key] = ev
        for ind in todo:
            ind.fitness.values = (memo[str(ind)].fitness,)
        return len(fresh)

    # ------------------------------------------------------------------------------------ the loop
    def initial_state(self) -> State:
        random.seed(self.cfg.seed)
        seeds = [Individual(parse_program(SEEDS[name], self.pset).tree) for name in self.cfg.seed_programs]
        population = seeds + [self.toolbox.individual() for _ in range(self.cfg.population - len(seeds))]
        state = State(0, population, tools.HallOfFame(self.cfg.hall_of_fame, similar=lambda a, b: str(a) == str(b)),
                      tools.Logbook(), {})
        self.generation = 0
        nevals = self.evaluate_invalid(population, state.memo)
        self._record(state, nevals)
        return state

    def step(self, state: State) -> None:
        self.generation = state.generation + 1
        offspring = algorithms.varOr(state.population, self.toolbox, self.cfg.offspring, self.cfg.cxpb, self.cfg.mutpb)
        nevals = self.evaluate_invalid(offspring, state.memo)
        pool = list({str(ind): ind for ind in state.population + offspring}.values())  # duplicates removed
        ranked = sorted(pool, key=lambda ind: ind.fitness.values[0], reverse=True)
        elites = ranked[: self.cfg.elites]
        rest = [ind for ind in pool if all(ind is not e for e in elites)]
        state.population = elites + self.toolbox.select(rest, self.cfg.population - len(elites))
        state.generation = self.generation
        self._record(state, nevals)

    def _record(self, state: State, nevals: int) -> None:
        state.hall_of_fame.update(state.population)
        heights = [ind.height for ind in state.population]
        state.logbook.record(gen=state.generation, nevals=nevals, **self.stats.compile(state.population),
                             best=str(state.hall_of_fame[0]), height_avg=float(np.mean(heights)))
        log.info("gen %d: %d evaluated, best %.4f %s", state.generation, nevals,
                 state.hall_of_fame[0].fitness.values[0], state.hall_of_fame[0])
        self.save(state)

    def run(self, state: State | None = None, on_generation: Callable[[State], None] | None = None) -> State:
        state = state or self.initial_state()
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
            "generation": state.generation,
            "population": [str(ind) for ind in state.population],
            "hall_of_fame": [str(ind) for ind in state.hall_of_fame],
            "logbook": list(state.logbook),
            "memo": {k: v.to_dict() for k, v in state.memo.items()},
            "random_state": random.getstate(),
        }
        with atomic_open(self.checkpoint_path, "wb") as f:
            pickle.dump(blob, f)
        with atomic_open(self.out / "logbook.csv") as f:
            pd.DataFrame(list(state.logbook)).to_csv(f, index=False)
        write_json(self.out / "hall_of_fame.json", [self.describe(ind, state.memo) for ind in state.hall_of_fame])

    def describe(self, ind: Individual, memo: dict[str, Evaluation]) -> dict:
        ev = memo[str(ind)]
        return {"program": str(ind), "exported": exported_program(str(ind), ev.orientation), "fitness": ev.fitness,
                "orientation": ev.orientation, "fitness_per_task": ev.per_task, "height": ind.height, "size": len(ind)}

    def load(self) -> State:
        """The checkpoint's state; a truncated or foreign file is an error naming it."""
        path = self.checkpoint_path
        try:
            with open(path, "rb") as f:
                blob = pickle.load(f)
            if blob.get("version") != CHECKPOINT_VERSION:
                raise ValueError(f"checkpoint version {blob.get('version')}, expected {CHECKPOINT_VERSION}")
        except FileNotFoundError:
            raise DataError(f"no checkpoint to resume: {path} does not exist") from None
        except Exception as exc:  # noqa: BLE001 - truncated, corrupt or foreign
            raise DataError(f"checkpoint {path} is unreadable ({exc}); {self._last_logged()}") from None
        saved, now = _jsonable(blob["config"]), _jsonable(asdict(self.cfg))
        diff = sorted(k for k in set(saved) | set(now) if k != "generations" and saved.get(k) != now.get(k))
        if diff:  # only the number of generations may change on resume
            raise DataError(f"checkpoint {path} was made with another configuration (differs in: {', '.join(diff)})")
        memo = {k: Evaluation(**v) for k, v in blob["memo"].items()}
        population = [self._individual(text, memo) for text in blob["population"]]
        hof = tools.HallOfFame(self.cfg.hall_of_fame, similar=lambda a, b: str(a) == str(b))
        for text in reversed(blob["hall_of_fame"]):  # worst first keeps the saved order among equals
            hof.insert(self._individual(text, memo))
        logbook = tools.Logbook()
        for record in blob["logbook"]:
            logbook.record(**record)
        random.setstate(blob["random_state"])
        self.generation = blob["generation"]
        return State(blob["generation"], population, hof, logbook, memo)

    def _individual(self, text: str, memo: dict[str, Evaluation]) -> Individual:
        ind = Individual(parse_program(text, self.pset).tree)
        ind.fitness.values = (memo[text].fitness,)
        return ind

    def _last_logged(self) -> str:
        try:
            gens = pd.read_csv(self.out / "logbook.csv")["gen"]
            return f"the last generation in logbook.csv is {int(gens.max())}"
        except Exception:  # noqa: BLE001
            return "no logbook.csv to tell the last good generation"


@lru_cache(maxsize=2)
def _worker_data(config: FitnessConfig, terminals: tuple[str, ...], cache_folder: str, data_root: str) -> FitnessData:
    return FitnessData(config, terminals, StatsCache(cache_folder), Path(data_root))


def evaluate_chunk(texts: list[str], config: FitnessConfig, terminals: tuple[str, ...], cache_folder: str,
                   data_root: str, choice: dict[str, int]) -> list[Evaluation]:
    """A worker's share of a generation: it gets program strings and rebuilds the fitness data from the
    shared statistics cache (never large pickled state)."""
    data = _worker_data(config, tuple(terminals), cache_folder, data_root)
    return evaluate_programs([parse_program(t) for t in texts], data, choice)


def _jsonable(obj):  # tuples and lists compare equal after a JSON-like normalisation
    import json

    return json.loads(json.dumps(obj, default=str))


def exported_program(text: str, orientation: int) -> str:
    """The program as exported: negated when anti-correlated, so that higher is always better."""
    program = parse_program(text)
    return str(program.negated() if orientation < 0 else program)
