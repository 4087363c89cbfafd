"""A fitness's per-arch values that searches with the same scoring settings share (``--score_cache FILE``).

The file is JSON lines: the first holds the scoring settings (space, dataset, batch, score seed, device,
probe/width/cells, the fitness and its per-arch parts), each later one an arch scored, ``{"uid", "values",
"seconds"}``, appended (one ``write`` of a whole line, then flushed to disk) as soon as it is scored. A search
reads the archs there instead of scoring them again, each counting the seconds it took, so a benchmark of
many searches scores an arch once and pays for only the archs its searches visit (not a whole table).
Searches running beside each other share it as they go: before scoring an arch, a search reads the lines
the others appended since (whole lines only). A file of other settings, or a line that does not parse, is
an error naming the file: it is never used.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from eznas.errors import DataError, EznasError
from eznas.io import check_writable


class ScoreCache:
    def __init__(self, path: str | os.PathLike, settings: dict[str, Any] | None):
        """A search's cache (created if absent; it must be writable), or with ``settings`` None an existing
        one read as it is, under its own settings (to inspect it: nothing is appended)."""
        self.path = Path(path)
        self.entries: dict[str, tuple[dict[str, float], float]] = {}
        self._offset, self._lines = 0, 0  # bytes and lines read so far
        if settings is None and not self.path.is_file():
            raise DataError(f"--score_cache {self.path}: no such file")
        if settings is not None:
            check_writable(self.path, folder=False, what="--score_cache")
            if not (self.path.is_file() and self.path.stat().st_size):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._append({"settings": settings})
        rows = self._read()
        before = rows[0].get("settings") if rows and isinstance(rows[0], dict) else None
        if not isinstance(before, dict):
            raise DataError(f"--score_cache {self.path}: its first line holds no scoring settings; not a score cache")
        self.settings = before if settings is None else json.loads(json.dumps(settings))  # as it reads back
        for key in sorted(set(before) | set(self.settings)):
            if before.get(key) != self.settings.get(key):
                raise EznasError(f"--score_cache {self.path}: its {key} is {before.get(key)!r}, the search's "
                                 f"{self.settings.get(key)!r}: its scores are not the ones this search would compute")
        self._add_rows(rows[1:], first_line=2)

    def _read(self) -> list[Any]:
        """The whole lines appended since the last read, parsed (a line being written stays for the next)."""
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        data = data[:data.rfind(b"\n") + 1]
        lines = data.decode().splitlines()
        rows = []
        for i, line in enumerate(lines, self._lines + 1):
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise DataError(f"--score_cache {self.path}: line {i} is not JSON ({exc}); move the file aside") from None
        self._offset += len(data)
        self._lines += len(lines)
        return rows

    def refresh(self) -> None:
        """Read what searches beside this one appended since."""
        first = self._lines + 1
        self._add_rows(self._read(), first_line=first)

    def _add_rows(self, rows: list[Any], first_line: int) -> None:
        for i, row in enumerate(rows, first_line):
            try:
                values = {k: float(v) for k, v in row["values"].items()}
                self.entries[str(row["uid"])] = (values, float(row["seconds"]))
            except (KeyError, TypeError, ValueError, AttributeError):
                raise DataError(f"--score_cache {self.path}: line {i} is not an arch's scores "
                                "({uid, values, seconds}); move the file aside") from None

    def _append(self, row: dict[str, Any]) -> None:
        line = (json.dumps(row) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write of the whole line: searches appending beside each other do not interleave
            os.fsync(fd)
        finally:
            os.close(fd)

    def __contains__(self, uid: str) -> bool:
        return uid in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def scorings(self) -> int:
        """The arch lines read: an arch two searches scored at once is there twice (one entry)."""
        return self._lines - 1

    def get(self, uid: str) -> tuple[dict[str, float], float]:
        return self.entries[uid]

    def lookup(self, uid: str) -> tuple[dict[str, float], float] | None:
        """The arch's values and seconds, reading on a miss what searches beside this one appended since;
        None where nobody scored it."""
        if uid not in self.entries:
            self.refresh()
        return self.entries.get(uid)

    def add(self, uid: str, values: dict[str, float], seconds: float) -> None:
        values = {k: float(v) if math.isfinite(v) else math.nan for k, v in values.items()}
        self._append({"uid": uid, "values": values, "seconds": seconds})
        self.entries[uid] = (values, seconds)
