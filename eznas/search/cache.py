"""A fitness's per-arch values that searches with the same scoring settings share (``--score_cache FILE``).

The file is JSON lines: the first holds the scoring settings (space, dataset, batch, score seed, device,
probe/width/cells, the fitness and its per-arch parts), each later one an arch scored, ``{"uid", "values",
"seconds"}``, appended (one ``write`` of a whole line, then flushed to disk) as soon as it is scored. A search
reads the archs there instead of scoring them again, each counting the seconds it took, so a benchmark of
many searches scores an arch once and pays for only the archs its searches visit (not a whole table). A
file of other settings, or a line that does not parse, is an error naming the file: it is never used.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from eznas.errors import DataError, EznasError


class ScoreCache:
    def __init__(self, path: str | os.PathLike, settings: dict[str, Any]):
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings))  # as it reads back (tuples as lists)
        self.entries: dict[str, tuple[dict[str, float], float]] = {}
        if self.path.is_file() and self.path.stat().st_size:
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"settings": self.settings})

    def _load(self) -> None:
        with open(self.path) as f:
            lines = f.read().splitlines()
        try:
            rows = [json.loads(line) for line in lines]
        except ValueError as exc:
            bad = next(i for i, line in enumerate(lines, 1) if not _parses(line))
            raise DataError(f"--score_cache {self.path}: line {bad} is not JSON ({exc}); move the file aside") from None
        before = rows[0].get("settings") if isinstance(rows[0], dict) else None
        if not isinstance(before, dict):
            raise DataError(f"--score_cache {self.path}: its first line holds no scoring settings; not a score cache")
        for key in sorted(set(before) | set(self.settings)):
            if before.get(key) != self.settings.get(key):
                raise EznasError(f"--score_cache {self.path}: its {key} is {before.get(key)!r}, the search's "
                                 f"{self.settings.get(key)!r}: its scores are not the ones this search would compute")
        for i, row in enumerate(rows[1:], 2):
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

    def get(self, uid: str) -> tuple[dict[str, float], float]:
        return self.entries[uid]

    def add(self, uid: str, values: dict[str, float], seconds: float) -> None:
        values = {k: float(v) if math.isfinite(v) else math.nan for k, v in values.items()}
        self._append({"uid": uid, "values": values, "seconds": seconds})
        self.entries[uid] = (values, seconds)


def _parses(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False
