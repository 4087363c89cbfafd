"""A run's state and its files: the :class:`State` each generation leaves, the hall of fame rebuilt from the
memo, and the run folder's checkpoint.pkl (atomic, every generation; ``load_state`` continues it exactly),
logbook.csv and hall_of_fame.json."""
from __future__ import annotations

import pickle
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd
from deap import gp, tools

from eznas.errors import DataError
from eznas.gp.config import EvolutionConfig
from eznas.gp.objective import Evaluation
from eznas.gp.operators import Individual
from eznas.gp.parse import parse_program
from eznas.gp.presets import CHECKPOINT, migrate, run_folder
from eznas.gp.pset import language
from eznas.io import atomic_open, read_pickle, write_json

CHECKPOINT_VERSION = 2  # 2: network-level language, (stage, fitness) ranks, validation


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


def checkpoint_path(out: Path) -> Path:
    return Path(out) / CHECKPOINT


def save_state(out: Path, cfg: EvolutionConfig, pset: gp.PrimitiveSetTyped, rng: random.Random,
               state: State) -> None:
    """The checkpoint (atomic), then the human-readable logbook and hall of fame."""
    blob = {
        "version": CHECKPOINT_VERSION,
        "config": asdict(cfg),
        "language": language(pset),
        "generation": state.generation,
        "population": [str(ind) for ind in state.population],
        "logbook": list(state.logbook),
        "memo": {k: v.to_dict() for k, v in state.memo.items()},
        "known": sorted(state.known),
        "similarity": state.similarity,
        "random_state": rng.getstate(),
    }
    with atomic_open(checkpoint_path(out), "wb") as f:
        pickle.dump(blob, f)
    with atomic_open(Path(out) / "logbook.csv") as f:
        pd.DataFrame(list(state.logbook)).to_csv(f, index=False)
    write_json(Path(out) / "hall_of_fame.json", [describe(ind, state.memo[str(ind)]) for ind in state.hall_of_fame])


def load_state(out: Path, cfg: EvolutionConfig, pset: gp.PrimitiveSetTyped, rng: random.Random) -> State:
    """The checkpoint's state, ``rng`` set to its random state; a truncated or foreign file, or one made with
    another language or configuration (beyond what a resumed run may change: its run_folder), is an error naming
    it."""
    path = checkpoint_path(out)
    try:
        with open(path, "rb") as f:
            blob = read_pickle(f)
        if blob.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {blob.get('version')}, expected {CHECKPOINT_VERSION}")
    except FileNotFoundError:
        raise DataError(f"no checkpoint to resume: {path} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt or foreign
        raise DataError(f"checkpoint {path} is unreadable ({exc}); {last_logged(out)}") from None
    if blob.get("language") != language(pset):
        raise DataError(f"checkpoint {path} was made with another primitive language (primitives or terminals "
                        "differ from this version of eznas); start a new run or use the eznas it was made with")
    saved = migrate(blob["config"])  # a setting newer than the checkpoint: what the run used
    if diff := sorted(run_folder(out).changed(saved, asdict(cfg))):
        raise DataError(f"checkpoint {path} was made with another configuration (differs in: {', '.join(diff)})")
    memo = {k: Evaluation(**v) for k, v in blob["memo"].items()}
    population = [individual(text, memo, pset) for text in blob["population"]]
    hof = hall_of_fame(memo, pset, cfg.hall_of_fame)
    logbook = tools.Logbook()
    for record in blob["logbook"]:
        logbook.record(**record)
    rng.setstate(blob["random_state"])
    return State(blob["generation"], population, hof, logbook, memo, set(blob["known"]), blob.get("similarity", {}))


def last_logged(out: Path) -> str:
    try:
        gens = pd.read_csv(Path(out) / "logbook.csv")["gen"]
        return f"the last generation in logbook.csv is {int(gens.max())}"
    except Exception:  # noqa: BLE001
        return "no logbook.csv to tell the last good generation"


def hall_of_fame(memo: dict[str, Evaluation], pset: gp.PrimitiveSetTyped, size: int) -> tools.HallOfFame:
    """The best ``size`` programs ever evaluated in the run, by (full, fitness); ties keep the order they
    were first evaluated in. Rebuilt from the memo, so a program promoted later moves up."""
    hof = tools.HallOfFame(size, similar=lambda a, b: str(a) == str(b))
    ranked = sorted(memo, key=lambda t: memo[t].rank, reverse=True)
    best = distinct([individual(t, memo, pset) for t in ranked], memo)[:size]
    for ind in reversed(best):  # worst first keeps the order among equals
        hof.insert(ind)
    return hof


def individual(text: str, memo: dict[str, Evaluation], pset: gp.PrimitiveSetTyped) -> Individual:
    """The program ``text`` as an individual with its fitness from ``memo``."""
    ind = Individual(parse_program(text, pset).tree)
    ind.fitness.values = memo[text].rank
    return ind


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


def describe(ind: Individual, ev: Evaluation) -> dict:
    """A program's row in hall_of_fame.json."""
    return {"program": str(ind), "exported": exported_program(str(ind), ev.orientation), "fitness": ev.fitness,
            "orientation": ev.orientation, "fitness_per_task": ev.per_task, "stage": ev.stage,
            "networks": ev.networks, "failures": ev.failures, "height": ind.height, "size": len(ind)}


def exported_program(text: str, orientation: int) -> str:
    """The program as exported: negated when anti-correlated, so that higher is always better."""
    program = parse_program(text)
    return str(program.negated() if orientation < 0 else program)
