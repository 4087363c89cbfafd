"""Checksummed files: a file's digest, a download installed only when complete and its sha256 matches, and
the cache of the manifest's pinned public downloads (``<root>/sources/``)."""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from eznas.errors import DataError
from eznas.io import atomic_path

log = logging.getLogger(__package__)  # the command's one logger: its lines read "eznas.fetch: ..."

SOURCE_BASE_ENV = "EZNAS_SOURCE_BASE"
SOURCES_DIR = "sources"
CHUNK = 1 << 20


def file_digest(path: Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def has_digest(path: Path, want: str, algo: str = "sha256") -> bool:
    return path.is_file() and file_digest(path, algo) == want


def download(url: str, dest: str | os.PathLike, sha256: str, timeout: float = 60.0) -> None:
    """Stream ``url`` to ``dest`` through a temp file; install it only if complete and its sha256 matches."""
    dest = Path(dest)
    log.info("downloading %s", url)
    with atomic_path(dest) as tmp:
        h, size, expected = hashlib.sha256(), 0, None
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "eznas-fetch"})
            with urllib.request.urlopen(req, timeout=timeout) as resp, open(tmp, "wb") as out:
                length = resp.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() else None
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
        except urllib.error.HTTPError as exc:
            raise DataError(f"download of {url} failed: HTTP {exc.code} {exc.reason}; {dest} not written") from None
        except urllib.error.URLError as exc:
            raise DataError(f"download of {url} failed: {exc.reason}; {dest} not written") from None
        except (OSError, http.client.HTTPException) as exc:  # connection reset, timeout, disk full, ...
            raise DataError(
                f"download of {url} failed after {size} bytes ({type(exc).__name__}: {exc}); {dest} not written"
            ) from None
        if expected is not None and size != expected:
            raise DataError(f"download of {url} was interrupted after {size} of {expected} bytes; {dest} not written")
        got = h.hexdigest()
        if got != sha256:
            raise DataError(f"download of {url} has sha256 {got}, expected {sha256}; {dest} not written")
    log.info("saved %s (%.1f MB)", dest, size / 1e6)


def source_url(url: str, base: str | None) -> str:
    """``url`` with its scheme and host replaced by ``base`` (when given)."""
    if not base:
        return url
    parts = urlsplit(url)
    return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


class SourceCache:
    """The pinned public downloads, fetched on first use into ``<root>/sources/`` and verified."""

    def __init__(self, folder: Path, downloads: dict[str, dict[str, str]], base: str | None):
        self.folder, self.downloads, self.base = folder, downloads, base

    def _entry(self, name: str) -> dict[str, str]:
        try:
            return self.downloads[name]
        except KeyError:
            raise DataError(f"data manifest: unknown download {name!r}") from None

    def path(self, name: str) -> Path:
        return self.folder / Path(urlsplit(self._entry(name)["url"]).path).name

    def get(self, name: str) -> Path:
        entry, path = self._entry(name), self.path(name)
        if not has_digest(path, entry["sha256"]):
            download(source_url(entry["url"], self.base), path, entry["sha256"])
        return path

    def discard(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)
