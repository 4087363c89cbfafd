"""What every command's parser shares: errors as EznasError, both flag spellings, ``--version``. Imports no
torch, so ``eznas --help`` and ``eznas --version`` answer at once."""
from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn, Sequence

from eznas.errors import EznasError


class Parser(argparse.ArgumentParser):
    """argparse whose command-line errors raise EznasError: run_cli prints them as one ``error:`` line. The
    namespace it parses also says which flags the command line gave (``given``: their dests), so that a default
    never overrides a config file or a resumed run's settings."""

    def error(self, message: str) -> NoReturn:
        raise EznasError(f"{message} (see {self.prog} --help)")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        parsed = super().parse_args(args, namespace)
        defaults = [(a, a.default) for a in self._actions]
        try:  # parsed again without defaults: only what the command line gave is set
            for action, _ in defaults:
                action.default = argparse.SUPPRESS
            parsed.given = frozenset(vars(super().parse_args(args)))
        finally:
            for action, default in defaults:
                action.default = default
        return parsed


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's help with each flag's spellings listed once, followed once by its choices or metavar, and its
    default appended (argparse's "(default: ...)"; none where it is None, False or empty)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if default is None or default is False or default == [] or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        metavar = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(action.option_strings)} {metavar}"


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
