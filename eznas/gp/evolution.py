"""The evolution loop: seeded population, varOr offspring, elitism + unique tournaments and novel elites,
blends, hall of fame, logbook, and an atomic checkpoint every generation (gp/checkpoint.py: ``resume``
continues it exactly); at the end the hall of fame is ranked on the validation networks, which choose the
exported winner (gp/winner.py)."""
from __future__ import annotations

import logging
import math
import random
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from deap import base, gp, tools

from eznas.gp.checkpoint import State, checkpoint_path, distinct, hall_of_fame, load_state, save_state
from eznas.gp.config import EvolutionConfig
from eznas.gp.objective import FLOOR, Evaluation, program_scores, race
from eznas.gp.operators import (Individual, cx_join, cx_one_point, gen_half_and_half, limit_height, mut_uniform,
                                sel_tournament_unique, var_blend, var_or)
from eznas.gp.parse import parse_program
from eznas.gp.program import Program
from eznas.gp.pset import PROXY_PREFIX, make_pset
from eznas.gp.seeds import SEEDS
from eznas.gp.values import FitnessData
from eznas.gp.winner import NEW_IN_RUN, Judge, blend_parts, log_spread, references
from eznas.parallel import Mapper

log = logging.getLogger(__name__)


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
        self.judge = Judge(cfg, self.out, data, self.mapper, self.pset)
        data.references = tuple(references(cfg).values())  # what fitness by margin measures against

    # ------------------------------------------------------------------------------------ evaluation
    def _evaluate(self, individuals: Sequence[Individual], state: State, promote: bool = True,
                  always: frozenset[str] = frozenset()) -> dict[str, Evaluation]:
        """Racing on the selection networks (see objective.race); the same on any backend. Screened programs
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
        with self.data.profile.phase("objective"):
            fresh: dict[str, Individual] = {}
            for ind in population:
                if not ind.fitness.valid and str(ind) not in memo:
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
        state = State(0, population, hall_of_fame({}, self.pset, self.cfg.hall_of_fame), tools.Logbook(), {})
        self.generation = 0
        # the proxy terminals are measured on every selection network first, like the features: a program over
        # them and the features is then evaluated in full at once (free: arithmetic on cached scalars), never
        # screened on a few networks (a 20-network screen dropped every terminal and so every hybrid of them)
        if terminals := [t for t in self.cfg.features if t.startswith(PROXY_PREFIX)]:
            self.data.ensure(terminals, self.data.split("selection"), self.mapper)
            state.known.update(terminals)
        # the seeds are evaluated in full (in the promotion's pass over the networks), never screened: a
        # 20-network screen dropped the MeCo seed, and blends need the seeds' signals measured
        nevals = self.evaluate_invalid(population, state, always=frozenset(str(ind) for ind in seeds))
        self._record(state, nevals)
        return state

    def step(self, state: State) -> None:
        self.generation = state.generation + 1
        phase = self.data.profile.phase
        with phase("variation"):
            offspring = self.toolbox.variate(state.population)
        nevals = self.evaluate_invalid(offspring, state)
        if self.cfg.blend_parts and self.generation % self.cfg.promote_every == 0:
            blends, n = self.blends(state)
            offspring, nevals = offspring + blends, nevals + n
        with phase("selection"):
            pool = list({str(ind): ind for ind in state.population + offspring}.values())  # duplicates removed
            for ind in pool:
                ind.fitness.values = state.memo[str(ind)].rank
            pool = distinct(pool, state.memo)
            ranked = sorted(pool, key=lambda ind: ind.fitness.values, reverse=True)
            elites = ranked[: self.cfg.elites]
            room = min(self.cfg.novel_elites, self.cfg.population - len(elites))  # at most the population
            with phase("novelty"):
                new = self.judge.new_programs(ranked[self.cfg.elites:], state, room)
            if new:
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
        with self.data.profile.phase("blends"):
            return self._blends(state)

    def _blends(self, state: State) -> tuple[list[Individual], int]:
        new = [str(ind) for ind in state.population if state.similarity.get(str(ind), 1.0) < NEW_IN_RUN]
        texts = blend_parts(state.memo, self.cfg.blend_parts,
                            [t for t in self.cfg.features if t.startswith(PROXY_PREFIX)] + new[:self.cfg.novel_elites])
        spreads = [log_spread(scores) for scores, _ in program_scores(
            [parse_program(t, self.pset) for t in texts], self.data, self.data.split("selection"), self.mapper)]
        parts = [(t, state.memo[t].orientation) for t in texts]
        weights = self.cfg.blend_weights
        texts = var_blend(parts, weights=weights, spreads=spreads) + (
            var_blend(parts, weights=weights, rank=True) if self.cfg.pool_ops else [])
        blends = [Individual(parse_program(t, self.pset).tree) for t in texts]
        blends = [b for b in blends if b.height <= self.cfg.max_height]
        # every part is fully measured, so every blend is evaluated in full at once (no screen, no promotion)
        n = self.evaluate_invalid(blends, state, promote=False)
        ranked = sorted(blends, key=lambda ind: ind.fitness.values, reverse=True)[: self.cfg.blend_keep]
        log.info("gen %d: %d blends of %d programs; best %.4f %s", self.generation, len(blends), len(parts),
                 ranked[0].fitness.values[1] if ranked else math.nan, ranked[0] if ranked else "-")
        return ranked, n

    def _record(self, state: State, nevals: int) -> None:
        with self.data.profile.phase("bookkeeping"):
            self._log(state, nevals)
        self.save(state)

    def _log(self, state: State, nevals: int) -> None:
        """The hall of fame, the logbook's record and the generation's log lines."""
        state.hall_of_fame = hall_of_fame(state.memo, self.pset, self.cfg.hall_of_fame)
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

    # ------------------------------------------------------------------------------------ the run's files
    @property
    def checkpoint_path(self) -> Path:
        return checkpoint_path(self.out)

    def save(self, state: State) -> None:
        with self.data.profile.phase("checkpoint"):
            save_state(self.out, self.cfg, self.pset, self.rng, state)

    def load(self) -> State:
        """The checkpoint's state (gp/checkpoint.py), the random state with it."""
        with self.data.profile.phase("checkpoint"):
            state = load_state(self.out, self.cfg, self.pset, self.rng)
        self.generation = state.generation
        return state

    def validate(self, state: State) -> list[dict]:
        """The winner chosen on the validation networks (``Judge.validate``), best first."""
        return self.judge.validate(state)
