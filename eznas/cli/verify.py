"""``verify_scores.py`` / ``eznas verify``: its flags, the VerifyConfig they make, and the run with its progress
and printed results."""
from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Sequence

from eznas.args import add_flag
from eznas.cli.common import (add_run_flags, add_shared, apply_sets, command_parser, hall_of_fame_programs,
                              resumed_folder, run_command)
from eznas.cli.progress import progress_bar
from eznas.inits import list_inits
from eznas.proxies import list_proxies
from eznas.registry import at_least, check_values
from eznas.spaces import list_spaces

if TYPE_CHECKING:
    from eznas.verify import VerifyConfig

DEFAULT_PROXIES = ("synflow", "naswot", "params")
N_SAMPLES = 1000  # the archs a run samples unless told (--n_samples all: every one; VerifyConfig's default is all)


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
    p = command_parser(
        prog, "Score benchmark architectures with zero-cost proxies and rank-correlate the scores with their "
        "trained accuracies. Writes scores.csv, summary.json, summary.md (the proxies ranked by Spearman rho, with "
        "its 95% CI, Kendall tau, precision at the top 10%, the top-scored arch's accuracy) and scatter.png to the "
        "run folder and appends one row per proxy to the results CSV. Stdout ends with summary.md's table. "
        "Progress: a bar in a terminal, else (e.g. under SLURM) a log line every minute or 10% of the archs. "
        "Flags take dashes too (--batch-size).")
    g = p.add_argument_group("what is scored")
    add_flag(g, "proxy", type=_proxy_list, default=None, metavar="NAMES",
             help="comma-separated proxies, each optionally with options as name:key=value (e.g. swap:repeats=8; "
             f"values are range-checked); default {','.join(DEFAULT_PROXIES)} unless programs or rankers are "
             f"given; registered: {', '.join(list_proxies())}")
    add_flag(g, "program", action="append", default=[], metavar="EXPR",
             help="an evolved program to score like a proxy (repeatable), e.g. 'mean_units(fro(pre_D))'")
    add_shared(g, "program_file", help="score the programs of an evolution run's hall of fame (their exported, "
               "higher-is-better form)")
    add_flag(g, "program_top", type=int, default=3, metavar="N", help="how many hall-of-fame programs, >= 1")
    add_flag(g, "program_signal", default="logits_sum", choices=("logits_sum", "ce"),
             help="backward signal for programs' statistics (logits_sum as in evolution)")
    add_flag(g, "ranker", action="append", default=[], metavar="DIR",
             help="a saved learned ranker's folder (eznas.rankers: ranker.json) to score like a proxy (repeatable)")

    g = p.add_argument_group("architectures and data")
    add_shared(g, "search_space", choices=list_spaces())
    add_flag(g, "nds_space", default=None,
             help="NDS space: darts, amoeba, enas, pnas, nasnet (with --search_space NDS)")
    add_shared(g, "dataset")
    add_flag(g, "n_samples", type=_n_samples, default=N_SAMPLES, metavar="N|all",
             help="architectures to sample, N >= 1, or all (-1 also means all)")
    add_shared(g, "seed", help="seed (>= 0) of the arch sample, the batch and the initialisation")
    add_shared(g, "accuracy_key", help="accuracy column (NB-201: cifar10_test, cifar100_test, imagenet16_120_test)")
    add_shared(g, "benchmark_path")
    add_shared(g, "data_root")

    g = p.add_argument_group("networks and batch")
    add_shared(g, "batch_size")
    add_flag(g, "fresh_batch", action="store_true",
             help="a fresh batch per network (EZNAS) instead of one shared batch")
    add_flag(g, "first_batch", action="store_true",
             help="the first --batch_size training images in file order (SWAP's unshuffled loader) instead of a "
             "seeded draw")
    add_flag(g, "init", default="default", choices=list_inits(),
             help="weight initialisation (eznas.inits; default: PyTorch's, kaiming: EZNAS's)")
    add_shared(g, "width", help="DARTS/NASBench301/NDS initial channels, NASBench101 stem channels (NB-101: 128), "
               ">= 1 (default: the space's)")
    add_shared(g, "cells", help="DARTS/NASBench301/NDS number of cells, >= 1 (default: the space's)")
    add_shared(g, "probe", help="DARTS, NASBench301: which network of a genotype is scored: swap (DARTS's default; "
               "SWAP's probe network: no stem, one reduction cell, width 3) or none (the standard network, stem and "
               "8 cells: width 16 for DARTS; NASBench301's default, NB-301's training network at width 32); "
               "--width/--cells override its size")
    add_shared(g, "device")

    g = p.add_argument_group("run folder and results")
    add_shared(g, "out", help="run folder (default: results/verify/<space>-<dataset>-s<seed>-<time>/); one that "
               "holds results is only continued, with --resume")
    add_shared(g, "resume", help="continue the unfinished run in DIR (the same as --out DIR --resume; its scores "
               "so far are checkpointed about every minute), or start it if there is none; same settings required, "
               "so give the run's flags again (only --results_csv and --bootstrap may change); a finished run is "
               "reported as it is")
    add_flag(g, "results_csv", default="results/all_tests.csv", metavar="FILE",
             help="cumulative results CSV to append to")
    add_flag(g, "bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the 95%% CIs, >= 1")
    add_run_flags(g, "keys: VerifyConfig's fields (eznas/verify/config.py), e.g. --set bootstrap=200")
    return p


def verify_config(args: argparse.Namespace) -> VerifyConfig:
    """The run's config from the flags, then ``--set`` (ranges are checked by run_verify, before anything is
    read)."""
    from eznas.verify import VerifyConfig

    check_values(vars(args), {"program_top": at_least(1)}, name=lambda k: f"--{k}")
    out = resumed_folder(args) or args.out
    programs = list(args.program)
    if args.program_file:
        programs += hall_of_fame_programs(args.program_file, args.program_top)
    proxies = args.proxy if args.proxy is not None else (() if programs or args.ranker else DEFAULT_PROXIES)
    same_name = {f.name for f in dataclasses.fields(VerifyConfig)} & set(vars(args))  # a flag per field
    cfg = VerifyConfig(**{**{k: getattr(args, k) for k in same_name}, "out": out}, proxies=proxies,
                       programs=tuple(programs), rankers=tuple(args.ranker))
    return apply_sets(cfg, args.set)


def verify_main(argv: Sequence[str] | None = None, prog: str = "verify_scores.py") -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from eznas.report import summary_table
    from eznas.verify import run_verify
    from eznas.verify.summary import notes, result_line

    def run(args: argparse.Namespace) -> int:
        cfg = verify_config(args)
        bars = []

        def progress(total: int, done: int):
            bar = progress_bar(total, "scoring", "arch", args.quiet, initial=done)
            bars.append(bar)
            return lambda _: bar.update(1)

        with logging_redirect_tqdm():
            try:
                summary = run_verify(cfg, progress, resume=bool(args.resume))
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
