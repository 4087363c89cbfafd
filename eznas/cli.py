"""Command-line front ends. Entry scripts call these; they parse flags, show progress, print results."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Sequence

from eznas.args import Parser, add_flag, add_version_flag
from eznas.data import DATA_ENV, DATASETS
from eznas.errors import EznasError
from eznas.proxies import list_proxies
from eznas.registry import UnknownNameError, at_least, check_values
from eznas.scoring import INITS
from eznas.spaces import list_spaces
from eznas.spaces.darts import PROBES
from eznas.threads import SLURM_CPUS_ENV, THREADS_ENV, command_threads

log = logging.getLogger(__name__)


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    """``--threads N``, shared by verify, evolve and search (eznas.threads)."""
    add_flag(parser, "threads", type=int, default=None, metavar="N",
             help=f"torch threads per process, 1 to the CPUs this process may use (default: ${THREADS_ENV}, "
             f"else $OMP_NUM_THREADS, else the automatic share: the CPUs this process may use, at most "
             f"${SLURM_CPUS_ENV}, divided by the worker processes it starts); no result depends on it")


DEFAULT_PROXIES = ("synflow", "naswot", "params")


def _proxy_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("empty proxy list")
    return names


def _n_samples(text: str) -> int:
    """``all`` (or -1): every architecture; else a count (checked >= 1 with the config)."""
    if text.strip().lower() == "all":
        return -1
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count >= 1 or 'all', got {text!r}") from None


def verify_parser(prog: str = "verify_scores.py") -> argparse.ArgumentParser:
    p = Parser(
        prog=prog,
        description="Score benchmark architectures with zero-cost proxies and rank-correlate the scores with "
        "their trained accuracies. Writes scores.csv, summary.json, summary.md (the proxies ranked by Spearman "
        "rho, with its 95% CI, Kendall tau, precision at the top 10%, the top-scored arch's accuracy) and "
        "scatter.png to the run folder and appends one row per proxy to results/all_tests.csv. Stdout ends with "
        "summary.md's table. Progress: a bar in a terminal, else (e.g. under SLURM) a log line every minute "
        "or 10% of the archs.",
        epilog=f"proxies: {', '.join(list_proxies())}. Data root: --data-root, else ${DATA_ENV}, else ./data.",
    )
    add_flag(p, "search_space", "--space", default="NASBench201", choices=list_spaces(),
             help="search space (default NASBench201)")
    add_flag(p, "nds_space", default=None, help="NDS space: darts, amoeba, enas, pnas, nasnet (with --search_space NDS)")
    add_flag(p, "dataset", default="cifar10", choices=list(DATASETS), help="image dataset (default cifar10)")
    add_flag(p, "batch_size", type=int, default=16, help="images per batch (default 16)")
    add_flag(p, "n_samples", type=_n_samples, default=-1, metavar="N|all",
             help="architectures to sample, N >= 1, or all (default; -1 also means all)")
    add_flag(p, "seed", type=int, default=0, help="seed (>= 0) of the arch sample, the batch and the initialisation")
    add_flag(p, "proxy", type=_proxy_list, default=None,
             help="comma-separated proxies, each optionally with options as name:key=value "
             f"(e.g. swap:repeats=8; values are range-checked); default {','.join(DEFAULT_PROXIES)} unless "
             "programs are given")
    add_flag(p, "accuracy_key", default=None,
             help="accuracy column (NB-201 defaults: cifar10_test, cifar100_test, imagenet16_120_test)")
    add_flag(p, "benchmark_path", default=None, help="ground-truth file (default: the space's file under the data root)")
    add_flag(p, "data_root", default=None, help=f"data root (default ${DATA_ENV}, else ./data)")
    add_flag(p, "device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CUDA when present")
    add_flag(p, "out", default=None, help="run folder (default results/verify/<space>-<dataset>-s<seed>-<time>/); "
             "one that holds results is only continued, with --resume")
    add_flag(p, "results_csv", default="results/all_tests.csv", help="cumulative results CSV to append to")
    add_flag(p, "fresh_batch", action="store_true", help="a fresh batch per network (EZNAS) instead of one shared batch")
    add_flag(p, "first_batch", action="store_true",
             help="the first --batch_size training images in file order (SWAP's unshuffled loader) instead of a "
             "seeded draw")
    add_flag(p, "init", default="default", choices=INITS, help="weight initialisation (default: PyTorch's)")
    add_flag(p, "width", type=int, default=None, help="DARTS/NASBench301/NDS initial channels, NASBench101 stem channels (NB-101: 128), >= 1 (default: the space's)")
    add_flag(p, "cells", type=int, default=None, help="DARTS/NASBench301/NDS number of cells, >= 1 (default: the space's)")
    add_flag(p, "probe", default=None, choices=list(PROBES),
             help="DARTS, NASBench301: which network of a genotype is scored: swap (DARTS's default; SWAP's probe "
             "network: no stem, one reduction cell, width 3) or none (the standard network, stem and 8 cells: width 16 "
             "for DARTS; NASBench301's default, NB-301's training network at width 32); --width/--cells override its size")
    add_flag(p, "bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs, >= 1 (default 1000)")
    add_flag(p, "program", action="append", default=[], metavar="EXPR",
             help="an evolved program to score like a proxy (repeatable), e.g. 'mean_units(fro(pre_D))'")
    add_flag(p, "program_file", default=None, metavar="RUN/hall_of_fame.json",
             help="score the programs of an evolution run's hall of fame (their exported, higher-is-better form)")
    add_flag(p, "program_top", type=int, default=3, help="how many hall-of-fame programs, >= 1 (default 3)")
    add_flag(p, "ranker", action="append", default=[], metavar="DIR",
             help="a saved learned ranker's folder (eznas.rankers: ranker.json) to score like a proxy (repeatable)")
    add_flag(p, "program_signal", default="logits_sum", choices=("logits_sum", "ce"),
             help="backward signal for programs' statistics (default logits_sum, as in evolution)")
    add_flag(p, "resume", action="store_true",
             help="with --out DIR: continue the unfinished run there (its scores so far are checkpointed about "
             "every minute), or start it if there is none; same settings required (only --results_csv and "
             "--bootstrap may change); a finished run is reported as it is")
    add_flag(p, "quiet", action="store_true", help="no progress bar (outside a terminal: no progress lines)")
    add_threads_flag(p)
    add_version_flag(p)
    return p


class LogProgress:
    """A progress bar for a log (stderr no terminal, e.g. a SLURM job's file): like tqdm's ``update``,
    ``set_postfix`` and ``close``, it logs a line (done/total, elapsed, ETA) every ``seconds`` or every
    ``fraction`` of the total, whichever comes first, and at the end. The ETA counts only the items done
    since it started (not those a resumed run had done before)."""

    def __init__(self, total: int, desc: str, unit: str, initial: int = 0, seconds: float = 60.0,
                 fraction: float = 0.1, clock: Callable[[], float] = time.monotonic):
        self.total, self.desc, self.unit, self.n, self.first = total, desc, unit, initial, initial
        self.seconds, self.step, self.clock = seconds, max(1, math.ceil(fraction * total)), clock
        self.start = self.last = clock()
        self.logged, self.postfix = initial, ""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.seconds or self.n - self.logged >= self.step or self.n >= self.total:
            self.log(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = "".join(f", {k}={v}" for k, v in values.items())

    def close(self) -> None:
        if self.n != self.logged:
            self.log(self.clock())

    def log(self, now: float) -> None:
        elapsed, done = now - self.start, self.n - self.first
        eta = _clock(elapsed / done * max(self.total - self.n, 0)) if done else "?"
        log.info("%s: %d/%d %ss (%d%%), elapsed %s, ETA %s%s", self.desc, self.n, self.total, self.unit,
                 100 * self.n // max(self.total, 1), _clock(elapsed), eta, self.postfix)
        self.last, self.logged = now, self.n


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def progress_bar(total: int, desc: str, unit: str, quiet: bool, initial: int = 0) -> Any:
    """A command's progress: a tqdm bar when stderr is a terminal, else LogProgress lines; none when quiet."""
    from tqdm import tqdm

    if not quiet and not sys.stderr.isatty():
        return LogProgress(total, desc, unit, initial)
    return tqdm(total=total, initial=initial, unit=unit, desc=desc, disable=quiet)


def hall_of_fame_programs(path: str, top: int) -> list[str]:
    """The exported programs of a run's hall_of_fame.json (best first)."""
    try:
        entries = json.loads(Path(path).read_text())
        programs = [e["exported"] for e in entries[:top]]
    except FileNotFoundError:
        raise EznasError(f"--program-file: {path} does not exist") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise EznasError(f"--program-file: {path} is not a hall_of_fame.json ({exc})") from None
    if not programs or not all(isinstance(p, str) for p in programs):
        raise EznasError(f"--program-file: {path} holds no programs (expected a list of entries with 'exported')")
    return programs


def run_cli(main: Callable[[], int]) -> int:
    """Run a CLI body; user errors become one ``error:`` line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return main()
    except (EznasError, UnknownNameError, ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run_command(parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None,
                run: Callable[[argparse.Namespace], int]) -> int:
    """Parse ``argv``, then ``run(args)`` with the command's threads (``--threads``; eznas.threads), as
    run_cli runs a body."""
    def body() -> int:
        args = parser().parse_args(argv)
        with command_threads(args.threads):
            return run(args)

    return run_cli(body)


def verify_config(args: argparse.Namespace) -> "VerifyConfig":
    """The run's config from the flags (ranges are checked by run_verify, before anything is read)."""
    from eznas.verify import VerifyConfig

    check_values(vars(args), {"program_top": at_least(1)}, name=lambda k: f"--{k}")
    if args.resume and not args.out:
        raise EznasError("--resume needs --out DIR: the run folder to continue")
    programs = list(args.program)
    if args.program_file:
        programs += hall_of_fame_programs(args.program_file, args.program_top)
    proxies = args.proxy if args.proxy is not None else (() if programs or args.ranker else DEFAULT_PROXIES)
    return VerifyConfig(
        programs=tuple(programs), program_signal=args.program_signal, rankers=tuple(args.ranker),
        search_space=args.search_space, nds_space=args.nds_space, dataset=args.dataset,
        batch_size=args.batch_size, n_samples=args.n_samples, seed=args.seed, proxies=proxies,
        accuracy_key=args.accuracy_key, benchmark_path=args.benchmark_path, data_root=args.data_root,
        device=args.device, out=args.out, results_csv=args.results_csv, fresh_batch=args.fresh_batch,
        first_batch=args.first_batch, init=args.init, width=args.width, cells=args.cells, probe=args.probe,
        bootstrap=args.bootstrap,
    )


def verify_main(argv: Sequence[str] | None = None, prog: str = "verify_scores.py") -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from eznas.report import summary_table
    from eznas.verify import notes, result_line, run_verify

    def run(args: argparse.Namespace) -> int:
        cfg = verify_config(args)
        bars = []

        def progress(total: int, done: int):
            bar = progress_bar(total, "scoring", "arch", args.quiet, initial=done)
            bars.append(bar)
            return lambda _: bar.update(1)

        with logging_redirect_tqdm():
            try:
                summary = run_verify(cfg, progress, resume=args.resume)
            finally:
                for bar in bars:
                    bar.close()
        print(f"run folder: {summary['config']['run_dir']}")
        for line in notes(summary):
            print(line)
        for name, m in summary["proxies"].items():
            print(result_line(name, m))
        print()
        print(summary_table(summary))
        return 0

    return run_command(lambda: verify_parser(prog), argv, run)


SPACE_TASKS = {"NASBench201": ("NASBench201:cifar10", "NASBench201:cifar100"), "DARTS": ("DARTS:cifar10",),
               "NASBench301": ("NASBench301:cifar10",), "NASBench101": ("NASBench101:cifar10",),
               "NATSBenchSSS": ("NATSBenchSSS:cifar10", "NATSBenchSSS:cifar100"),
               "NASBenchMacro": ("NASBenchMacro:cifar10",)}
EVOLVE_DATASETS = {"NASBench201": ("cifar10", "cifar100", "ImageNet16-120"), "DARTS": ("cifar10",),
                   "NASBench301": ("cifar10",), "NASBench101": ("cifar10",),
                   "NATSBenchSSS": ("cifar10", "cifar100", "ImageNet16-120"),
                   "NASBenchMacro": ("cifar10",)}  # task spaces
EVOLVE_RANGES = {"population": at_least(2), "generations": at_least(1), "seed": at_least(0)}
FLAG_RANGES = {"generations": at_least(1), "test_networks": at_least(0)}  # flags checked as given, resumed or not


def check_tasks(tasks: Sequence[str], where: str) -> None:
    """Every task is SPACE:DATASET[@width=N][@cells=N] with a space and dataset evolution has data for
    (EznasError naming ``where``)."""
    from eznas.gp.fitness import Task

    valid = ", ".join(f"{s}:{d}" for s, ds in EVOLVE_DATASETS.items() for d in ds)
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


def quick_config(cfg):  # noqa: ANN001, ANN201 - EvolutionConfig in and out
    """``--quick``: the same run, small enough for a first try in about two minutes."""
    return _fitness(dataclasses.replace(cfg, population=12, offspring=12, generations=2, elites=2, hall_of_fame=4,
                                        novel_elites=min(cfg.novel_elites, 2)),
                    selection=24, validation=12, screen=8, promote=3)


def _fitness(cfg, **changes):  # noqa: ANN001, ANN202 - EvolutionConfig in and out
    return dataclasses.replace(cfg, fitness=dataclasses.replace(cfg.fitness, **changes))


def _toml_over(cfg, path: str):  # noqa: ANN001, ANN202
    """The keys of the TOML file at ``path`` over ``cfg`` (strictly checked, as a new run reads them)."""
    import tomllib

    from eznas.config import from_dict, load_toml

    load_toml(type(cfg), path)  # unknown keys, wrong types, bad TOML: its error names the file and key

    def merge(base: dict, over: dict) -> dict:
        return {**base, **{k: merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                           for k, v in over.items()}}

    return from_dict(type(cfg), merge(_plain(cfg), tomllib.loads(Path(path).read_text())), path)


def _plain(cfg) -> dict:  # noqa: ANN001
    """A config as JSON holds it (tuples as lists): what config.json stores and from_dict reads."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


# the flags that change a run's numbers, and how each changes a config (applied in this order)
NUMBER_FLAGS: dict[str, Callable] = {
    "config": _toml_over,
    "quick": lambda cfg, quick: quick_config(cfg) if quick else cfg,
    "space": lambda cfg, space: _fitness(cfg, tasks=SPACE_TASKS[space]),
    "tasks": lambda cfg, text: _fitness(cfg, tasks=tuple(t.strip() for t in text.split(",") if t.strip())),
    "population": lambda cfg, n: dataclasses.replace(cfg, population=n),
    "seed": lambda cfg, seed: dataclasses.replace(cfg, seed=seed),  # the GP's; the networks are the pool seed's
    "data_root": lambda cfg, root: _fitness(cfg, data_root=root),
    "device": lambda cfg, device: _fitness(cfg, device=device),
    "probe": lambda cfg, probe: _fitness(cfg, probe=probe),
    "proxy_terminals": lambda cfg, text: with_proxy_terminals(cfg, text),
    "blend": lambda cfg, n: dataclasses.replace(cfg, blend_parts=n),
    "winner": lambda cfg, how: dataclasses.replace(cfg, winner=how),
    "novel_elites": lambda cfg, n: dataclasses.replace(cfg, novel_elites=n),
    "pool_ops": lambda cfg, on: dataclasses.replace(cfg, pool_ops=on == "on"),
}


def with_proxy_terminals(cfg, text: str):  # noqa: ANN001, ANN201 - EvolutionConfig in and out
    """``cfg`` whose Net terminals are the network features plus ``zc_<name>`` for each proxy in ``text``
    (comma-separated registered per-arch proxies; "none": the features only)."""
    from eznas.features import FEATURES
    from eznas.gp.pset import PROXY_PREFIX, proxy_name, proxy_terminals

    names = [] if text.strip() == "none" else [n.strip() for n in text.split(",") if n.strip()]
    valid = [proxy_name(t) for t in proxy_terminals()]
    for name in names:
        if name not in valid:
            raise EznasError(f"unknown proxy {name!r} (a proxy terminal must be a per-arch registered proxy; "
                             f"valid: {', '.join(valid)})")
    # EvolutionConfig checks that an export can carry each (the run's winner may read any of them)
    return dataclasses.replace(cfg, features=FEATURES + tuple(dict.fromkeys(PROXY_PREFIX + n for n in names)))


def changed_fields(before, after) -> list[str]:  # noqa: ANN001
    """The fields that differ, except those a resumed run may change, as "name (before there, after now)"."""
    from eznas.gp.evolution import RESUMABLE_CHANGES

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b = flat(_plain(before)), flat(_plain(after))
    return [f"{k} ({a.get(k)!r} there, {b.get(k)!r} now)" for k in {**a, **b}
            if k.split(".")[0] not in RESUMABLE_CHANGES and a.get(k) != b.get(k)]


def apply_flag(cfg, args: argparse.Namespace, name: str):  # noqa: ANN001, ANN201 - EvolutionConfig in and out
    """``cfg`` with the number flag ``name`` as given (unchanged when it is not); errors name the flag."""
    value = getattr(args, name)
    try:
        return cfg if value is None else NUMBER_FLAGS[name](cfg, value)
    except EznasError as exc:
        raise EznasError(f"--{name}: {exc}") from None


def new_run_config(args: argparse.Namespace):  # noqa: ANN201 - EvolutionConfig
    """A new run's config: the TOML (or EZNAS's defaults), then the flags; ranges and tasks checked."""
    from eznas.gp.evolution import EvolutionConfig

    cfg = EvolutionConfig()
    for name in NUMBER_FLAGS:
        cfg = apply_flag(cfg, args, name)
    if args.generations is not None:
        cfg = dataclasses.replace(cfg, generations=args.generations)
    check_values(dataclasses.asdict(cfg), EVOLVE_RANGES,
                 name=lambda k: f"--{k}" if getattr(args, k) is not None else f"{k} (--config {args.config})")
    check_tasks(cfg.fitness.tasks, "--tasks" if args.tasks else f"--config {args.config}: fitness.tasks")
    return cfg


def resumed_config(args: argparse.Namespace, run_dir: Path, saved_path: Path):  # noqa: ANN201
    """The saved config of the run in ``run_dir``; a flag given that would change it is an error naming it."""
    from eznas.config import from_dict
    from eznas.gp.evolution import BEFORE, EvolutionConfig

    try:
        data = json.loads(saved_path.read_text())
        if isinstance(data, dict) and isinstance(data.get("fitness"), dict):
            data["fitness"].setdefault("probe", "none")  # a run from before fitness.probe: the standard network
        if isinstance(data, dict):  # a run from before a setting: what it used, not today's default
            for key, value in BEFORE.items():
                data.setdefault(key, value)
        saved = from_dict(EvolutionConfig, data, str(saved_path))
    except FileNotFoundError:
        raise EznasError(f"--resume {run_dir}: no config.json there (not a run folder)") from None
    except ValueError as exc:
        raise EznasError(f"--resume {run_dir}: {saved_path} is not valid JSON ({exc})") from None
    for name in NUMBER_FLAGS:
        if changed := changed_fields(saved, apply_flag(saved, args, name)):
            raise EznasError(f"--resume {run_dir}: --{name} would change the run's {changed[0]}; a resumed run "
                             "keeps its settings (only --generations, --winner, --test_networks and where tasks "
                             "run may change)")
    if args.generations is not None:  # a resumed run may run longer, and elsewhere
        saved = dataclasses.replace(saved, generations=args.generations)
    if args.winner is not None:  # a finished run chooses its winner again, its evolution unchanged
        saved = dataclasses.replace(saved, winner=args.winner)
    return saved


def evolve_setup(args: argparse.Namespace):  # noqa: ANN201 - (EvolutionConfig, Path, bool)
    """The run's config, folder and whether it resumes; every flag is checked and nothing is written."""
    from datetime import datetime

    check_values(vars(args), FLAG_RANGES, name=lambda k: f"--{k}")
    if args.space and args.tasks:
        raise EznasError("--space and --tasks both choose the tasks: give one")
    if args.resume == "" and not args.out:
        raise EznasError("bare --resume needs --out DIR: the run folder to continue, or to start")
    if args.resume:
        run_dir = Path(args.resume)
        if args.out and Path(args.out) != run_dir:
            raise EznasError(f"--out {args.out}: a run resumed with --resume {run_dir} stays in {run_dir}")
        return resumed_config(args, run_dir, run_dir / "config.json"), run_dir, True
    cfg = new_run_config(args)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    label = args.space or "+".join(sorted({t.split(':')[0] for t in cfg.fitness.tasks}))
    run_dir = Path(args.out) if args.out else Path("results") / "evolve" / f"{label}-s{cfg.seed}-{stamp}"
    has_run = (run_dir / "checkpoint.pkl").exists()
    if args.resume == "":  # continue --out if it holds a run: these flags must give its config
        if has_run:
            saved = resumed_config(args, run_dir, run_dir / "config.json")
            if changed := changed_fields(saved, cfg):
                raise EznasError(f"--resume: the flags differ from the run in {run_dir}: {changed[0]}; "
                                 f"resume it with the flags it was started with (or --resume {run_dir}), or "
                                 "choose another --out")
            cfg = dataclasses.replace(cfg, winner=saved.winner)  # its own, or --winner's (a requeue keeps it)
        return cfg, run_dir, (run_dir / "config.json").is_file()
    if has_run:
        raise EznasError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
    return cfg, run_dir, False


def evolve_parser(prog: str = "evolve.py") -> argparse.ArgumentParser:
    p = Parser(
        prog=prog,
        description="Discover a zero-cost proxy by genetic programming: network-level arithmetic over "
        "aggregated per-unit expressions of network statistics, network features and registered proxies' "
        "scores (--proxy_terminals; default az_expressivity, az_progressivity, synflow), with log-linear blends "
        "of the best programs (--blend); fitness = rank "
        "correlation with real accuracies on fixed selection networks (racing: new programs are screened on a "
        "few first); the hall of fame's winner is chosen on disjoint validation networks and tested on test "
        "networks. Writes config.json, logbook.csv, hall_of_fame.json, references.json (the seed programs and proxy "
        "terminals on the validation networks), checkpoint.pkl, evolution.png, "
        "best_proxy.py and test_scores.csv (the top 3 by validation on test archs) to the run folder.",
        epilog="Defaults: population 50, 50 offspring, tournament 4, cx 0.4, mut 0.4, join 0.1, height <= 10, 10 generations "
        "(EZNAS's); per task 200 selection networks (new programs are screened on 20; every 2 generations the 4 "
        "best screened ones go on to all 200), 100 validation networks, the rest for testing, split by "
        "fitness.pool_seed (not --seed); batch 16, float32 statistics; DARTS genotypes are scored on SWAP's probe "
        "network, NASBench301's on NB-301's own (--probe); fitness = min over tasks of Kendall tau.",
    )
    add_flag(p, "space", default=None, choices=sorted(SPACE_TASKS),
             help="evolve on this space's tasks (NASBench201, NATSBenchSSS: CIFAR-10 and CIFAR-100; DARTS, NASBench301, "
             "NASBench101, NASBenchMacro: CIFAR-10; NASBench101 networks take fitness.width, the stem, default 128, "
             "cheaper smaller; "
             "NATSBenchSSS needs its table, see README); "
             "default: NASBench201 CIFAR-10, CIFAR-100 and DARTS CIFAR-10")
    add_flag(p, "tasks", default=None, help="comma-separated SPACE:DATASET tasks, e.g. NASBench201:cifar10,DARTS:cifar10 "
             f"(valid: {', '.join(f'{s}:{d}' for s, ds in EVOLVE_DATASETS.items() for d in ds)}); a task's own "
             "network size follows it, e.g. NASBench101:cifar10@width=32 (@width=N, @cells=N: over fitness.width / "
             "fitness.cells, for this task only; its archs and splits stay those of SPACE:DATASET)")
    add_flag(p, "generations", type=int, default=None, help="generations, >= 1 (default 10)")
    add_flag(p, "population", type=int, default=None, help="population size, >= 2 (default 50)")
    add_flag(p, "seed", type=int, default=None, help="the GP's seed, >= 0 (default 0); the networks, splits and "
             "batch come from fitness.pool_seed, so runs with other seeds share them")
    add_flag(p, "quick", action="store_true", default=None,
             help="a complete small first try (population 12, 2 generations, 24 selection / 12 validation networks "
             "per task, 12 test networks): every output file in about 2 minutes")
    add_flag(p, "config", default=None, metavar="FILE", help="TOML config; unknown keys are errors; flags override it")
    add_flag(p, "out", default=None, help="run folder (default results/evolve/<space>-s<seed>-<time>/)")
    add_flag(p, "resume", nargs="?", const="", default=None, metavar="DIR",
             help="continue the run in DIR from its checkpoint (its saved config: a flag that would change it "
             "is an error; --generations, --winner, --test_networks and where tasks run may change); bare --resume with --out DIR: continue DIR if it holds this run, else start it "
             "there (what runjob.sh --requeue uses)")
    add_flag(p, "data_root", default=None, help=f"data root (default ${DATA_ENV}, else ./data)")
    add_flag(p, "device", default=None, choices=("auto", "cpu", "cuda"), help="where networks are built and their statistics computed (default cpu)")
    add_flag(p, "probe", default=None, choices=list(PROBES),
             help="which network of a DARTS or NASBench301 genotype fitness scores: swap (SWAP's probe network) or "
             "none (the space's standard network); default: each space's (DARTS swap, NASBench301 none)")
    add_flag(p, "proxy_terminals", default=None, metavar="PROXIES",
             help="comma-separated registered proxies whose scores become network-level terminals zc_<proxy> "
             "(each computed once per network at its defaults and cached), e.g. meco,synflow,az_expressivity; "
             "none: only the network features (default: az_expressivity,az_progressivity,synflow)")
    add_flag(p, "blend", type=int, default=None, metavar="N",
             help="in promotion generations, blend N distinct programs (each task's best, then the fittest, and the proxy "
             "terminals) 2 and 3 at a time (sums of "
             "their logs, weights 0.25-2, each blend arithmetic on cached values) and add the 2 best blends to "
             "the offspring; 0: no blends, else >= 2 (default 6)")
    add_flag(p, "pool_ops", default=None, choices=("on", "off"),
             help="on (default): the language has net_rank, log(rank / m) of a value among the m networks scored "
             "together, and blends include rank blends (weighted sums of the parts' log ranks, as AZ-NAS "
             "combines its scores); a winner with net_rank is a pool program: it scores a pool of networks "
             "(verify_scores.py --program, best_proxy.score_pool). off: per-network programs only")
    add_flag(p, "winner", default=None, choices=("best", "novel"),
             help="the exported program: the best on the validation networks of those not equivalent there to "
             "a seed program or to a proxy terminal, params or flops alone (novel, default: every task's "
             "per-network |Spearman| with each < 0.95; the best when none is within 0.05 of its validation "
             "fitness), or the hall of fame's best there (best). With --resume DIR of a finished run: its winner "
             "is chosen again this way, its evolution unchanged")
    add_flag(p, "novel_elites", type=int, default=None, metavar="N",
             help="each generation also keep the N fittest new programs (per-network |Spearman| < 0.93 with every "
             "seed program and proxy terminal on the selection networks: below 0.95 with room) beside the elites, and blend them, so "
             "that new lineages are refined during the run; 0: off (default 5; --quick keeps at most 2)")
    add_flag(p, "cache_dir", default="results/cache/values", help="cache of network-level values, shared by "
             "runs (default results/cache/values)")
    add_flag(p, "test_networks", type=int, default=None, help="held-out archs per task for the top-3 test, >= 0 (default 100)")
    add_flag(p, "quiet", action="store_true", help="no progress bars")
    add_threads_flag(p)
    add_version_flag(p)
    add_parallel_flags(p)
    return p


PARALLEL_FLAGS = {  # flag -> (type, help); None defaults leave the config's value
    "backend": (str, "serial | loky (local processes) | dask (default loky); results are the same with each"),
    "workers": (int, "loky/LocalCluster worker processes, or the most SLURM jobs (default 2; "
                "alone, 1 means serial and more than 1 loky)"),
    "scheduler_address": (str, "dask: connect to this scheduler (e.g. tcp://host:8786) instead of starting one"),
    "cluster": (str, "dask without an address: local (LocalCluster on 127.0.0.1, default) or slurm (dask-jobqueue)"),
    "retries": (int, "reruns of tasks whose worker was lost (dask: per task; loky: of the unfinished ones; default 3)"),
    "queue": (str, "SLURM workers: partition"),
    "account": (str, "SLURM workers: account"),
    "walltime": (str, "SLURM workers: job walltime (default 01:00:00)"),
    "cores": (int, "SLURM workers: cores per job (default 1)"),
    "memory": (str, "SLURM workers: memory per job (default 8GB)"),
    "gpus": (int, "SLURM workers: GPUs per job (default 0)"),
    "lifetime": (str, "SLURM workers: retire a worker after this long (e.g. 55m), before the walltime"),
}


def add_parallel_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where tasks run (statistics per network, fitness per network)")
    for name, (kind, text) in PARALLEL_FLAGS.items():
        add_flag(g, name, type=kind, default=None, help=text)


def parallel_overrides(args: argparse.Namespace, current: str = "serial") -> dict:
    """The parallel flags given; ``--workers N`` alone means loky for N > 1 on a serial config, and serial
    for N = 1 on a loky one."""
    given = {k: getattr(args, k) for k in PARALLEL_FLAGS if getattr(args, k) is not None}
    if "workers" in given and "backend" not in given:
        if given["workers"] > 1 and current == "serial":
            given["backend"] = "loky"
        elif given["workers"] == 1 and current == "loky":
            given["backend"] = "serial"
    return given


def evolve_main(argv: Sequence[str] | None = None, prog: str = "evolve.py") -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from eznas.gp.run import run_evolution

    def run(args: argparse.Namespace) -> int:
        cfg, run_dir, resume = evolve_setup(args)
        cfg = dataclasses.replace(cfg, parallel=dataclasses.replace(
            cfg.parallel, **parallel_overrides(args, cfg.parallel.backend)))
        bars: list = []

        def progress(desc: str, total: int):
            bar = tqdm(total=total, desc=desc, unit="net", disable=True if args.quiet else None, leave=False)
            bars.append(bar)
            return lambda: bar.update(1)

        gen_bar = tqdm(total=cfg.generations, desc="generations", disable=True if args.quiet else None)

        def on_generation(state) -> None:
            gen_bar.n = state.generation
            gen_bar.set_postfix(best=f"{state.hall_of_fame[0].fitness.values[1]:.4f}")
            gen_bar.refresh()

        with logging_redirect_tqdm():
            try:
                result = run_evolution(cfg, run_dir, resume=resume, cache_dir=Path(args.cache_dir),
                                       test_networks=(12 if args.quick else 100) if args.test_networks is None
                                       else args.test_networks,
                                       progress=progress,
                                       on_generation=on_generation)
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


# ---------------------------------------------------------------------------------------------- search.py
def search_parser(prog: str = "search.py") -> argparse.ArgumentParser:
    from eznas.search.encoding import ENCODINGS
    from eznas.search.strategies import list_strategies

    p = Parser(
        prog=prog,
        description="Search a NAS space for a good architecture with a zero-cost proxy (or an evolved program) as "
        "the fitness, and report how good the found arch really is from the benchmark table. Writes config.json, "
        "state.json (checkpoint), trajectory.csv, result.json and search.png to the run folder.",
        epilog=f"strategies: {', '.join(list_strategies())}; proxies: {', '.join(list_proxies())}. Spaces: "
        "NASBench201 and NATSBenchSSS (their tables are the space), DARTS and NASBench301 (any genotype; "
        "--in_table keeps to the table's archs). A pool-level fitness (az_nas, or a program with net_rank) ranks "
        "each arch among every arch scored so far, recomputed after each new one.",
    )
    add_flag(p, "search_space", "--space", default="NASBench201", choices=sorted(ENCODINGS), help="default NASBench201")
    add_flag(p, "dataset", default="cifar10", choices=list(DATASETS), help="default cifar10")
    add_flag(p, "strategy", default="rea", help=f"{' | '.join(list_strategies())} (default rea)")
    add_flag(p, "proxy", default=None, help="the fitness: a registered proxy, name[:key=value] (default meco)")
    add_flag(p, "program", default=None, metavar="EXPR", help="the fitness: an evolved program (higher is better)")
    add_flag(p, "program_file", default=None, metavar="RUN/hall_of_fame.json",
             help="the fitness: the best program of an evolution run")
    add_flag(p, "budget", type=int, default=1000, help="archs scored, >= 1 (default 1000)")
    add_flag(p, "time_budget", type=float, default=None, metavar="SECONDS",
             help="also stop after this many seconds of scoring")
    add_flag(p, "population", type=int, default=20, help="rea: population size, >= 2, <= budget (default 20)")
    add_flag(p, "sample_size", type=int, default=5, help="rea: tournament size, <= population (default 5)")
    add_flag(p, "seed", type=int, default=0, help="seed of the search's draws (default 0)")
    add_flag(p, "score_seed", type=int, default=None,
             help="seed of the batch and the networks' initialisations (default: --seed)")
    add_flag(p, "batch_size", type=int, default=16, help="images per batch (default 16)")
    add_flag(p, "in_table", action=argparse.BooleanOptionalAction, default=None,
             help="propose only the benchmark table's archs (default: yes where the table is the whole space)")
    add_flag(p, "accuracy_key", default=None, help="accuracy column (default: the space's for the dataset)")
    add_flag(p, "benchmark_path", default=None, help="ground-truth file (default: the space's under the data root)")
    add_flag(p, "data_root", default=None, help=f"data root (default ${DATA_ENV}, else ./data)")
    add_flag(p, "device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CUDA when present")
    add_flag(p, "probe", default=None, choices=list(PROBES), help="DARTS, NASBench301: the network scored (default: the space's, DARTS swap, NASBench301 none)")
    add_flag(p, "width", type=int, default=None, help="DARTS/NASBench301 width (default: the network's)")
    add_flag(p, "cells", type=int, default=None, help="DARTS/NASBench301 cells (default: the network's)")
    add_flag(p, "scores", default=None, metavar="VERIFY_RUN",
             help="look the fitness up in a verify_scores.py run folder with the same space, dataset, batch and "
             "seed (its archs are not scored again; each counts that run's seconds per arch)")
    add_flag(p, "score_cache", default=None, metavar="FILE",
             help="a JSON-lines file of the fitness's per-arch values that searches with the same space, dataset, "
             "batch, score seed, device and fitness share: archs there are not scored again (each counts the "
             "seconds it took), archs scored are appended; other settings are an error naming the field")
    add_flag(p, "out", default=None, help="run folder (default results/search/<space>-<dataset>-<strategy>-s<seed>-<time>/)")
    add_flag(p, "resume", action="store_true", help="with --out DIR: continue the search there (same settings; "
             "the budgets may grow)")
    add_flag(p, "quiet", action="store_true", help="no progress bar (outside a terminal: no progress lines)")
    add_threads_flag(p)
    add_version_flag(p)
    return p


def search_main(argv: Sequence[str] | None = None, prog: str = "search.py") -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from eznas.search.run import Search, SearchConfig

    def run(args: argparse.Namespace) -> int:
        if args.resume and not args.out:
            raise EznasError("--resume needs --out DIR: the search folder to continue")
        if args.program and args.program_file:
            raise EznasError("give --program or --program-file, not both")
        program = hall_of_fame_programs(args.program_file, 1)[0] if args.program_file else args.program
        cfg = SearchConfig(
            search_space=args.search_space, dataset=args.dataset, strategy=args.strategy, proxy=args.proxy,
            program=program, budget=args.budget, time_budget=args.time_budget, population=args.population,
            sample_size=args.sample_size, seed=args.seed, score_seed=args.score_seed, batch_size=args.batch_size,
            in_table=args.in_table,
            accuracy_key=args.accuracy_key, benchmark_path=args.benchmark_path, data_root=args.data_root,
            device=args.device, probe=args.probe, width=args.width, cells=args.cells, scores=args.scores,
            score_cache=args.score_cache,
            out=args.out)
        search = Search(cfg, resume=args.resume)
        bar = progress_bar(search.cfg.budget, "search", "arch", args.quiet, initial=len(search.state.history))

        def tick(scored) -> None:  # noqa: ANN001 - a Scored
            best = search.state.best()
            if best is not None:  # before the update: a progress line shows the best so far, this arch's too
                bar.set_postfix(best=f"{best.score:.4g}", acc=f"{best.accuracy:.2f}")
            bar.update(1)

        with logging_redirect_tqdm():
            try:
                result = search.run(tick)
            finally:
                bar.close()
        found = result["found"]
        print(f"run folder: {search.out}")
        print(f"fitness={result['fitness']} archs_scored={result['archs_scored']} seconds={result['seconds']:.1f}")
        if found is None:
            print("found: none (the fitness was not finite on any arch scored)")
        else:
            where = (f" accuracy={found['accuracy']:.2f} rank={found['rank']}/{result['table_archs']} "
                     f"(top {found['top_percent']:.2f}%) table_optimum={result['table_optimum']:.2f}"
                     if "accuracy" in found else " (not in the benchmark table: no accuracy)")
            print(f"found uid={found['uid']} score={found['score']:.6g}{where}")
            print(f"spec={found['spec']}")
        return 0

    return run_command(lambda: search_parser(prog), argv, run)
