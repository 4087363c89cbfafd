"""``search.py`` / ``eznas search``: its flags, the SearchConfig they make, and the search with its progress and
printed result."""
from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Sequence

from eznas.args import add_flag
from eznas.cli.common import (add_run_flags, add_shared, apply_sets, command_parser, hall_of_fame_programs,
                              run_command)
from eznas.cli.progress import progress_bar
from eznas.errors import EznasError
from eznas.proxies import list_proxies

if TYPE_CHECKING:
    from eznas.search.run import SearchConfig


def search_parser(prog: str = "search.py") -> argparse.ArgumentParser:
    from eznas.search.encoding import ENCODINGS
    from eznas.search.strategies import list_strategies

    p = command_parser(
        prog, "Search a NAS space for a good architecture with a zero-cost proxy (or an evolved program) as the "
        "fitness, and report how good the found arch really is from the benchmark table. Writes config.json, "
        "state.json (checkpoint), trajectory.csv, result.json and search.png to the run folder. Spaces: NASBench201 "
        "and NATSBenchSSS (their tables are the space), DARTS and NASBench301 (any genotype; --in_table keeps to "
        "the table's archs). A pool-level fitness (az_nas, or a program with net_rank) ranks each arch among every "
        "arch scored so far, recomputed after each new one. Flags take dashes too (--batch-size).")
    g = p.add_argument_group("the fitness")
    add_flag(g, "proxy", default=None, metavar="NAME",
             help=f"a registered proxy, name[:key=value] (default meco); registered: {', '.join(list_proxies())}")
    add_flag(g, "program", default=None, metavar="EXPR", help="an evolved program (higher is better)")
    add_shared(g, "program_file", help="the best program of an evolution run")
    add_flag(g, "scores", default=None, metavar="VERIFY_RUN",
             help="look the fitness up in a verify_scores.py run folder with the same space, dataset, batch and "
             "seed (its archs are not scored again; each counts that run's seconds per arch)")
    add_flag(g, "score_cache", default=None, metavar="FILE",
             help="a JSON-lines file of the fitness's per-arch values that searches with the same space, dataset, "
             "batch, score seed, device and fitness share: archs there are not scored again (each counts the "
             "seconds it took), archs scored are appended; other settings are an error naming the field")

    g = p.add_argument_group("the search")
    add_flag(g, "strategy", default="rea", help=f"search strategy: {' | '.join(list_strategies())}")
    add_flag(g, "budget", type=int, default=1000, metavar="N", help="archs scored, >= 1")
    add_flag(g, "time_budget", type=float, default=None, metavar="SECONDS",
             help="also stop after this many seconds of scoring")
    add_flag(g, "population", type=int, default=20, metavar="N", help="rea: population size, >= 2, <= budget")
    add_flag(g, "sample_size", type=int, default=5, metavar="N", help="rea: tournament size, <= population")
    add_shared(g, "seed", help="seed of the search's draws, >= 0")
    add_flag(g, "in_table", action=argparse.BooleanOptionalAction, default=None,
             help="propose only the benchmark table's archs (default: yes where the table is the whole space)")

    g = p.add_argument_group("space, data and networks")
    add_shared(g, "search_space", choices=sorted(ENCODINGS))
    add_shared(g, "dataset")
    add_shared(g, "accuracy_key")
    add_shared(g, "benchmark_path")
    add_shared(g, "data_root")
    add_shared(g, "batch_size")
    add_flag(g, "score_seed", type=int, default=None, metavar="N",
             help="seed of the batch and the networks' initialisations (default: --seed)")
    add_shared(g, "probe")
    add_shared(g, "width", help="DARTS/NASBench301 width (default: the network's)")
    add_shared(g, "cells", help="DARTS/NASBench301 cells (default: the network's)")
    add_shared(g, "device")

    g = p.add_argument_group("run folder")
    add_shared(g, "out", help="run folder (default: results/search/<space>-<dataset>-<strategy>-s<seed>-<time>/)")
    add_shared(g, "resume", help="with --out DIR: continue the search there (same settings; the budgets may grow)")
    add_run_flags(g, "keys: SearchConfig's fields (eznas/search/run.py), e.g. --set sample_size=10")
    return p


def search_config(args: argparse.Namespace) -> SearchConfig:
    """The search's config from the flags, then ``--set`` (checked by Search, before anything is read)."""
    from eznas.search.run import SearchConfig

    if args.resume and not args.out:
        raise EznasError("--resume needs --out DIR: the search folder to continue")
    if args.program and args.program_file:
        raise EznasError("give --program or --program-file, not both")
    program = hall_of_fame_programs(args.program_file, 1)[0] if args.program_file else args.program
    same_name = {f.name for f in dataclasses.fields(SearchConfig)} & set(vars(args))  # a flag per field
    return apply_sets(SearchConfig(**{**{k: getattr(args, k) for k in same_name}, "program": program}), args.set)


def search_main(argv: Sequence[str] | None = None, prog: str = "search.py") -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from eznas.search.run import Search

    def run(args: argparse.Namespace) -> int:
        search = Search(search_config(args), resume=args.resume)
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
