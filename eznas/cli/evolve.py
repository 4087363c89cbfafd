"""``evolve.py`` / ``eznas evolve``: its flags, the run's EvolutionConfig from them, and the run with its
progress bars and printed results.

A new run's config: EvolutionConfig's defaults, then ``--config`` (TOML), ``--quick``, the tasks
(``--search_space``/``--dataset`` or ``--tasks``), the flags of FIELDS and ``--set``, each applied only where
the command line gives it. A resumed run's: its saved config.json, which the same changes may alter only where
a resumed run may (its run folder's rule, eznas.runfolder); any other change is one error line naming the flag."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from eznas.args import add_flag
from eznas.cli.common import SHARED, add_run_flags, add_shared, command_parser, resumed_folder, run_command
from eznas.config import from_dict, get_field, merge_toml, override, plain, replace_fields
from eznas.data import DATASETS
from eznas.errors import EznasError
from eznas.gp.config import EvolutionConfig
from eznas.gp.presets import check_tasks, default_tasks, quick_config, quick_text, run_folder, space_tasks, valid_tasks
from eznas.registry import at_least, check_values

Change = Callable[[EvolutionConfig], EvolutionConfig]


@dataclass(frozen=True)
class Field:
    """The config field a flag sets: its dotted key, the flag's value as the field's, the field's as the flag's."""
    key: str
    to_config: Callable[[Any], Any] = lambda value: value
    from_config: Callable[[Any], Any] = lambda value: value


def _tasks(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _features(text: str) -> tuple[str, ...]:
    """The network features plus ``zc_<name>`` for each registered per-arch proxy in ``text`` ("none": the
    features only)."""
    from eznas.features import FEATURES
    from eznas.gp.pset import PROXY_PREFIX, proxy_name, proxy_terminals

    names = [] if text.strip() == "none" else _tasks(text)
    valid = [proxy_name(t) for t in proxy_terminals()]
    for name in names:
        if name not in valid:
            raise EznasError(f"unknown proxy {name!r} (a proxy terminal must be a per-arch registered proxy; "
                             f"valid: {', '.join(valid)})")
    # EvolutionConfig checks that an export can carry each (the run's winner may read any of them)
    return FEATURES + tuple(dict.fromkeys(PROXY_PREFIX + n for n in names))


def _terminal_names(features: Sequence[str]) -> str:
    from eznas.gp.pset import PROXY_PREFIX

    return ",".join(f[len(PROXY_PREFIX):] for f in features if f.startswith(PROXY_PREFIX)) or "none"


# flag: the config field it sets (the flags that change a run's numbers, and where tasks run)
FIELDS = {
    "tasks": Field("fitness.tasks", _tasks, ",".join),
    "validation_tasks": Field("fitness.validation_tasks", _tasks, ",".join),
    "generations": Field("generations"),
    "population": Field("population"),
    "seed": Field("seed"),
    "test_networks": Field("test_networks"),
    "data_root": Field("fitness.data_root"),
    "device": Field("fitness.device"),
    "batch_size": Field("fitness.batch_size"),
    "probe": Field("fitness.probe"),
    "proxy_terminals": Field("features", _features, _terminal_names),
    "blend": Field("blend_parts"),
    "pool_ops": Field("pool_ops", lambda on: on == "on", lambda on: "on" if on else "off"),
    "winner": Field("winner"),
    "novel_elites": Field("novel_elites"),
    **{name: Field(f"parallel.{name}") for name in ("backend", "workers", "scheduler_address", "cluster", "retries",
                                                     "queue", "account", "walltime", "cores", "memory", "gpus",
                                                     "lifetime")},
}
RANGES = {"population": at_least(2), "generations": at_least(1), "seed": at_least(0), "test_networks": at_least(0)}


def evolve_parser(prog: str = "evolve.py") -> argparse.ArgumentParser:
    from eznas.gp.winner import NEW_IN_RUN, NOVEL

    p = command_parser(
        prog, "Discover a zero-cost proxy by genetic programming: network-level arithmetic over aggregated "
        "per-unit expressions of network statistics, network features and registered proxies' scores "
        "(--proxy_terminals), with log-linear blends of the best programs (--blend); fitness = rank correlation "
        "with real accuracies on fixed selection networks (racing: new programs are screened on a few first); the "
        "hall of fame's winner is chosen on disjoint validation networks and tested on test networks. Writes "
        "config.json, logbook.csv, hall_of_fame.json, references.json (the seed programs and proxy terminals on "
        "the validation networks), checkpoint.pkl, evolution.png, best_proxy.py and test_scores.csv (the top 3 by "
        "validation on test archs) and profile.json (where the run's time went) to the run folder. Flags take dashes "
        "too (--batch-size).",
        epilog="Every config field, those without a flag too (tournament, cxpb, fitness.selection, fitness.metric, "
        "...), can be set with --set KEY=VALUE or in a --config TOML file (docs/evolve.md lists them).")
    default = EvolutionConfig()

    def add(group: argparse._ArgumentGroup, name: str, **kw: Any) -> None:  # a FIELDS flag: the config's default
        value = FIELDS[name].from_config(get_field(default, FIELDS[name].key))
        if name in SHARED:
            add_shared(group, name, **kw)
        elif isinstance(value, int) and not isinstance(value, bool):
            add_flag(group, name, default=value, type=int, metavar="N", **kw)
        else:
            add_flag(group, name, default=value, **kw)

    g = p.add_argument_group("tasks and data")
    add_flag(g, "search_space", "--space", default=None, choices=sorted(default_tasks()),
             help="evolve on this space's tasks (NASBench201, NATSBenchSSS: CIFAR-10 and CIFAR-100; the others: "
             "CIFAR-10), or with --dataset on SPACE:DATASET alone; NASBench101 networks take fitness.width, the "
             "stem, default 128, cheaper smaller; NATSBenchSSS needs its table, see README (default: --tasks)")
    add_flag(g, "dataset", default=None, choices=list(DATASETS), help="with --search_space: the one task SPACE:DATASET")
    add(g, "tasks", metavar="TASKS", help=f"comma-separated SPACE:DATASET tasks (valid: {', '.join(valid_tasks())}); "
        "a task's own network size follows it, e.g. NASBench101:cifar10@width=32 (@width=N, @cells=N: over "
        "fitness.width / fitness.cells, for this task only; its archs and splits stay those of SPACE:DATASET)")
    add(g, "validation_tasks", metavar="TASKS", help="comma-separated tasks, none of them in --tasks, that only "
        "choose the winner among the hall of fame (on their validation networks; selection never reads them): the "
        "winner is what holds on a space evolution did not fit (default: none, the tasks' own validation networks)")
    add(g, "data_root")
    add(g, "device", help="where networks are built and their statistics computed (auto: CUDA when present)")
    add(g, "batch_size")
    add(g, "probe", help="which network of a DARTS or NASBench301 genotype fitness scores: swap (SWAP's probe "
        "network) or none (the space's standard network); default: each space's (DARTS swap, NASBench301 none)")

    g = p.add_argument_group("the evolution")
    add(g, "generations", help="generations, >= 1")
    add(g, "population", help="population size, >= 2")
    add(g, "seed", help="the GP's seed, >= 0; the networks, splits and batch come from fitness.pool_seed, so runs "
        "with other seeds share them")
    add_flag(g, "quick", action="store_true", help=f"a complete small first try, every output file in about 2 "
             f"minutes: {quick_text()}")
    add_flag(g, "config", default=None, metavar="FILE", help="TOML config; unknown keys are errors; flags override it")
    add(g, "proxy_terminals", metavar="PROXIES",
        help="comma-separated registered proxies whose scores become network-level terminals zc_<proxy> (each "
        "computed once per network at its defaults and cached), e.g. meco,synflow,az_expressivity; none: only "
        "the network features")
    add(g, "blend",
        help="in promotion generations, blend N distinct programs (each task's best, then the fittest, and the proxy "
        "terminals) 2 and 3 at a time (sums of their logs, weights 0.25-2, each blend arithmetic on cached values) "
        "and add the 2 best blends to the offspring; 0: no blends, else >= 2")
    add(g, "pool_ops", choices=("on", "off"),
        help="on: the language has net_rank, log(rank / m) of a value among the m networks scored together, and "
        "blends include rank blends (weighted sums of the parts' log ranks, as AZ-NAS combines its scores); a "
        "winner with net_rank is a pool program: it scores a pool of networks (verify_scores.py --program, "
        "best_proxy.score_pool). off: per-network programs only")
    add(g, "winner", choices=("best", "novel"),
        help="the exported program: the best on the validation networks of those not equivalent there to a seed "
        "program or to a proxy terminal, params or flops alone (novel: every task's per-network |Spearman| with "
        f"each < {NOVEL}; the best when none is within 0.05 of its validation fitness), or the hall of fame's best "
        "there (best). With --resume DIR of a finished run: its winner is chosen again this way, its evolution "
        "unchanged")
    add(g, "novel_elites",
        help=f"each generation also keep the N fittest new programs (per-network |Spearman| < {NEW_IN_RUN} with every "
        f"seed program and proxy terminal on the selection networks: below {NOVEL} with room) beside the elites, and blend "
        "them, so that new lineages are refined during the run; 0: off")
    add(g, "test_networks", help="held-out archs per task for the top-3 test, >= 0")

    g = p.add_argument_group("where tasks run (statistics per network, fitness per network; no result depends "
                             "on it)")
    add(g, "backend", help="serial | loky (local processes) | dask; results are the same with each")
    add(g, "workers", help="loky/LocalCluster worker processes, or the most SLURM jobs "
        "(alone, 1 means serial and more than 1 loky)")
    add(g, "scheduler_address", help="dask: connect to this scheduler (e.g. tcp://host:8786) instead of starting one")
    add(g, "cluster", help="dask without an address: local (LocalCluster on 127.0.0.1) or slurm (dask-jobqueue)")
    add(g, "retries", help="reruns of tasks whose worker was lost (dask: per task; loky: of "
        "the unfinished ones)")
    for name, what in (("queue", "partition"), ("account", "account"), ("walltime", "job walltime"),
                       ("cores", "cores per job"), ("memory", "memory per job"), ("gpus", "GPUs per job")):
        add(g, name, help=f"SLURM workers: {what}")
    add(g, "lifetime", help="SLURM workers: retire a worker after this long (e.g. 55m), before the walltime")

    g = p.add_argument_group("run folder")
    add_shared(g, "out", help="run folder (default: results/evolve/<space>-s<seed>-<time>/)")
    add_shared(g, "resume", help=f"continue the run in DIR from its checkpoint with its saved config (a flag that "
               f"would change it is an error; {run_folder('.').rule()}); bare, with --out DIR: continue DIR if it "
               "holds this run (the flags must give its config), else start it there (what runjob.sh --requeue uses)")
    add_flag(g, "cache_dir", default="results/cache/values", metavar="DIR",
             help="cache of network-level values, shared by runs")
    add_run_flags(g, "keys: EvolutionConfig's fields, fitness.* FitnessConfig's, parallel.* ParallelConfig's, "
                  "e.g. --set fitness.selection=300 --set tournament=3")
    return p


# ---------------------------------------------------------------------------------------------- the config
def _tasks_flag(args: argparse.Namespace) -> str:
    return "--search_space/--dataset" if args.dataset else "--search_space"


def changes(args: argparse.Namespace) -> list[tuple[str, Change]]:
    """What the command line changes in a config, in order, each with the name its errors give."""
    given = args.given
    out: list[tuple[str, Change]] = []
    if "config" in given:
        out.append(("--config", lambda cfg: merge_toml(cfg, args.config)))
    if args.quick:
        out.append(("--quick", quick_config))
    if args.search_space:
        tasks = space_tasks(args.search_space, args.dataset)
        out.append((_tasks_flag(args), lambda cfg: replace_fields(cfg, {"fitness.tasks": tasks})))
    for name, field in FIELDS.items():
        if name in given:
            out.append((f"--{name}", lambda cfg, f=field, v=getattr(args, name):
                        replace_fields(cfg, {f.key: f.to_config(v)})))
    if "workers" in given and "backend" not in given:  # --workers N alone: loky for N > 1 on a serial config,
        out.append(("--workers", _backend_for_workers))  # serial for N = 1 on a loky one
    if args.set:  # at once: the config's checks see them together (fitness.screen <= fitness.selection)
        out.append((" ".join(f"--set {item}" for item in args.set), lambda cfg: override(cfg, *args.set)))
    return out


def _backend_for_workers(cfg: EvolutionConfig) -> EvolutionConfig:
    backend = {("serial", True): "loky", ("loky", False): "serial"}.get(
        (cfg.parallel.backend, cfg.parallel.workers > 1), cfg.parallel.backend)
    return replace_fields(cfg, {"parallel.backend": backend})


def _apply(cfg: EvolutionConfig, name: str, change: Change) -> EvolutionConfig:
    """``change(cfg)``; its error names the flag (--set names itself)."""
    try:
        return change(cfg)
    except EznasError as exc:
        raise EznasError(str(exc) if name.startswith("--set ") else f"{name}: {exc}") from None


def source(args: argparse.Namespace, key: str) -> str:
    """What set a config field, as an error names it: its flag, --set, the TOML file, or the default."""
    flags = [f"--{n}" for n, f in FIELDS.items() if f.key == key and n in args.given]
    if key == "fitness.tasks" and args.search_space:
        flags.append(_tasks_flag(args))
    if any(item.partition("=")[0].strip() == key for item in args.set):
        flags.append(f"--set {key}")
    return flags[-1] if flags else f"{key} (--config {args.config})" if args.config else key


def check_config(cfg: EvolutionConfig, args: argparse.Namespace) -> EvolutionConfig:
    """The ranges the dataclass leaves to the command, and the tasks; errors name what set the value."""
    check_values(plain(cfg), RANGES, name=lambda k: source(args, k))
    check_tasks(cfg.fitness.tasks, source(args, "fitness.tasks"))
    if cfg.fitness.validation_tasks:
        check_tasks(cfg.fitness.validation_tasks, source(args, "fitness.validation_tasks"))
    return cfg


def new_run_config(args: argparse.Namespace) -> EvolutionConfig:
    """A new run's config: EZNAS's defaults, then the command line's changes."""
    cfg = EvolutionConfig()
    for name, change in changes(args):
        cfg = _apply(cfg, name, change)
    return check_config(cfg, args)


def culprit(args: argparse.Namespace, key: str) -> str:
    """What an error names for a config field: what set it (source), else the flag that would have."""
    named = source(args, key)
    return named if named.startswith("--") else next((f"--{n}" for n, f in FIELDS.items() if f.key == key), named)


def resumed_config(args: argparse.Namespace, run_dir: Path) -> EvolutionConfig:
    """The saved config of the run in ``run_dir`` with the command line's changes; one that would change what a
    resumed run keeps is an error naming it."""
    folder = run_folder(run_dir)
    saved = folder.saved_config()
    try:
        cfg = from_dict(EvolutionConfig, saved, str(folder.config))
    except EznasError as exc:
        raise EznasError(f"--resume {run_dir}: {exc}") from None
    for name, change in changes(args):
        new = _apply(cfg, name, change)
        folder.check_resumed(plain(cfg), plain(new), name=lambda key, flag=name: flag)
        cfg = new
    return check_config(cfg, args)


def evolve_setup(args: argparse.Namespace) -> tuple[EvolutionConfig, Path, bool]:
    """The run's config, folder and whether it resumes; every flag is checked and nothing is written."""
    from datetime import datetime

    if args.search_space and "tasks" in args.given:
        raise EznasError("--search_space/--space and --tasks both choose the tasks: give one")
    if args.dataset and not args.search_space:
        raise EznasError(f"--dataset {args.dataset} needs --search_space: a task is SPACE:DATASET (or give --tasks)")
    resumed = resumed_folder(args)
    if resumed is not None and isinstance(args.resume, str) and args.resume:  # --resume DIR: the run's own config
        return resumed_config(args, Path(resumed)), Path(resumed), True
    cfg = new_run_config(args)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    label = args.search_space or "+".join(sorted({t.split(':')[0] for t in cfg.fitness.tasks}))
    run_dir = Path(args.out) if args.out else Path("results") / "evolve" / f"{label}-s{cfg.seed}-{stamp}"
    folder = run_folder(run_dir)
    if resumed is not None:  # a bare --resume: continue --out if it holds a run: these flags must give its config
        if folder.held():
            saved = resumed_config(args, run_dir)
            if "device" not in args.given:  # where, not what (no cached value depends on it), and its default was
                cfg = replace_fields(cfg, {"fitness.device": saved.fitness.device})  # cpu: a requeued run keeps its own
            folder.check_resumed(plain(saved), plain(cfg), name=lambda key: culprit(args, key))
            cfg = dataclasses.replace(cfg, winner=saved.winner)  # its own, or --winner's (a requeue keeps it)
        return cfg, run_dir, folder.config.is_file()
    folder.guard(resume=False)
    return cfg, run_dir, False


# ---------------------------------------------------------------------------------------------- the run
def evolve_main(argv: Sequence[str] | None = None, prog: str = "evolve.py") -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from eznas.gp.run import run_evolution

    def run(args: argparse.Namespace) -> int:
        cfg, run_dir, resume = evolve_setup(args)
        bars: list = []

        def progress(desc: str, total: int):
            bar = tqdm(total=total, desc=desc, unit="net", disable=True if args.quiet else None, leave=False)
            bars.append(bar)
            return lambda: bar.update(1)

        gen_bar = tqdm(total=cfg.generations, desc="generations", disable=True if args.quiet else None)

        def on_generation(state) -> None:  # noqa: ANN001 - a State
            gen_bar.n = state.generation
            gen_bar.set_postfix(best=f"{state.hall_of_fame[0].fitness.values[1]:.4f}")
            gen_bar.refresh()

        with logging_redirect_tqdm():
            try:
                result = run_evolution(cfg, run_dir, resume=resume, cache_dir=Path(args.cache_dir),
                                       progress=progress, on_generation=on_generation)
            finally:
                gen_bar.close()
                for bar in bars:
                    bar.close()
        print(f"run folder: {result['run_dir']}")
        for rank, b in enumerate(result["best"], 1):
            print(f"top{rank} validation={b['validation_fitness']:.4f} selection={b['fitness']:.4f} "
                  f"program={b['exported']}")
        for row in result["test"]:
            print(f"test task={row['task']} kendall={row['kendall']:.4f} spearman={row['spearman']:.4f} "
                  f"n={row['n']} program={row['program']}")
        return 0

    return run_command(lambda: evolve_parser(prog), argv, run)
