"""What every search space provides: its benchmark records and a network builder."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import torch.nn as nn

from eznas.errors import EznasError
from eznas.registry import Registry
from eznas.spaces.encoding import Encoding


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
    """A registered search space. Subclasses set ``name`` and implement the three abstract methods; the class
    attributes below say what else it has (their defaults: a space with none of it)."""

    name: ClassVar[str]
    datasets: ClassVar[tuple[str, ...]] = ("cifar10",)  # the datasets its table has accuracies for
    default_datasets: ClassVar[tuple[str, ...] | None] = None  # its tasks when only the space is named (None: all)
    evolvable: ClassVar[bool] = True  # a task SPACE:DATASET says all its networks need (NDS also needs --nds_space)
    full_table: ClassVar[bool] = False  # its table holds every arch of the space (a search keeps to it by default)
    sized: ClassVar[tuple[str, ...]] = ()  # which of SpaceOptions' ``width``/``cells`` its networks take
    networks: ClassVar[Mapping[str, Any]] = {}  # the networks of a spec that ``--probe`` may name (none: no --probe)
    default_probe: ClassVar[str | None] = None  # the one scored when --probe is not given
    optimum: ClassVar[Mapping[str, float]] = {}  # the published best test accuracy of its table per dataset, if known

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

    def encoding(self) -> Encoding | None:
        """Its archs as tuples of choices, for search (None: the space cannot be searched)."""
        return None

    @classmethod
    def has_probes(cls) -> bool:
        """Whether a spec has several networks, so the space takes ``--probe`` (DARTS genotypes)."""
        return bool(cls.networks)

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


def space_class(name: str) -> type[SearchSpace]:
    """The registered class of ``name``: its class attributes, without building it (UnknownNameError listing
    the valid names)."""
    return SPACES.get(name)


def get_space(name: str, options: SpaceOptions = SpaceOptions()) -> SearchSpace:
    return SPACES.get(name)(options)


def spaces_where(test: Callable[[type[SearchSpace]], bool]) -> list[str]:
    """The registered spaces whose class passes ``test`` (e.g. ``lambda c: "width" in c.sized``), sorted."""
    return [name for name in SPACES.names() if test(SPACES.get(name))]


def check_network_options(space: str, width: int | None = None, cells: int | None = None,
                          probe: str | None = None) -> None:
    """EznasError for the first of ``--width``, ``--cells``, ``--probe`` given (not None) that ``space``'s
    networks do not take, naming the spaces that take it."""
    for field, value in (("width", width), ("cells", cells), ("probe", probe)):
        takes: Callable[[type[SearchSpace]], bool] = (
            (lambda c: c.has_probes()) if field == "probe" else (lambda c, f=field: f in c.sized))
        if value is not None and not takes(space_class(space)):
            raise EznasError(f"--{field} applies to --search_space {' or '.join(spaces_where(takes))} only, "
                             f"not {space}")


def searchable_spaces() -> list[str]:
    """The registered spaces with an encoding (``search.py`` searches them), sorted."""
    return [name for name in SPACES.names() if get_space(name).encoding() is not None]
