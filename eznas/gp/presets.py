"""What an evolution run's settings mean beyond their dataclass: the tasks evolution has data for (and a
space's default tasks), the ``quick`` preset's sizes, and the config.json of a run made before a setting
existed read as what that run used."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from eznas.config import from_dict, replace_fields
from eznas.errors import EznasError
from eznas.gp.evolution import BEFORE, EvolutionConfig
from eznas.gp.fitness import Task

# the datasets evolution has data for, per space (a task is SPACE:DATASET)
EVOLVE_DATASETS = {"NASBench201": ("cifar10", "cifar100", "ImageNet16-120"), "DARTS": ("cifar10",),
                   "NASBench301": ("cifar10",), "NASBench101": ("cifar10",),
                   "NATSBenchSSS": ("cifar10", "cifar100", "ImageNet16-120"), "NASBenchMacro": ("cifar10",)}
# a space's tasks when only the space is named
SPACE_TASKS = {"NASBench201": ("NASBench201:cifar10", "NASBench201:cifar100"), "DARTS": ("DARTS:cifar10",),
               "NASBench301": ("NASBench301:cifar10",), "NASBench101": ("NASBench101:cifar10",),
               "NATSBenchSSS": ("NATSBenchSSS:cifar10", "NATSBenchSSS:cifar100"),
               "NASBenchMacro": ("NASBenchMacro:cifar10",)}

# quick: the same run, small enough for a first try in about two minutes (every output file)
QUICK = {"population": 12, "offspring": 12, "generations": 2, "elites": 2, "hall_of_fame": 4, "test_networks": 12,
         "fitness.selection": 24, "fitness.validation": 12, "fitness.screen": 8, "fitness.promote": 3}
QUICK_NOVEL_ELITES = 2  # at most


def valid_tasks() -> list[str]:
    return [f"{s}:{d}" for s, ds in EVOLVE_DATASETS.items() for d in ds]


def space_tasks(space: str, dataset: str | None = None) -> tuple[str, ...]:
    """The tasks of a space: ``SPACE:DATASET`` with a dataset, else the space's default tasks."""
    if space not in SPACE_TASKS:
        raise EznasError(f"unknown space {space!r}; valid: {', '.join(SPACE_TASKS)}")
    return (f"{space}:{dataset}",) if dataset else SPACE_TASKS[space]


def check_tasks(tasks: Sequence[str], where: str) -> None:
    """Every task is SPACE:DATASET[@width=N][@cells=N] with a space and dataset evolution has data for
    (EznasError naming ``where``)."""
    valid = ", ".join(valid_tasks())
    if not tasks:
        raise EznasError(f"{where}: no tasks (valid: {valid})")
    for task in tasks:
        try:
            parsed = Task.parse(task)  # its options (@width=N, @cells=N): one line naming a bad one
        except EznasError as e:
            raise EznasError(f"{where}: {e}") from None
        space, dataset = parsed.space, parsed.dataset
        if space not in EVOLVE_DATASETS:
            raise EznasError(f"{where}: unknown space {space!r} in task {task!r}; valid tasks: {valid}")
        if dataset not in EVOLVE_DATASETS[space]:
            raise EznasError(f"{where}: unknown dataset {dataset!r} for {space} in task {task!r}; valid tasks: {valid}")


def quick_config(cfg: EvolutionConfig) -> EvolutionConfig:
    """The ``quick`` preset over ``cfg``: QUICK's sizes, at most QUICK_NOVEL_ELITES novel elites."""
    return replace_fields(cfg, {**QUICK, "novel_elites": min(cfg.novel_elites, QUICK_NOVEL_ELITES)})


def quick_text() -> str:
    """The preset in words, e.g. for a flag's help."""
    return ", ".join(f"{k}={v}" for k, v in QUICK.items()) + f", novel_elites <= {QUICK_NOVEL_ELITES}"


def migrate(data: Any) -> Any:
    """A run's saved config.json as the run used it: a setting newer than the run is what the run used
    (BEFORE; a run from before fitness.probe scored the standard network), not today's default."""
    if not isinstance(data, dict):
        return data
    data = {**BEFORE, **data}
    if isinstance(data.get("fitness"), dict):
        data["fitness"] = {"probe": "none", **data["fitness"]}
    return data


def read_run_config(path: Path) -> EvolutionConfig:
    """The config.json at ``path``, migrated (FileNotFoundError when absent; EznasError when unreadable)."""
    try:
        data = json.loads(Path(path).read_text())
    except ValueError as exc:
        raise EznasError(f"{path} is not valid JSON ({exc})") from None
    return from_dict(EvolutionConfig, migrate(data), str(path))

