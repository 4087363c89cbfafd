"""The ``eznas`` command (``python -m eznas`` too): ``eznas verify|evolve|search|fetch [FLAGS]``.

Each subcommand is the very command the repository's scripts run (``verify_scores.py``, ``evolve.py``,
``search.py``, ``python -m eznas.fetch``): the same parser, flags and exit codes, only its name in help and
errors is ``eznas <command>``. OpenMP's idle threads are made passive before torch loads (eznas.threads).
"""
from __future__ import annotations

import importlib
import sys
from typing import Sequence

from eznas.args import Parser, add_version_flag
from eznas.errors import EznasError
from eznas.threads import quiet_openmp

COMMANDS = {  # name: (module, function(argv, prog) -> exit code, summary)
    "verify": ("eznas.cli", "verify_main", "score benchmark architectures with zero-cost proxies and rank-correlate "
               "the scores with their accuracies (verify_scores.py)"),
    "evolve": ("eznas.cli", "evolve_main", "discover a zero-cost proxy by genetic programming (evolve.py)"),
    "search": ("eznas.cli", "search_main", "search a NAS space with a proxy or an evolved program as the fitness "
               "(search.py)"),
    "fetch": ("eznas.fetch.cli", "main", "fill the data root from a local mirror or the public sources "
              "(python -m eznas.fetch)"),
}


def main_parser() -> Parser:
    p = Parser(prog="eznas", description="Discover zero-cost NAS proxies by genetic programming, and score "
               "architectures with them.", epilog="'eznas COMMAND --help' lists a command's flags.")
    add_version_flag(p)
    commands = p.add_subparsers(dest="command", metavar="COMMAND", title="commands", required=True)
    for name, (_, _, summary) in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return p


def run(command: str, argv: Sequence[str]) -> int:
    """Run ``command`` with its flags ``argv``; its exit code."""
    quiet_openmp()  # before the command's module imports torch
    module, function, _ = COMMANDS[command]
    return getattr(importlib.import_module(module), function)(list(argv), prog=f"eznas {command}")


def main(argv: Sequence[str] | None = None) -> int:
    """``eznas COMMAND [FLAGS]``; ``--help`` and ``--version`` exit here, a bad command is one ``error:`` line
    and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return run(argv[0], argv[1:])
    try:
        args = main_parser().parse_args(argv)
    except EznasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run(args.command, [])


if __name__ == "__main__":
    sys.exit(main())
