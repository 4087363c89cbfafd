"""One evolution run end to end: fitness data, the loop, and the run folder's outputs."""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from eznas.data import BatchSource, resolve_data_root
from eznas.errors import EznasError
from eznas.gp.evolution import Evolution, EvolutionConfig, State
from eznas.gp.export import export_source
from eznas.gp.fitness import FitnessData
from eznas.gp.program import parse_program
from eznas.io import atomic_open, write_json
from eznas.metrics import correlations
from eznas.parallel import open_mapper
from eznas.scoring import arch_seed, resolve_device
from eznas.spaces import SpaceOptions, get_space
from eznas.stats import CollectorConfig, StatsCache, collect

log = logging.getLogger(__name__)


def run_evolution(cfg: EvolutionConfig, out: Path, *, resume: bool = False, cache_dir: Path | None = None,
                  test_networks: int = 100, progress: Callable[[str, int], Callable[[], None]] | None = None,
                  on_generation: Callable[[State], None] | None = None) -> dict[str, Any]:
    """Evolve into ``out`` (or continue the run there), then test the top 3 programs on held-out archs."""
    out = Path(out)
    config_path = out / "config.json"
    resolved = dataclasses.asdict(cfg)
    if resume:
        if not config_path.is_file():
            raise EznasError(f"--resume {out}: no config.json there (not a run folder)")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json(config_path, resolved)
    data_root = resolve_data_root(cfg.fitness.data_root)
    cache = StatsCache(cache_dir or Path("results") / "cache" / "stats")
    data = FitnessData(cfg.fitness, cfg.terminals, cache, data_root)
    with open_mapper(cfg.parallel) as mapper:
        data.prepare(mapper, (lambda n: progress("statistics", n)) if progress else None)
        evolution = Evolution(cfg, out, data, mapper)
        state = None
        if resume and evolution.checkpoint_path.exists():
            state = evolution.load()
        elif resume:  # killed before its first checkpoint: nothing to continue, start it again
            log.info("%s has no checkpoint yet: starting the run from generation 0", out)
            write_json(config_path, resolved)
        state = evolution.run(state, on_generation)
        ranked = evolution.rerank(state) if cfg.rerank else \
            [evolution.describe(ind, state.memo[str(ind)]) for ind in state.hall_of_fame]
    best = ranked[:3]
    tests = test_programs([b["exported"] for b in best], data, test_networks,
                          progress=(lambda n: progress("held-out test", n)) if progress else None)
    with atomic_open(out / "test_scores.csv") as f:
        tests.to_csv(f, index=False)
    plot_evolution(out / "evolution.png", pd.DataFrame(list(state.logbook)))
    write_best_proxy(out / "best_proxy.py", best[0], cfg)
    return {"run_dir": str(out), "best": best, "test": tests.to_dict("records")}


def test_programs(programs: list[str], data: FitnessData, n: int, progress=None) -> pd.DataFrame:
    """Score the programs on ``n`` held-out archs per task (never used in fitness), batch and collector as
    in fitness; one row per program and task with Kendall, Spearman and Pearson."""
    parsed = [parse_program(p) for p in programs]
    names = tuple(sorted(set().union(*(p.terminals for p in parsed))))
    collector = dataclasses.replace(data.collector, names=names)
    rows = []
    todo = {str(t): data.heldout[str(t)][:n] for t in data.tasks}
    tick = progress(sum(len(v) for v in todo.values())) if progress else None
    for task in data.tasks:
        space = get_space(task.space, SpaceOptions(width=data.config.width, cells=data.config.cells))
        batches = BatchSource(data.data_root, task.dataset, data.config.batch_size, data.config.seed)
        device = resolve_device(data.config.device)
        scores = [[] for _ in parsed]
        archs = todo[str(task)]
        for arch in archs:
            torch.manual_seed(arch_seed(data.config.seed, arch.uid))
            net = space.build(arch.spec, batches.spec.num_classes).to(device).train()
            stats = collect(net, batches.batch().to(device), collector)
            for k, p in enumerate(parsed):
                scores[k].append(p.score(stats))
            if tick:
                tick()
        acc = np.array([a.accuracy for a in archs])
        for text, s in zip(programs, scores):
            s = np.array(s)
            ok = np.isfinite(s)
            m = correlations(s[ok], acc[ok])
            rows.append({"program": text, "task": str(task), "n": m["n"], "excluded_non_finite": int((~ok).sum()),
                         "kendall": m["kendall"], "spearman": m["spearman"], "pearson": m["pearson"]})
    return pd.DataFrame(rows)


def plot_evolution(path: Path, logbook: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(logbook["gen"], logbook["max"], marker="o", label="best")
    ax.plot(logbook["gen"], logbook["avg"], marker=".", label="mean")
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness")
    ax.legend()
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def write_best_proxy(path: Path, best: dict, cfg: EvolutionConfig) -> None:
    """best_proxy.py: the best program as a standalone function (torch only) that scores any nn.Module."""
    program = parse_program(best["exported"])
    on_all = ", on all fitness mini-sets at once" if "selection_fitness" in best else ""
    doc = f"""The best proxy found by eznas (higher is better). Needs only PyTorch.

Program (per ReLU-Conv-BN unit, aggregated over the units; see unit_output below):

    {program}

Fitness {best["fitness"]:.4f} ({cfg.fitness.metric}, {cfg.fitness.combine} over tasks{on_all}); per task:
{json.dumps(best["fitness_per_task"])}.
Statistics: backward signal {cfg.fitness.signal!r}, noise seed {cfg.fitness.seed}; scores here are computed
in float32 (fitness used {cfg.fitness.dtype} storage), as ``verify_scores.py --program`` does.

    from best_proxy import score
    score(net, images, labels)   # net: any nn.Module with ReLU -> Conv -> BN units; train mode is used
"""
    source = export_source(program, signal=cfg.fitness.signal, noise_seed=cfg.fitness.seed,
                           perturbation=CollectorConfig().perturbation, doc=doc)
    with atomic_open(path) as f:
        f.write(source)
