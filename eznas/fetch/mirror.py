"""Fill the data root from a local mirror (``--mirror`` or ``$EZNAS_MIRROR``): every manifest file checked
against its sha256 before anything is written, then copied atomically."""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from eznas.errors import DataError
from eznas.fetch.downloads import file_digest, has_digest
from eznas.fetch.manifest import Manifest, load_manifest
from eznas.io import atomic_path

log = logging.getLogger(__package__)  # the command's one logger: its lines read "eznas.fetch: ..."

MIRROR_ENV = "EZNAS_MIRROR"


def fill_from_mirror(mirror: str | os.PathLike, root: str | os.PathLike, manifest: Manifest | None = None) -> list[str]:
    """Copy each manifest file that is missing from ``root`` or differs; returns the paths copied.

    Every needed mirror file is checked before anything is written, so a corrupt or missing one stops
    the fill with an error naming it and leaves the data root untouched.
    """
    mirror, root = Path(mirror), Path(root)
    entries = (manifest or load_manifest())["mirror"]
    if not mirror.is_dir():
        raise DataError(f"mirror {mirror} is not a folder (--mirror or ${MIRROR_ENV})")
    todo = [e for e in entries if not has_digest(root / e["path"], e["sha256"])]
    for e in todo:
        src = mirror / e["path"]
        if not src.is_file():
            raise DataError(f"mirror file {src} is missing; nothing was written")
        got = file_digest(src)
        if got != e["sha256"]:
            raise DataError(f"mirror file {src} has sha256 {got}, expected {e['sha256']}; nothing was written")
    for e in todo:
        _copy_verified(mirror / e["path"], root / e["path"], e["sha256"])
    log.info("%s: %d file(s) copied from %s, %d already up to date", root, len(todo), mirror, len(entries) - len(todo))
    return [e["path"] for e in todo]


def _copy_verified(src: Path, dest: Path, sha256: str) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        got = file_digest(tmp)
        if got != sha256:
            raise DataError(f"copy of {src} has sha256 {got}, expected {sha256}; {dest} not written")
    log.info("copied %s", dest)
