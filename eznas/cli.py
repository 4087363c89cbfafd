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
    add_flag(p, "proxy", type=_proxy_list, default=("synflow", "naswot", "params"),
             help="comma-separated proxies, each optionally with options as name:key=value "
             "(e.g. swap:repeats=8); default synflow,naswot,params")
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
    add_flag(p, "quiet", action="store_true", help="no progress bar")
    return p


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
        for spec in args.proxy:
            parse_proxy(spec)
        if args.batch_size < 1:
            raise EznasError(f"--batch_size must be >= 1, got {args.batch_size}")
        cfg = VerifyConfig(
            search_space=args.search_space, nds_space=args.nds_space, dataset=args.dataset,
            batch_size=args.batch_size, n_samples=args.n_samples, seed=args.seed, proxies=args.proxy,
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
                summary = run_verify(cfg, progress)
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
