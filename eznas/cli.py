"""Command-line front ends. Entry scripts call these; they parse flags, show progress, print results."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from eznas.data import DATA_ENV, DATASETS
from eznas.errors import EznasError
from eznas.proxies import list_proxies, parse_proxy
from eznas.registry import UnknownNameError
from eznas.scoring import INITS
from eznas.spaces import list_spaces


def add_flag(parser: argparse.ArgumentParser, name: str, *aliases: str, **kw) -> None:
    """Add ``--name`` with both spellings (``--batch_size`` and ``--batch-size``) plus aliases."""
    spellings = {f"--{name}", f"--{name.replace('_', '-')}", f"--{name.replace('-', '_')}", *aliases}
    parser.add_argument(*sorted(spellings, key=lambda s: (s != f"--{name}", s)),
                        dest=name.replace("-", "_"), **kw)


DEFAULT_PROXIES = ("synflow", "naswot", "params")


def _proxy_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("empty proxy list")
    return names


def verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="verify_scores.py",
        description="Score benchmark architectures with zero-cost proxies and rank-correlate the scores with "
        "their trained accuracies. Writes scores.csv, summary.json and scatter.png to the run folder and "
        "appends one row per proxy to results/all_tests.csv.",
        epilog=f"proxies: {', '.join(list_proxies())}. Data root: --data-root, else ${DATA_ENV}, else ./data.",
    )
    add_flag(p, "search_space", "--space", default="NASBench201", choices=list_spaces(),
             help="search space (default NASBench201)")
    add_flag(p, "nds_space", default=None, help="NDS space: darts, amoeba, enas, pnas, nasnet (with --search_space NDS)")
    add_flag(p, "dataset", default="cifar10", choices=list(DATASETS), help="image dataset (default cifar10)")
    add_flag(p, "batch_size", type=int, default=16, help="images per batch (default 16)")
    add_flag(p, "n_samples", type=int, default=-1, help="architectures to sample (default -1: all)")
    add_flag(p, "seed", type=int, default=0, help="seed of the arch sample, the batch and the initialisation")
    add_flag(p, "proxy", type=_proxy_list, default=None,
             help="comma-separated proxies, each optionally with options as name:key=value "
             f"(e.g. swap:repeats=8); default {','.join(DEFAULT_PROXIES)} unless programs are given")
    add_flag(p, "accuracy_key", default=None,
             help="accuracy column (NB-201 defaults: cifar10_test, cifar100_test, imagenet16_120_test)")
    add_flag(p, "benchmark_path", default=None, help="ground-truth file (default: the space's file under the data root)")
    add_flag(p, "data_root", default=None, help=f"data root (default ${DATA_ENV}, else ./data)")
    add_flag(p, "device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CUDA when present")
    add_flag(p, "out", default=None, help="run folder (default results/verify/<space>-<dataset>-s<seed>-<time>/)")
    add_flag(p, "results_csv", default="results/all_tests.csv", help="cumulative results CSV to append to")
    add_flag(p, "fresh_batch", action="store_true", help="a fresh batch per network (EZNAS) instead of one shared batch")
    add_flag(p, "init", default="default", choices=INITS, help="weight initialisation (default: PyTorch's)")
    add_flag(p, "width", type=int, default=None, help="DARTS/NDS initial channels (default: the space's)")
    add_flag(p, "cells", type=int, default=None, help="DARTS/NDS number of cells (default: the space's)")
    add_flag(p, "bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs (default 1000)")
    add_flag(p, "program", action="append", default=[], metavar="EXPR",
             help="an evolved program to score like a proxy (repeatable), e.g. 'mean_units(fro(pre_D))'")
    add_flag(p, "program_file", default=None, metavar="RUN/hall_of_fame.json",
             help="score the programs of an evolution run's hall of fame (their exported, higher-is-better form)")
    add_flag(p, "program_top", type=int, default=3, help="how many hall-of-fame programs (default 3)")
    add_flag(p, "program_signal", default="logits_sum", choices=("logits_sum", "ce"),
             help="backward signal for programs' statistics (default logits_sum, as in evolution)")
    add_flag(p, "resume", action="store_true",
             help="with --out DIR: continue the unfinished run there (its scores so far are checkpointed about "
             "every minute; same settings required), or start it if there is none")
    add_flag(p, "quiet", action="store_true", help="no progress bar")
    return p


def hall_of_fame_programs(path: str, top: int) -> list[str]:
    """The exported programs of a run's hall_of_fame.json (best first)."""
    import json
    from pathlib import Path

    try:
        entries = json.loads(Path(path).read_text())
        return [e["exported"] for e in entries[:top]]
    except FileNotFoundError:
        raise EznasError(f"--program-file: {path} does not exist") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise EznasError(f"--program-file: {path} is not a hall_of_fame.json ({exc})") from None


def run_cli(main: Callable[[], int]) -> int:
    """Run a CLI body; user errors become one ``error:`` line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return main()
    except (EznasError, UnknownNameError, ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def verify_main(argv: Sequence[str] | None = None) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from eznas.verify import VerifyConfig, result_line, run_verify

    args = verify_parser().parse_args(argv)

    def body() -> int:
        for spec in args.proxy or ():
            parse_proxy(spec)
        if args.batch_size < 1:
            raise EznasError(f"--batch_size must be >= 1, got {args.batch_size}")
        if args.resume and not args.out:
            raise EznasError("--resume needs --out DIR: the run folder to continue")
        programs = list(args.program)
        if args.program_file:
            programs += hall_of_fame_programs(args.program_file, args.program_top)
        proxies = args.proxy if args.proxy is not None else (() if programs else DEFAULT_PROXIES)
        cfg = VerifyConfig(
            programs=tuple(programs), program_signal=args.program_signal,
            search_space=args.search_space, nds_space=args.nds_space, dataset=args.dataset,
            batch_size=args.batch_size, n_samples=args.n_samples, seed=args.seed, proxies=proxies,
            accuracy_key=args.accuracy_key, benchmark_path=args.benchmark_path, data_root=args.data_root,
            device=args.device, out=args.out, results_csv=args.results_csv, fresh_batch=args.fresh_batch,
            init=args.init, width=args.width, cells=args.cells, bootstrap=args.bootstrap,
        )
        bars = []

        def progress(total: int):
            bar = tqdm(total=total, unit="arch", desc="scoring", disable=True if args.quiet else None)
            bars.append(bar)
            return lambda _: bar.update(1)

        with logging_redirect_tqdm():
            try:
                summary = run_verify(cfg, progress, resume=args.resume)
            finally:
                for bar in bars:
                    bar.close()
        print(f"run folder: {summary['config']['run_dir']}")
        for name, m in summary["proxies"].items():
            if m["excluded_non_finite"]:
                print(f"note: {name}: {m['excluded_non_finite']} archs with a non-finite score were excluded")
        for name, m in summary["proxies"].items():
            print(result_line(name, m))
        return 0

    return run_cli(body)


SPACE_TASKS = {"NASBench201": ("NASBench201:cifar10", "NASBench201:cifar100"), "DARTS": ("DARTS:cifar10",)}


def evolve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evolve.py",
        description="Discover a zero-cost proxy by genetic programming: programs over per-unit network "
        "statistics, fitness = rank correlation with real accuracies on fixed mini-sets of networks. "
        "Writes config.json, logbook.csv, hall_of_fame.json, checkpoint.pkl, evolution.png, best_proxy.py "
        "and test_scores.csv (top 3 programs on held-out archs) to the run folder.",
        epilog="Defaults follow EZNAS: population 50, 50 offspring, tournament 4, cx 0.4, mut 0.4, height <= 10, "
        "10 generations, 4 mini-sets of 20 networks per task, fitness = min over tasks of Kendall tau.",
    )
    add_flag(p, "space", default=None, choices=sorted(SPACE_TASKS),
             help="evolve on this space's tasks (NASBench201: CIFAR-10 and CIFAR-100; DARTS: CIFAR-10); "
             "default: NASBench201 CIFAR-10, CIFAR-100 and DARTS CIFAR-10")
    add_flag(p, "tasks", default=None, help="comma-separated SPACE:DATASET tasks, e.g. NASBench201:cifar10,DARTS:cifar10")
    add_flag(p, "generations", type=int, default=None, help="generations (default 10)")
    add_flag(p, "population", type=int, default=None, help="population size (default 50)")
    add_flag(p, "seed", type=int, default=None, help="one seed for everything (default 0)")
    add_flag(p, "config", default=None, metavar="FILE", help="TOML config; unknown keys are errors; flags override it")
    add_flag(p, "out", default=None, help="run folder (default results/evolve/<space>-s<seed>-<time>/)")
    add_flag(p, "resume", nargs="?", const="", default=None, metavar="DIR",
             help="continue the run in DIR from its checkpoint (its saved config; --generations and where tasks "
             "run may change); bare --resume with --out DIR: continue DIR if it holds this run, else start it "
             "there (what runjob.sh --requeue uses)")
    add_flag(p, "data_root", default=None, help=f"data root (default ${DATA_ENV}, else ./data)")
    add_flag(p, "device", default=None, choices=("auto", "cpu", "cuda"), help="statistics device (default cpu)")
    add_flag(p, "cache_dir", default="results/cache/stats", help="statistics cache (default results/cache/stats)")
    add_flag(p, "test_networks", type=int, default=100, help="held-out archs per task for the top-3 test (default 100)")
    add_flag(p, "quiet", action="store_true", help="no progress bars")
    add_parallel_flags(p)
    return p


PARALLEL_FLAGS = {  # flag -> (type, help); None defaults leave the config's value
    "backend": (str, "serial | loky (local processes) | dask (default serial); results are the same with each"),
    "workers": (int, "loky/LocalCluster worker processes, or the most SLURM jobs (default 1; "
                "more than 1 without --backend means loky)"),
    "scheduler_address": (str, "dask: connect to this scheduler (e.g. tcp://host:8786) instead of starting one"),
    "cluster": (str, "dask without an address: local (LocalCluster on 127.0.0.1, default) or slurm (dask-jobqueue)"),
    "retries": (int, "dask: reruns of a task whose worker was lost (default 3)"),
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
    """The parallel flags given; ``--workers N`` (N > 1) alone on a serial config means loky."""
    given = {k: getattr(args, k) for k in PARALLEL_FLAGS if getattr(args, k) is not None}
    if given.get("workers", 1) > 1 and "backend" not in given and current == "serial":
        given["backend"] = "loky"
    return given


def evolve_main(argv: Sequence[str] | None = None) -> int:
    import dataclasses
    import json
    from datetime import datetime
    from pathlib import Path

    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from eznas.config import from_dict, load_toml
    from eznas.gp.evolution import EvolutionConfig
    from eznas.gp.run import run_evolution

    args = evolve_parser().parse_args(argv)

    def body() -> int:
        resume = bool(args.resume)
        if args.resume == "" and not args.out:
            raise EznasError("bare --resume needs --out DIR: the run folder to continue, or to start")
        if args.resume:
            run_dir = Path(args.resume)
            try:
                saved = json.loads((run_dir / "config.json").read_text())
            except FileNotFoundError:
                raise EznasError(f"--resume {run_dir}: no config.json there (not a run folder)") from None
            cfg = from_dict(EvolutionConfig, saved, str(run_dir / "config.json"))
            if args.generations is not None:  # a resumed run may run longer, and elsewhere
                cfg = dataclasses.replace(cfg, generations=args.generations)
        else:
            cfg = load_toml(EvolutionConfig, args.config) if args.config else EvolutionConfig()
            fit = cfg.fitness
            if args.tasks:
                fit = dataclasses.replace(fit, tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()))
            elif args.space:
                fit = dataclasses.replace(fit, tasks=SPACE_TASKS[args.space])
            overrides = {k: getattr(args, k) for k in ("generations", "population", "seed")
                         if getattr(args, k) is not None}
            if "seed" in overrides:
                fit = dataclasses.replace(fit, seed=overrides["seed"])
            fit = dataclasses.replace(fit, **{k: getattr(args, k) for k in ("data_root", "device")
                                              if getattr(args, k) is not None})
            cfg = dataclasses.replace(cfg, fitness=fit, **overrides)
            for name in ("generations", "population"):
                if getattr(cfg, name) < 1:
                    raise EznasError(f"--{name} must be >= 1, got {getattr(cfg, name)}")
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            label = args.space or "+".join(sorted({t.split(':')[0] for t in cfg.fitness.tasks}))
            run_dir = Path(args.out) if args.out else Path("results") / "evolve" / f"{label}-s{cfg.seed}-{stamp}"
            if args.resume == "":  # continue --out if it holds a run (its checkpoint must match these flags)
                resume = (run_dir / "config.json").is_file()
            elif (run_dir / "checkpoint.pkl").exists():
                raise EznasError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
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
            gen_bar.set_postfix(best=f"{state.hall_of_fame[0].fitness.values[0]:.4f}")
            gen_bar.refresh()

        with logging_redirect_tqdm():
            try:
                result = run_evolution(cfg, run_dir, resume=resume, cache_dir=Path(args.cache_dir),
                                       test_networks=args.test_networks, progress=progress,
                                       on_generation=on_generation)
            finally:
                gen_bar.close()
                for bar in bars:
                    bar.close()
        print(f"run folder: {result['run_dir']}")
        for rank, b in enumerate(result["best"], 1):
            print(f"top{rank} fitness={b['fitness']:.4f} program={b['exported']}")
        for row in result["test"]:
            print(f"test task={row['task']} kendall={row['kendall']:.4f} spearman={row['spearman']:.4f} "
                  f"n={row['n']} program={row['program']}")
        return 0

    return run_cli(body)
