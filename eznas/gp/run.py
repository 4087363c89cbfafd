"""One evolution run end to end: fitness data, the loop, and the run folder's outputs."""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from eznas.data import resolve_data_root
from eznas.gp.checkpoint import State
from eznas.gp.config import EvolutionConfig
from eznas.gp.evolution import Evolution
from eznas.gp.export import export_source
from eznas.gp.objective import program_scores
from eznas.gp.profile import PROFILE, Profile, covers, summary_line
from eznas.gp.values import FitnessData, ValueCache
from eznas.gp.presets import migrate, run_folder
from eznas.gp.parse import parse_program
from eznas.gp.seeds import SEEDS
from eznas.io import atomic_open
from eznas.metrics import correlations
from eznas.parallel import open_mapper
from eznas.runfolder import jsonable
from eznas.stats import CollectorConfig

log = logging.getLogger(__name__)


def run_evolution(cfg: EvolutionConfig, out: Path, *, resume: bool = False, cache_dir: Path | None = None,
                  test_networks: int | None = None, progress: Callable[[str, int], Callable[[], None]] | None = None,
                  on_generation: Callable[[State], None] | None = None) -> dict[str, Any]:
    """Evolve into ``out`` (or continue the run there), choose the winner on the validation networks, then
    test the top 3 on ``cfg.test_networks`` test networks per task (``test_networks``, given, replaces it; the
    config.json written records it). A finished run resumed is returned as it is, unless ``cfg.winner`` differs
    from its own: then its winner is chosen again (and tested and exported). Where the time went is written to
    profile.json (gp/profile.py; a resumed run's: the part it did) and logged in one line."""
    profile = Profile()
    out = Path(out)
    if test_networks is not None:
        cfg = dataclasses.replace(cfg, test_networks=test_networks)
    folder = run_folder(out)
    saved = folder.saved_config(migrated=False) if resume else {}  # what its outputs were made with
    data_root = resolve_data_root(cfg.fitness.data_root)
    with profile.phase("setup"):
        data = FitnessData(cfg.fitness, ValueCache(cache_dir or Path("results") / "cache" / "values"), data_root,
                           profile)
    out.mkdir(parents=True, exist_ok=True)
    if not resume or folder.held() is None:
        folder.write_config(dataclasses.asdict(cfg))
    tick = (lambda what: (lambda n: progress(what, n))) if progress else (lambda what: None)
    with open_mapper(cfg.parallel) as mapper:
        with profile.phase("network features"):
            data.ensure((), data.split(), mapper, tick("network features"))
        with profile.phase("setup"):
            evolution = Evolution(cfg, out, data, mapper)
            state = evolution.load() if resume and evolution.checkpoint_path.exists() else None
        resumed_from = None if state is None else state.generation
        if resume and state is None:  # killed before its first checkpoint: nothing to continue, start it again
            log.info("%s has no checkpoint yet: starting the run from generation 0", out)
        was = migrate(saved)["winner"]
        rechoose = state is not None and was != cfg.winner
        if state is not None and state.generation >= cfg.generations and not rechoose \
                and (finished := _finished(out)) is not None:
            log.info("%s holds this run, finished: nothing to do", out)
            return finished
        if state is not None and jsonable(saved) != jsonable(dataclasses.asdict(cfg)):
            folder.write_config(dataclasses.asdict(cfg))  # the settings its outputs will have been made with
        if rechoose:
            log.info("%s: choosing the winner again (%s, was %s)", out, cfg.winner, was)
        with profile.phase("evolution"):
            state = evolution.run(state, on_generation)
        with profile.phase("validation"):
            ranked = evolution.validate(state)
        best = ranked[:3]
        with profile.phase("test"):
            tests = test_programs([b["exported"] for b in best], data, cfg.test_networks, mapper,
                                  tick("held-out test"))
    with profile.phase("export"):
        with atomic_open(out / "test_scores.csv") as f:
            tests.to_csv(f, index=False)
        plot_evolution(out / "evolution.png", pd.DataFrame(list(state.logbook)), seed_fitness(cfg, state),
                       validation_marks(out, best[0]))
        write_best_proxy(out / "best_proxy.py", best[0], cfg)
    workers = cfg.parallel.workers if cfg.parallel.backend != "serial" else 1
    report = profile.write(out, workers, covers(resumed_from, cfg.generations), resumed_from)
    log.info("%s (%s)", summary_line(report), out / PROFILE)
    return {"run_dir": str(out), "best": best, "test": tests.to_dict("records")}


def _finished(out: Path) -> dict[str, Any] | None:
    """The results of a finished run folder (its last outputs are in place), else None."""
    try:
        best = json.loads((out / "hall_of_fame.json").read_text())[:3]
        tests = pd.read_csv(out / "test_scores.csv")
    except (OSError, ValueError):
        return None
    if not (out / "best_proxy.py").is_file() or "validation_fitness" not in best[0]:
        return None
    return {"run_dir": str(out), "best": best, "test": tests.to_dict("records")}


def test_programs(programs: list[str], data: FitnessData, n: int, mapper=None, tick=None) -> pd.DataFrame:  # noqa: ANN001
    """Score the programs on the first ``n`` test networks of each task (never read during the run), batch
    and statistics as in fitness; one row per program and task with Kendall, Spearman and Pearson."""
    networks = data.split("test", n)
    parsed = [parse_program(p) for p in programs]
    rows = []
    for text, (scores, failures) in zip(programs, program_scores(parsed, data, networks, mapper, tick)):
        for task, archs in networks.items():
            s, acc = np.array(scores[task]), np.array([a.accuracy for a in archs])
            ok = np.isfinite(s)
            m = correlations(s[ok], acc[ok])
            rows.append({"program": text, "task": task, "n": m["n"], "excluded_non_finite": int((~ok).sum()),
                         "kendall": m["kendall"], "spearman": m["spearman"], "pearson": m["pearson"]})
    return pd.DataFrame(rows)


def seed_fitness(cfg: EvolutionConfig, state: State) -> dict[str, float]:
    """Each seed program's selection fitness (the seeds are evaluated in full in generation 0)."""
    out = {}
    for name in cfg.seed_programs:
        ev = state.memo.get(SEEDS[name])
        if ev is not None and ev.stage == "full" and math.isfinite(ev.fitness):
            out[name] = ev.fitness
    return out


def validation_marks(out: Path, winner: dict) -> dict[str, float]:
    """The winner's validation fitness and the best reference's (references.json), where they were measured."""
    marks = {"winner": winner["validation_fitness"]}
    try:
        refs = [r for r in json.loads((out / "references.json").read_text())
                if math.isfinite(r["validation_fitness"])]
    except (OSError, ValueError):
        refs = []
    if refs:
        best = max(refs, key=lambda r: r["validation_fitness"])
        marks[f"best reference ({best['reference']})"] = best["validation_fitness"]
    return marks


def plot_evolution(path: Path, logbook: pd.DataFrame, seeds: dict[str, float] | None = None,
                   validation: dict[str, float] | None = None) -> None:
    """Selection fitness (best and mean) by generation, each seed program's selection fitness as a dashed
    line (did evolution beat its seeds?), and, after the last generation, the validation fitness of the
    winner and of the best reference (the figures the winner was chosen and is judged by)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(logbook["gen"], logbook["max"], marker="o", label="best (selection)")
    ax.plot(logbook["gen"], logbook["avg"], marker=".", label="mean (selection)")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"][2:]
    for (name, value), color in zip(sorted((seeds or {}).items(), key=lambda kv: -kv[1]), colors * 3):
        ax.axhline(value, linestyle="--", linewidth=0.8, color=color, label=f"seed {name} (selection)")
    end = float(logbook["gen"].max()) + 0.5
    for (label, value), marker in zip((validation or {}).items(), ("*", "D")):
        ax.plot([end], [value], marker=marker, markersize=10 if marker == "*" else 6, linestyle="none",
                color="black" if marker == "*" else "grey", label=f"{label} (validation)")
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def write_best_proxy(path: Path, best: dict, cfg: EvolutionConfig) -> None:
    """best_proxy.py: the best program as a standalone function (torch only) that scores any nn.Module."""
    program = parse_program(best["exported"])
    doc = f"""The best proxy found by eznas (higher is better). Needs only PyTorch.

Program (network-level arithmetic over aggregates of per-unit expressions of the units' statistics and
over network-level terminals; see the functions at the end of this file):

    {program}

Selection fitness {best["fitness"]:.4f} ({cfg.fitness.metric}, {cfg.fitness.combine} over tasks, {best["networks"]}
networks per task); validation fitness {best["validation_fitness"]:.4f}, per task:
{json.dumps(best["validation_per_task"])}.
Statistics: backward signal {cfg.fitness.signal!r}, noise seed {cfg.fitness.pool_seed}; scores here are computed
in float32 (fitness rounded statistics to {cfg.fitness.dtype}), as ``verify_scores.py --program`` does."""
    source = export_source(program, signal=cfg.fitness.signal, noise_seed=cfg.fitness.pool_seed,
                           perturbation=CollectorConfig().perturbation, doc=doc)
    with atomic_open(path) as f:
        f.write(source)
