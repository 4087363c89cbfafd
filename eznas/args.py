"""What every command's parser shares: errors as EznasError, both flag spellings, ``--version``. Imports no
torch, so ``eznas --help`` and ``eznas --version`` answer at once."""
from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

from eznas.errors import EznasError


class Parser(argparse.ArgumentParser):
    """argparse whose command-line errors raise EznasError: run_cli prints them as one ``error:`` line."""

    def error(self, message: str) -> NoReturn:
        raise EznasError(f"{message} (see {self.prog} --help)")


def add_flag(parser: argparse.ArgumentParser, name: str, *aliases: str, **kw) -> None:
    """Add ``--name`` with both spellings (``--batch_size`` and ``--batch-size``) plus aliases."""
    spellings = {f"--{name}", f"--{name.replace('_', '-')}", f"--{name.replace('-', '_')}", *aliases}
    parser.add_argument(*sorted(spellings, key=lambda s: (s != f"--{name}", s)),
                        dest=name.replace("-", "_"), **kw)


def package_version() -> str:
    """The installed distribution's version (its metadata), else, in a source tree that was never installed,
    ``eznas.__version__`` (pyproject.toml reads the version from there, so the two agree)."""
    try:
        return version("eznas")
    except PackageNotFoundError:
        from eznas import __version__
        return __version__


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """``--version``: prints ``eznas <version>`` and exits 0."""
    parser.add_argument("--version", action="version", version=f"eznas {package_version()}",
                        help="print eznas's version and exit")
