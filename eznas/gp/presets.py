"""What an evolution run's settings mean beyond their dataclass: the tasks evolution has data for (and a
space's default tasks), the ``quick`` preset's sizes, and the config.json of a run made before a setting
existed read as what that run used (its :func:`run_folder`)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from eznas.config import replace_fields
from eznas.errors import EznasError
from eznas.spaces.base import SPACES, list_spaces
from eznas.gp.config import BEFORE, RESUMABLE_CHANGES, EvolutionConfig, Task
from eznas.runfolder import RunFolder, as_used


# quick: the same run, small enough for a first try in about two minutes (every output file)
QUICK = {"population": 12, "offspring": 12, "generations": 2, "elites": 2, "hall_of_fame": 4, "test_networks": 12,
         "fitness.selection": 24, "fitness.validation": 12, "fitness.screen": 8, "fitness.promote": 3}
QUICK_NOVEL_ELITES = 2  # at most
CHECKPOINT = "checkpoint.pkl"  # a run folder's checkpoint (eznas.gp.checkpoint): the folder holds a run


def evolve_datasets() -> dict[str, tuple[str, ...]]:
    """The datasets evolution has data for, per registered space it can evolve on (a user's plug-in too)."""
    return {name: SPACES.get(name).datasets for name in list_spaces() if SPACES.get(name).evolvable}


def default_tasks() -> dict[str, tuple[str, ...]]:
    """Each space's tasks when only the space is named (its ``default_datasets``, else all its datasets)."""
    return {name: tuple(f"{name}:{d}" for d in (SPACES.get(name).default_datasets or datasets))
            for name, datasets in evolve_datasets().items()}


def valid_tasks() -> list[str]:
    return [f"{s}:{d}" for s, ds in evolve_datasets().items() for d in ds]


def space_tasks(space: str, dataset: str | None = None) -> tuple[str, ...]:
    """The tasks of a space: ``SPACE:DATASET`` with a dataset, else the space's default tasks."""
    tasks = default_tasks()
    if space not in tasks:
        raise EznasError(f"unknown space {space!r}; valid: {', '.join(tasks)}")
    return (f"{space}:{dataset}",) if dataset else tasks[space]


def check_tasks(tasks: Sequence[str], where: str) -> None:
    """Every task is SPACE:DATASET[@width=N][@cells=N] with a space and dataset evolution has data for
    (EznasError naming ``where``)."""
    valid, datasets = ", ".join(valid_tasks()), evolve_datasets()
    if not tasks:
        raise EznasError(f"{where}: no tasks (valid: {valid})")
    for task in tasks:
        try:
            parsed = Task.parse(task)  # its options (@width=N, @cells=N): one line naming a bad one
        except EznasError as e:
            raise EznasError(f"{where}: {e}") from None
        space, dataset = parsed.space, parsed.dataset
        if space not in datasets:
            raise EznasError(f"{where}: unknown space {space!r} in task {task!r}; valid tasks: {valid}")
        if dataset not in datasets[space]:
            raise EznasError(f"{where}: unknown dataset {dataset!r} for {space} in task {task!r}; valid tasks: {valid}")


def quick_config(cfg: EvolutionConfig) -> EvolutionConfig:
    """The ``quick`` preset over ``cfg``: QUICK's sizes, at most QUICK_NOVEL_ELITES novel elites."""
    return replace_fields(cfg, {**QUICK, "novel_elites": min(cfg.novel_elites, QUICK_NOVEL_ELITES)})


def quick_text() -> str:
    """The preset in words, e.g. for a flag's help."""
    return ", ".join(f"{k}={v}" for k, v in QUICK.items()) + f", novel_elites <= {QUICK_NOVEL_ELITES}"


def migrate(data: Any) -> Any:
    """A run's saved config.json as the run used it (``eznas.runfolder.as_used``): a setting newer than the run
    is what the run used (BEFORE; a run from before fitness.probe scored the standard network), else today's
    default, nested settings key by key. Anything but a dict is left for from_dict to refuse."""
    if not isinstance(data, dict):
        return data
    return as_used(asdict(EvolutionConfig()), {**BEFORE, "fitness": {"probe": "none"}})(data)


def _flag(key: str) -> str:
    return "where tasks run" if key == "parallel" else f"--{key}"


def run_folder(path: str | Path) -> RunFolder:
    """An evolution run's folder: it holds a run once it has a checkpoint; a resumed run may change
    RESUMABLE_CHANGES; its config.json is read as the run used it (migrate)."""
    return RunFolder(Path(path), holds=(CHECKPOINT,), may_change=RESUMABLE_CHANGES, flag=_flag, migrate=migrate)

