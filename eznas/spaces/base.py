"""What every search space provides: its benchmark records and a network builder."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import torch.nn as nn

from eznas.registry import Registry


@dataclass(frozen=True)
class Arch:
    """One benchmark architecture: a stable id, its spec string and its trained accuracy (%)."""

    uid: str
    spec: str
    accuracy: float


@dataclass(frozen=True)
class SpaceOptions:
    """Knobs some spaces take; a space ignores what it does not use."""

    nds_space: str | None = None
    width: int | None = None  # DARTS/NDS initial channels (None: the space's default)
    cells: int | None = None  # DARTS/NDS number of cells (None: the space's default)
    probe: str | None = None  # DARTS: a proxy's own probe network (``swap``: no stem, one cell, width 3)


class SearchSpace(ABC):
    """A registered search space. Subclasses set ``name`` and implement the three methods."""

    name: ClassVar[str]
    datasets: ClassVar[tuple[str, ...]] = ("cifar10",)  # the datasets its table has accuracies for
    default_datasets: ClassVar[tuple[str, ...] | None] = None  # its tasks when only the space is named (None: all)
    evolvable: ClassVar[bool] = True  # a task SPACE:DATASET says all its networks need (NDS also needs --nds_space)

    def __init__(self, options: SpaceOptions = SpaceOptions()) -> None:
        self.options = options

    @abstractmethod
    def default_benchmark(self, data_root: Path, dataset: str) -> Path:
        """Where the ground-truth table lives under the data root (it may not exist)."""

    @abstractmethod
    def load(self, path: Path, dataset: str, accuracy_key: str | None = None) -> list[Arch]:
        """Read the benchmark file; a missing file or column raises DataError naming it."""

    @abstractmethod
    def build(self, spec: str, num_classes: int) -> nn.Module:
        """Build the network for ``spec`` (raises ArchError on a bad spec); forward returns logits."""

    @property
    def tag(self) -> str:
        """A short label for run folders and result rows."""
        return self.name


SPACES: Registry[type[SearchSpace]] = Registry("search space", plugins="eznas.spaces")


def register_space(name: str) -> Callable[[type[SearchSpace]], type[SearchSpace]]:
    """Register a SearchSpace subclass under ``name`` (also its ``name``, unless the class sets its own)."""
    def decorator(cls: type[SearchSpace]) -> type[SearchSpace]:
        if "name" not in cls.__dict__:
            cls.name = name
        return SPACES.register(name)(cls)

    return decorator


def list_spaces(pattern: str = "*") -> list[str]:
    return SPACES.names(pattern)


def get_space(name: str, options: SpaceOptions = SpaceOptions()) -> SearchSpace:
    return SPACES.get(name)(options)
