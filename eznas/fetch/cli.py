"""The ``eznas fetch`` command (``python -m eznas.fetch``): its flags, and the fill they ask for (a mirror, the
public sources, or one NATS-Bench-SSS table)."""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from eznas.args import Parser, add_flag, add_version_flag
from eznas.data import DATA_ENV, resolve_data_root
from eznas.errors import DataError
from eznas.fetch.convert import convert_nats_sss, fill_from_sources
from eznas.fetch.downloads import SOURCE_BASE_ENV
from eznas.fetch.manifest import load_manifest, manual_notes
from eznas.fetch.mirror import MIRROR_ENV, fill_from_mirror
from eznas.io import check_writable

log = logging.getLogger(__package__)  # the command's one logger: its lines read "eznas.fetch: ..."


def build_parser(prog: str = "python -m eznas.fetch") -> argparse.ArgumentParser:
    p = Parser(
        prog=prog,
        description="Fill the data root from a local mirror (checked against the sha256 in "
        "eznas/data_sources.json), or else download and convert the public sources.",
        epilog=f"${SOURCE_BASE_ENV} replaces the scheme and host of every source URL.",
    )
    add_flag(p, "data_root", default=None, help=f"data root to fill (default ${DATA_ENV}, else ./data)")
    add_flag(p, "mirror", default=None, help=f"local mirror folder (default ${MIRROR_ENV}); without one, download")
    add_flag(p, "nats_sss", default=None, metavar="PATH",
             help="only convert this official NATS-Bench-SSS table (NATS-sss-v1_0-50262-simple/ or "
             "NATS-sss-v1_0-50262.pickle.pbz2) to <data root>/nats_sss/nats_sss.csv")
    add_version_flag(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "python -m eznas.fetch") -> int:
    from eznas.cli import run_cli

    def body() -> int:
        args = build_parser(prog).parse_args(argv)
        root = resolve_data_root(args.data_root)
        check_writable(root, folder=True, what=f"--data-root (or ${DATA_ENV})")
        if args.nats_sss:
            convert_nats_sss(Path(args.nats_sss), root)
            return 0
        manifest = load_manifest()
        mirror = args.mirror or os.environ.get(MIRROR_ENV)
        base = os.environ.get(SOURCE_BASE_ENV)
        if not mirror and base and urlsplit(base).scheme not in ("http", "https", "file"):
            raise DataError(f"${SOURCE_BASE_ENV} must be a URL such as http://host:8000, got {base!r}")
        if mirror:
            fill_from_mirror(mirror, root, manifest)
        else:
            fill_from_sources(root, manifest)
        for note in manual_notes(root, manifest):
            log.warning("%s", note)
        return 0

    return run_cli(body)
