"""Atomic file writes: a reader never sees a half-written file, and an existing one survives a crash.
``locked(path)`` serialises the writers of a shared file (read-modify-replace under one lock);
``read_pickle`` reads what an older eznas pickled, under its modules' names now."""
from __future__ import annotations

import fcntl
import json
import os
import pickle
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

MOVED_MODULES = {"primitives": "eznas.primitives"}  # a package that moved: its name now


@contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``dest``. If the block succeeds, whatever it wrote there
    replaces ``dest`` in one rename; if it raises, the temporary file is removed and ``dest`` is untouched."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """``open(path, mode)`` through :func:`atomic_path`: the file appears complete or not at all."""
    with atomic_path(path) as tmp:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_open(path) as f:
        json.dump(obj, f, indent=2, default=str)
        f.write("\n")


@contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the sidecar ``.<name>.lock`` beside ``path`` (created once, never
    removed: removing it would let two writers lock two different files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def check_writable(path: str | os.PathLike, folder: bool, what: str) -> None:
    """Raise OSError naming ``what`` unless ``path`` (a file, or a folder if ``folder``) can be written:
    it is of that kind or absent, and its nearest existing folder is writable. Nothing is created."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise OSError(f"{what} {path}: is {'a file' if folder else 'a folder'}, not {'a folder' if folder else 'a file'}")
    parent = path if folder and path.exists() else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OSError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.is_file() and not os.access(path, os.W_OK)):
        raise OSError(f"{what} {path}: not writable")


class _Unpickler(pickle.Unpickler):
    """Finds a class or function under the name it has now where the pickle names a moved module."""

    def find_class(self, module: str, name: str) -> Any:
        top, dot, rest = module.partition(".")
        if top in MOVED_MODULES:
            module = MOVED_MODULES[top] + dot + rest
        return super().find_class(module, name)


def read_pickle(f: IO[bytes]) -> Any:
    """``pickle.load(f)``, with a module an older eznas pickled under another name (:data:`MOVED_MODULES`,
    e.g. ``primitives.aggregate``) found where it is now (``eznas.primitives.aggregate``)."""
    return _Unpickler(f).load()
