"""The public sources turned into the data root's files: archive members extracted (md5-checked), tables
converted to CSV (columns mapped and checked, floats rounded), as the manifest's ``targets`` say; and an
official NATS-Bench-SSS table converted once to CSV."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

from eznas.errors import DataError
from eznas.fetch.downloads import CHUNK, SOURCE_BASE_ENV, SOURCES_DIR, SourceCache, file_digest, has_digest
from eznas.fetch.manifest import MANIFEST, Manifest, load_manifest
from eznas.fetch.safe_pickle import read_pandas_pickle
from eznas.io import atomic_path, write_bytes

log = logging.getLogger(__package__)  # the command's one logger: its lines read "eznas.fetch: ..."

SIG_DIGITS = 10  # the mirror's tables round floats to 10 significant digits


def _build_tar_members(root: Path, target: Manifest, sources: SourceCache) -> list[str]:
    """Extract the listed members (md5-checked) of an archive into ``<root>/<dir>/``; then drop the archive."""
    folder = root / target["dir"]
    missing = {m: md5 for m, md5 in target["md5"].items() if not has_digest(folder / m, md5, "md5")}
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
            shutil.copyfileobj(src, out, CHUNK)
        got = file_digest(tmp, "md5")
        if got != md5:
            raise DataError(f"{archive}: member {info.name} has md5 {got}, expected {md5}; {dest} not written")


def _read_input(path: Path, spec: Manifest):  # noqa: ANN202 - a DataFrame
    import pandas as pd

    try:
        if spec["format"] == "csv":
            names = spec.get("names")
            return pd.read_csv(path, header=None if names else "infer", names=names)
        if spec["format"] == "pandas_pickle":
            return read_pandas_pickle(path)
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
