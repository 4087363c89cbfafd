"""A command's progress: a tqdm bar in a terminal, else (e.g. a SLURM job's log) a log line every minute or
10% of the work."""
from __future__ import annotations

import logging
import math
import sys
import time
from datetime import timedelta
from typing import Any, Callable

log = logging.getLogger("eznas.cli")  # the commands' progress lines keep the name they had in logs


class LogProgress:
    """A progress bar for a log (stderr no terminal, e.g. a SLURM job's file): like tqdm's ``update``,
    ``set_postfix`` and ``close``, it logs a line (done/total, elapsed, ETA) every ``seconds`` or every
    ``fraction`` of the total, whichever comes first, and at the end. The ETA counts only the items done
    since it started (not those a resumed run had done before)."""

    def __init__(self, total: int, desc: str, unit: str, initial: int = 0, seconds: float = 60.0,
                 fraction: float = 0.1, clock: Callable[[], float] = time.monotonic):
        self.total, self.desc, self.unit, self.n, self.first = total, desc, unit, initial, initial
        self.seconds, self.step, self.clock = seconds, max(1, math.ceil(fraction * total)), clock
        self.start = self.last = clock()
        self.logged, self.postfix = initial, ""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.seconds or self.n - self.logged >= self.step or self.n >= self.total:
            self.log(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = "".join(f", {k}={v}" for k, v in values.items())

    def close(self) -> None:
        if self.n != self.logged:
            self.log(self.clock())

    def log(self, now: float) -> None:
        elapsed, done = now - self.start, self.n - self.first
        eta = _clock(elapsed / done * max(self.total - self.n, 0)) if done else "?"
        log.info("%s: %d/%d %ss (%d%%), elapsed %s, ETA %s%s", self.desc, self.n, self.total, self.unit,
                 100 * self.n // max(self.total, 1), _clock(elapsed), eta, self.postfix)
        self.last, self.logged = now, self.n


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def progress_bar(total: int, desc: str, unit: str, quiet: bool, initial: int = 0) -> Any:
    """A command's progress: a tqdm bar when stderr is a terminal, else LogProgress lines; none when quiet."""
    from tqdm import tqdm

    if not quiet and not sys.stderr.isatty():
        return LogProgress(total, desc, unit, initial)
    return tqdm(total=total, initial=initial, unit=unit, desc=desc, disable=quiet)
