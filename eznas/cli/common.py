"""What the commands share: one definition, with one default, of each flag several commands take
(``SHARED``); help that shows argparse's defaults and each flag's spellings and choices once; ``--set
KEY=VALUE`` over a config; and the run of a command (its threads; a user error is one ``error:`` line and exit
code 2)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from eznas.args import HelpFormatter, Parser, add_flag, add_version_flag
from eznas.config import override
from eznas.data import DATA_ENV, DATASETS
from eznas.errors import EznasError
from eznas.registry import PLUGINS_ENV, UnknownNameError, import_plugins
from eznas.spaces.darts import PROBES
from eznas.threads import SLURM_CPUS_ENV, THREADS_ENV, command_threads

C = TypeVar("C")
DEVICES = ("auto", "cpu", "cuda")


def _flag(*aliases: str, **kw: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    return aliases, kw


# name: (aliases, argparse keywords); a command may give its own help (and choices), never another default
SHARED = {
    "search_space": _flag("--space", default="NASBench201", help="search space"),
    "dataset": _flag(default="cifar10", choices=list(DATASETS), help="image dataset"),
    "batch_size": _flag(type=int, default=16, metavar="N", help="images per batch, >= 1"),
    "seed": _flag(type=int, default=0, metavar="N", help="seed, >= 0"),
    "data_root": _flag(default=None, metavar="DIR", help=f"data root (default: ${DATA_ENV}, else ./data)"),
    "device": _flag(default="auto", choices=DEVICES, help="where networks are built and run (auto: CUDA when "
                    "present, else the CPU)"),
    "probe": _flag(default=None, choices=list(PROBES),
                   help="which network of a DARTS or NASBench301 genotype is scored: swap (SWAP's probe network: no "
                   "stem, one reduction cell, width 3) or none (the space's standard network); default: each "
                   "space's (DARTS swap, NASBench301 none)"),
    "width": _flag(type=int, default=None, metavar="N", help="initial channels, >= 1 (default: the network's)"),
    "cells": _flag(type=int, default=None, metavar="N", help="number of cells, >= 1 (default: the network's)"),
    "accuracy_key": _flag(default=None, metavar="COLUMN", help="accuracy column (default: the space's for the "
                          "dataset)"),
    "benchmark_path": _flag(default=None, metavar="FILE", help="ground-truth table (default: the space's under "
                            "the data root)"),
    "program_file": _flag(default=None, metavar="RUN/hall_of_fame.json",
                          help="the programs of an evolution run's hall of fame (their exported form)"),
    "out": _flag(default=None, metavar="DIR", help="run folder"),
    "resume": _flag(nargs="?", const=True, default=False, metavar="DIR",
                    help="continue the run in DIR (bare, with --out DIR: the run there)"),
    "set": _flag(action="append", default=[], metavar="KEY=VALUE",
                 help="set a field of the run's config (repeatable; applied together, after the other flags), the "
                 "value read as the field's type (a,b for a list; null for none); an unknown key lists the valid ones"),
    "quiet": _flag(action="store_true", help="no progress bar (outside a terminal: no progress lines)"),
    "plugin": _flag(action="append", default=[], metavar="MODULE",
                    help=f"import MODULE first (repeatable): the proxies, spaces or primitives it registers can be "
                    f"named (also in worker processes: sets ${PLUGINS_ENV}); installed packages can use the "
                    "entry-point groups eznas.proxies and eznas.spaces instead"),
    "threads": _flag(type=int, default=None, metavar="N",
                     help=f"torch threads per process, 1 to the CPUs this process may use (default: ${THREADS_ENV}, "
                     f"else $OMP_NUM_THREADS, else the automatic share: the CPUs this process may use, at most "
                     f"${SLURM_CPUS_ENV}, divided by the worker processes it starts and by the eznas commands running on "
                     f"those CPUs, looked at again before each arch); no result depends on it"),
}


def add_shared(parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, **own: Any) -> None:
    """Add the shared flag ``--name`` (SHARED) to a parser or one of its groups; ``own`` may replace its help
    or choices, not its default."""
    aliases, kw = SHARED[name]
    if "default" in own:
        raise TypeError(f"--{name} has one default in every command: {kw.get('default')!r}")
    add_flag(parser, name, *aliases, **{**kw, **own})


def command_parser(prog: str, description: str, epilog: str | None = None) -> Parser:
    """A command's parser: its errors one ``error:`` line (Parser), its help with the defaults (HelpFormatter)."""
    return Parser(prog=prog, description=description, epilog=epilog, formatter_class=HelpFormatter)


def add_run_flags(group: argparse._ArgumentGroup, set_help: str) -> None:
    """``--set``, ``--quiet``, ``--threads`` and ``--version``: every command's last group."""
    add_shared(group, "set", help=f"{SHARED['set'][1]['help']}; {set_help}")
    add_shared(group, "quiet")
    add_shared(group, "threads")
    add_shared(group, "plugin")
    add_version_flag(group)


def apply_sets(cfg: C, assignments: Sequence[str]) -> C:
    """``cfg`` with every ``--set KEY=VALUE`` applied, at once (a config's checks see them together)."""
    return override(cfg, *assignments)


def resumed_folder(args: argparse.Namespace) -> str | None:
    """The one ``--resume`` shape of every command: the run folder ``--resume DIR`` names, or a bare
    ``--resume``'s ``--out DIR`` (None without --resume); a bare one without --out, or DIR and another --out,
    is an error."""
    if args.resume is True or args.resume == "":  # bare (--resume= as well)
        if not args.out:
            raise EznasError("bare --resume needs --out DIR: the run folder to continue (or give --resume DIR)")
        return args.out
    if args.resume and args.out and Path(args.out) != Path(args.resume):
        raise EznasError(f"--out {args.out}: a run resumed with --resume {args.resume} stays in {args.resume}")
    return args.resume or None


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


def load_plugins(argv: Sequence[str]) -> None:
    """Import the ``--plugin MODULE`` modules of ``argv`` and name them in ``$EZNAS_PLUGINS`` (worker processes
    started later import them too)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugin", action="append", default=[])
    modules = pre.parse_known_args(list(argv))[0].plugin
    if modules:
        known = [m for m in os.environ.get(PLUGINS_ENV, "").split(",") if m]
        os.environ[PLUGINS_ENV] = ",".join(dict.fromkeys([*known, *modules]))
        import_plugins()


def run_command(parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None,
                run: Callable[[argparse.Namespace], int]) -> int:
    """Parse ``argv``, then ``run(args)`` with the command's threads (``--threads``; eznas.threads), as
    run_cli runs a body."""
    def body() -> int:
        load_plugins(sys.argv[1:] if argv is None else argv)  # before the parser: its choices list what they add
        args = parser().parse_args(argv)
        with command_threads(args.threads):
            return run(args)

    return run_cli(body)
