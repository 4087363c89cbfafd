"""Fill the data root: copy a local mirror, or download and convert the public sources.

    eznas fetch [--data-root DIR] [--mirror DIR]        # or: python -m eznas.fetch ...
    python -m eznas.fetch --nats-sss NATS-sss-v1_0-50262-simple/   # a NATS-Bench-SSS table you downloaded

What goes where is in the manifest ``eznas/data_sources.json``: every mirror file with its sha256, and
every public source (URL pinned by sha256) with the target it becomes under the data root. Each file is
written atomically (a temp file beside it, then ``os.replace``) and only after its checksum is verified;
a file already present with the right content is left alone, so a second run copies and downloads
nothing. Raw downloads are kept in ``<root>/sources/`` (the CIFAR tarballs are deleted once extracted).

``$EZNAS_SOURCE_BASE`` (e.g. ``http://127.0.0.1:8000``) replaces the scheme and host of every source URL,
for a private mirror of the public files or for tests.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import logging
import os
import pickletools
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from eznas.args import Parser, add_flag, add_version_flag
from eznas.data import DATA_ENV, resolve_data_root
from eznas.errors import DataError
from eznas.io import atomic_path, check_writable, write_bytes

log = logging.getLogger(__name__)

MANIFEST = Path(__file__).with_name("data_sources.json")
MIRROR_ENV = "EZNAS_MIRROR"
SOURCE_BASE_ENV = "EZNAS_SOURCE_BASE"
SOURCES_DIR = "sources"
SIG_DIGITS = 10  # the mirror's tables round floats to 10 significant digits
_CHUNK = 1 << 20

Manifest = dict[str, Any]


def load_manifest(path: str | os.PathLike = MANIFEST) -> Manifest:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable data manifest ({exc})") from None


def file_digest(path: Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _has_digest(path: Path, want: str, algo: str = "sha256") -> bool:
    return path.is_file() and file_digest(path, algo) == want


# ---------------------------------------------------------------------------------------------- mirror


def fill_from_mirror(mirror: str | os.PathLike, root: str | os.PathLike, manifest: Manifest | None = None) -> list[str]:
    """Copy each manifest file that is missing from ``root`` or differs; returns the paths copied.

    Every needed mirror file is checked before anything is written, so a corrupt or missing one stops
    the fill with an error naming it and leaves the data root untouched.
    """
    mirror, root = Path(mirror), Path(root)
    entries = (manifest or load_manifest())["mirror"]
    if not mirror.is_dir():
        raise DataError(f"mirror {mirror} is not a folder (--mirror or ${MIRROR_ENV})")
    todo = [e for e in entries if not _has_digest(root / e["path"], e["sha256"])]
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


# -------------------------------------------------------------------------------------------- download


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
                while chunk := resp.read(_CHUNK):
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
        if not _has_digest(path, entry["sha256"]):
            download(source_url(entry["url"], self.base), path, entry["sha256"])
        return path

    def discard(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------- conversion


def _build_tar_members(root: Path, target: Manifest, sources: SourceCache) -> list[str]:
    """Extract the listed members (md5-checked) of an archive into ``<root>/<dir>/``; then drop the archive."""
    folder = root / target["dir"]
    missing = {m: md5 for m, md5 in target["md5"].items() if not _has_digest(folder / m, md5, "md5")}
    if not missing:
        return []
    todo = [f"{target['dir']}/{m}" for m in missing]
    archive = sources.get(target["archive"])
    try:
        with tarfile.open(archive, "r:*") as tar:
            for info in tar:
                name = info.name.removeprefix("./")
                if name in missing and info.isfile():
                    _extract_verified(tar, info, folder / name, missing.pop(name), archive)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise DataError(f"{archive}: not a readable tar archive ({exc})") from None
    if missing:
        raise DataError(f"{archive} lacks {', '.join(sorted(missing))}")
    sources.discard(target["archive"])
    log.info("extracted %d file(s) into %s", len(todo), folder)
    return todo


def _extract_verified(tar: tarfile.TarFile, info: tarfile.TarInfo, dest: Path, md5: str, archive: Path) -> None:
    with atomic_path(dest) as tmp, tar.extractfile(info) as src:  # type: ignore[union-attr]
        with open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
        got = file_digest(tmp, "md5")
        if got != md5:
            raise DataError(f"{archive}: member {info.name} has md5 {got}, expected {md5}; {dest} not written")


# What a pandas DataFrame pickle (pandas 0.2x to 3.x) may import; no function that reads files or evaluates.
_PICKLE_MODULE_PREFIXES = (
    "pandas.core.frame", "pandas.core.series", "pandas.core.internals", "pandas.core.indexes", "pandas.core.index",
    "pandas.core.arrays", "pandas.core.dtypes", "pandas.arrays", "pandas._libs.internals", "pandas._libs.arrays",
    "pandas._libs.tslibs",
)
_PICKLE_NAMES = {
    *(("pandas", n) for n in ("DataFrame", "Series", "Index", "RangeIndex", "MultiIndex", "CategoricalDtype",
                              "Categorical", "StringDtype", "Int64Dtype", "Float64Dtype", "BooleanDtype")),
    ("__builtin__", "slice"), ("__builtin__", "object"), ("__builtin__", "set"), ("__builtin__", "frozenset"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "slice"), ("builtins", "object"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "complex"), ("builtins", "bytearray"), ("_codecs", "encode"),
    ("copyreg", "_reconstructor"), ("collections", "OrderedDict"),
}
_PICKLE_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_MARK = object()


def pickle_globals(data: bytes) -> set[tuple[str, str]]:
    """The (module, name) globals a pickle would import, read from its opcodes without running it.

    The stack is simulated as in ``pickletools.dis``, with the value of every pushed string kept, so
    the module and name that a protocol-4 ``STACK_GLOBAL`` pops are known.
    """
    found: set[tuple[str, str]] = set()
    stack: list[Any] = []  # a str for each pushed string, _MARK for marks, None for anything else
    memo: dict[int, Any] = {}
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.add((module, attr))
        elif name == "STACK_GLOBAL":
            module, attr = stack[-2:] if len(stack) >= 2 else (None, None)
            if not (isinstance(module, str) and isinstance(attr, str)):
                raise DataError("pickle has a STACK_GLOBAL whose name cannot be read without running it")
            found.add((module, attr))
        elif name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):  # they leave the stack as it is
            memo[len(memo) if name == "MEMOIZE" else int(arg)] = stack[-1] if stack else None
            continue
        before = op.stack_before
        if pickletools.markobject in before or (name == "POP" and stack and stack[-1] is _MARK):
            while stack and stack.pop() is not _MARK:
                pass
            before = before[: before.index(pickletools.markobject)] if pickletools.markobject in before else []
        if before:
            del stack[max(0, len(stack) - len(before)):]
        if name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(int(arg)))
        elif name in _PICKLE_STRING_OPS:
            stack.append(arg.decode("latin1") if isinstance(arg, bytes) else arg)
        else:
            stack.extend(_MARK if t is pickletools.markobject else None for t in op.stack_after)
    return found


def _read_pandas_pickle(path: Path):  # noqa: ANN202 - a DataFrame
    import pandas as pd

    bad = sorted(
        f"{m}.{n}" for m, n in pickle_globals(path.read_bytes())
        if (m, n) not in _PICKLE_NAMES and not any(m == p or m.startswith(p + ".") for p in _PICKLE_MODULE_PREFIXES)
    )
    if bad:
        raise DataError(f"{path}: refusing to unpickle, it would import {', '.join(bad)}")
    frame = pd.read_pickle(path)
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{path}: expected a pandas DataFrame, got {type(frame).__name__}")
    return frame


def _read_input(path: Path, spec: Manifest):  # noqa: ANN202 - a DataFrame
    import pandas as pd

    try:
        if spec["format"] == "csv":
            names = spec.get("names")
            return pd.read_csv(path, header=None if names else "infer", names=names)
        if spec["format"] == "pandas_pickle":
            return _read_pandas_pickle(path)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise DataError(f"{path}: not a readable {spec['format']} file ({exc})") from None
    raise DataError(f"data manifest: unknown input format {spec['format']!r}")


def _pick(frame, path: Path, col: Manifest):  # noqa: ANN001, ANN202 - DataFrame in, Series out
    for name in col["source"]:
        if name in frame.columns:
            return frame[name].reset_index(drop=True)
    raise DataError(
        f"{path}: no column for {col['name']} (looked for {', '.join(col['source'])}; it has "
        f"{', '.join(map(str, frame.columns))}); fix the column map in {MANIFEST.name}"
    )


def _round_sig(series, digits: int = SIG_DIGITS):  # noqa: ANN001, ANN202
    return series.map(lambda v: float(f"{v:.{digits}g}")) if series.dtype.kind == "f" else series


def _to_csv(frame) -> bytes:  # noqa: ANN001
    return frame.to_csv(index=False, lineterminator="\n").encode()


def convert_table(target: Manifest, paths: dict[str, Path]) -> bytes:
    """The CSV bytes of a ``table`` target, built from its downloaded inputs (name -> file)."""
    import pandas as pd

    frames = {k: _read_input(paths[k], spec) for k, spec in target["inputs"].items()}
    rows = target["rows"]
    for k, frame in frames.items():
        if len(frame) != rows:
            raise DataError(f"{paths[k]}: expected {rows} rows, found {len(frame)}")
    out = pd.DataFrame({target["index"]: range(rows)} if target.get("index") else {})
    for col in target["columns"]:
        out[col["name"]] = _round_sig(_pick(frames[col["from"]], paths[col["from"]], col))
    for col in target.get("same", []):
        other = _pick(frames[col["from"]], paths[col["from"]], col)
        differ = (other.astype(str) != out[col["name"]].astype(str)).to_numpy().nonzero()[0]
        if len(differ):
            raise DataError(
                f"{paths[col['from']]}: row {differ[0]} has {col['name']} {other[differ[0]]!r}, expected "
                f"{out[col['name']][differ[0]]!r} ({len(differ)} rows differ); the sources do not line up"
            )
    data = _to_csv(out)
    ref = target.get("reference")
    if ref:
        got = hashlib.sha256(_to_csv(out.drop(columns=ref["drop"]))).hexdigest()
        if got == ref["sha256"]:
            log.info("%s matches %s", target["path"], ref["what"])
        else:
            log.warning(
                "%s does not reproduce %s (sha256 %s, expected %s): check the column map in %s",
                target["path"], ref["what"], got, ref["sha256"], MANIFEST.name,
            )
    return data


def _build_table(root: Path, target: Manifest, sources: SourceCache) -> list[str]:
    paths = {k: sources.get(spec["download"]) for k, spec in target["inputs"].items()}
    dest = root / target["path"]
    data = convert_table(target, paths)
    if dest.is_file() and dest.read_bytes() == data:
        return []
    write_bytes(dest, data)
    log.info("wrote %s", dest)
    return [target["path"]]


_BUILDERS: dict[str, Callable[[Path, Manifest, SourceCache], list[str]]] = {
    "tar_members": _build_tar_members,
    "table": _build_table,
}


def fill_from_sources(
    root: str | os.PathLike, manifest: Manifest | None = None, source_base: str | None = None
) -> list[str]:
    """Download (once, sha256-checked) and convert the public sources; returns the paths written."""
    root = Path(root)
    manifest = manifest or load_manifest()
    base = source_base if source_base is not None else os.environ.get(SOURCE_BASE_ENV)
    sources = SourceCache(root / SOURCES_DIR, manifest["downloads"], base)
    written: list[str] = []
    for target in manifest["targets"]:
        try:
            build = _BUILDERS[target["kind"]]
        except KeyError:
            raise DataError(f"data manifest: unknown target kind {target['kind']!r}") from None
        written += build(root, target, sources)
    log.info("%s: %d file(s) written from the public sources", root, len(written))
    return written


NATS_COLUMNS = {"cifar10_test": "cifar10:ori-test", "cifar100_test": "cifar100:x-test",
                "imagenet16_120_test": "ImageNet16-120:x-test", "cifar10_valid": "cifar10-valid:x-valid"}


def convert_nats_sss(source: Path, root: Path) -> Path:
    """An official NATS-Bench-SSS table (``-simple`` folder or single ``.pickle.pbz2``) as
    ``<root>/nats_sss/nats_sss.csv``: index, arch_str and the accuracies of ``NATS_COLUMNS``."""
    from eznas.spaces.nats_sss import CSV, official_table

    table = official_table(Path(source), NATS_COLUMNS.values()).rename(columns={v: k for k, v in NATS_COLUMNS.items()})
    dest = root / "nats_sss" / CSV
    write_bytes(dest, _to_csv(table))
    log.info("%s: %d NATS-Bench-SSS archs from %s", dest, len(table), source)
    return dest


def manual_notes(root: Path, manifest: Manifest | None = None) -> list[str]:
    """Messages for data with no automatic download that is not in ``root`` yet."""
    entries = (manifest or load_manifest()).get("manual", [])
    return [e["message"].format(root=root) for e in entries if not (root / e["expect"]).exists()]


# ---------------------------------------------------------------------------------------------- CLI


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


if __name__ == "__main__":
    raise SystemExit(main())
