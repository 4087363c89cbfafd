"""An evolution run's settings: :class:`EvolutionConfig` (the loop, the winner) with its :class:`FitnessConfig`
(the tasks, their splits and the objective) and :class:`Task`; what a resumed run may change (``RESUMABLE_CHANGES``)
and what a run made before a setting existed used (``BEFORE``). gp/presets.py holds the task lists, the quick
preset and reading old run configs."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from eznas.errors import EznasError
from eznas.features import FEATURES
from eznas.gp.operators import BLEND_WEIGHTS
from eznas.gp.pset import PROXY_PREFIX, network_terminals
from eznas.gp.requirements import check_exportable
from eznas.gp.seeds import SEEDS
from eznas.parallel import ParallelConfig
from eznas.spaces.darts import PROBES
from eznas.stats.collector import NAMES

WINNERS = ("best", "novel")
COMBINES = ("min", "mean", "margin")  # how a program's correlations over the tasks make its fitness
# the default proxy terminals: with blends, the setting that won the discovery benchmark (README, Discovery)
PROXY_TERMINALS = ("zc_az_expressivity", "zc_az_progressivity", "zc_synflow")
# the default fitness: every space with data, NB-101 on a 32-wide stem and NB-301 on a small network of its
# genotypes (width 8, 3 cells: 0.2 s a pass at batch 16 against 1.4 s for its training network), to keep a run's
# cost down
DEFAULT_TASKS = ("NASBench201:cifar10", "NASBench201:cifar100", "DARTS:cifar10", "NASBench101:cifar10@width=32",
                 "NASBench301:cifar10@width=8@cells=3", "NASBenchMacro:cifar10")
TASK_OPTIONS = ("width", "cells")  # a task's own network size: ``SPACE:DATASET@width=32@cells=5``


@dataclass(frozen=True)
class Task:
    """A space and a dataset; ``width`` / ``cells`` size this task's networks over ``fitness.width`` /
    ``fitness.cells`` (e.g. ``NASBench101:cifar10@width=32`` next to DARTS on its width-3 probe network)."""
    space: str
    dataset: str
    width: int | None = None
    cells: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Task":
        head, *options = text.split("@")
        space, _, dataset = head.partition(":")
        sizes: dict[str, int] = {}
        for option in options:
            name, _, value = option.partition("=")
            if name not in TASK_OPTIONS or not value.isdigit() or int(value) < 1 or name in sizes:
                raise EznasError(f"task {text!r}: bad option {option!r} (valid: @width=N, @cells=N, each once, N >= 1)")
            sizes[name] = int(value)
        return cls(space, dataset or "cifar10", **sizes)

    @property
    def table(self) -> str:
        """``SPACE:DATASET``: what the splits depend on (a task's network size does not change its archs)."""
        return f"{self.space}:{self.dataset}"

    def __str__(self) -> str:
        return self.table + "".join(f"@{n}={getattr(self, n)}" for n in TASK_OPTIONS if getattr(self, n) is not None)


@dataclass(frozen=True)
class FitnessConfig:
    tasks: tuple[str, ...] = DEFAULT_TASKS
    validation_tasks: tuple[str, ...] = ()  # tasks that only choose the winner (their validation networks; none
    # of their networks is read by selection): the winner is the program that holds on a space selection never
    # saw. Empty: the winner is chosen on the tasks' own validation networks
    selection: int = 200  # networks per task that fitness is measured on
    validation: int = 100  # networks per task that choose the winner among the hall of fame
    screen: int = 20  # the first selection networks, on which a new program is tried first
    promote: int = 4  # screened programs per generation that go on at most to all selection networks
    promote_margin: float = 0.1  # ... if their screening fitness is at least the run's bar minus this
    batch_size: int = 16  # SWAP-like counts saturate at 2^batch patterns (16 at batch 4: no signal)
    metric: str = "kendall"  # or "spearman"
    combine: str = "min"  # or "mean", or "margin": the worst task's margin over its best reference (objective.py)
    signal: str = "logits_sum"
    dtype: str = "float32"  # statistics are rounded to this before programs read them (float32: as users
    # score the exported program; float16 saturates at 65504, which pre-activations of deep NB-201 nets pass)
    pool_seed: int = 0  # the splits, the batch and each network's initialisation (not the GP seed)
    data_root: str | None = None
    device: str = "auto"  # where networks are built and their statistics computed (auto: CUDA when present)
    width: int | None = None  # DARTS/NASBench301 initial channels, NASBench101 stem (None: the space's default)
    cells: int | None = None
    probe: str | None = None  # DARTS/NASBench301 tasks: which network of a genotype ("swap": SWAP's probe network;
    # "none": the space's standard one; None: each space's default, DARTS swap, NASBench301 none; PROBES)

    def __post_init__(self) -> None:
        checks = [("selection", self.selection >= 2, ">= 2"), ("validation", self.validation >= 2, ">= 2"),
                  ("screen", 2 <= self.screen <= self.selection, f"in [2, selection={self.selection}]"),
                  ("promote", self.promote >= 1, ">= 1"), ("batch_size", self.batch_size >= 1, ">= 1"),
                  ("metric", self.metric in ("kendall", "spearman"), "kendall or spearman"),
                  ("combine", self.combine in COMBINES, " or ".join(COMBINES)), ("tasks", bool(self.tasks), "not empty"),
                  ("probe", self.probe is None or self.probe in PROBES, f"one of: {', '.join(PROBES)}"),
                  ("validation_tasks", not set(self.validation_tasks) & set(self.tasks)
                   and len(set(self.validation_tasks)) == len(self.validation_tasks),
                   "tasks not among fitness.tasks, each once")]
        for name, ok, valid in checks:
            if not ok:
                raise EznasError(f"fitness.{name} must be {valid}, got {getattr(self, name)!r}")


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
    blend_weights: tuple[float, ...] = BLEND_WEIGHTS  # each further part's weight relative to the first's (1.0
    # alone: equal-weight blends, as the hand-made rank ensembles are: nothing fitted)
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
        if unknown := [s for s in self.seed_programs if s not in SEEDS]:
            raise EznasError(f"seed_programs: unknown seed {unknown[0]!r}; valid: {', '.join(SEEDS)}")
        for name in self.seed_programs:  # a seed reads only the language's terminals
            for token in re.findall(r"\w+", SEEDS[name]):
                left_out = ("terminals" if token in NAMES and token not in self.terminals else
                            "features" if token in network_terminals() and token not in self.features else None)
                if left_out:
                    raise EznasError(f"seed_programs: seed {name!r} reads {token!r}, which {left_out} leaves out; "
                                     f"drop the seed or keep {token!r}")
        if self.winner not in WINNERS:
            raise EznasError(f"winner must be one of {', '.join(WINNERS)}, got {self.winner!r}")
        if self.novel_elites < 0:
            raise EznasError(f"novel_elites must be >= 0, got {self.novel_elites}")
        if self.blend_parts < 0 or self.blend_parts == 1 or self.blend_keep < 0:
            raise EznasError(f"blend_parts must be 0 (no blends) or >= 2 and blend_keep >= 0, got "
                             f"blend_parts={self.blend_parts}, blend_keep={self.blend_keep}")
        if not self.blend_weights or not all(math.isfinite(w) and w > 0 for w in self.blend_weights):
            raise EznasError(f"blend_weights must be one or more finite numbers > 0, got {self.blend_weights}")
        rates = {"cxpb": self.cxpb, "mutpb": self.mutpb, "joinpb": self.joinpb}
        if any(not 0 <= v <= 1 for v in rates.values()) or sum(rates.values()) > 1:
            raise EznasError(f"cxpb, mutpb and joinpb must be in [0, 1] with a sum <= 1, got "
                             f"{', '.join(f'{k}={v}' for k, v in rates.items())}")


RESUMABLE_CHANGES = ("generations", "winner", "test_networks", "parallel")  # the settings a resumed run may change (winner: chosen again)
BEFORE = {"blend_parts": 0, "winner": "best", "pool_ops": False, "novel_elites": 0}  # what a run made before a setting existed used (not its default)

