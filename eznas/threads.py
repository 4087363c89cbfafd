"""How many threads a process computes with: its share of the CPUs it may use, never more.

Every command (``verify_scores.py``, ``evolve.py``, ``search.py``, or ``eznas verify|evolve|search``) calls
:func:`command_threads` once, at its start, and every worker process a backend starts calls
:func:`worker_threads` before its first task (``eznas.parallel``). The intra-op thread count is, first found first:

1. ``--threads N`` (verify, evolve, search);
2. ``$EZNAS_THREADS``;
3. ``$OMP_NUM_THREADS`` where the command was started (the user's setting for every OpenMP program);
4. the automatic share: the CPUs this process may use (``os.sched_getaffinity``, else ``os.cpu_count()``,
   capped by ``$SLURM_CPUS_PER_TASK``) divided by the worker processes the command starts on this machine,
   at least 1. The command's own process takes the whole share (it waits while its workers compute);
   loky or LocalCluster workers take ``cpus // workers`` each; a SLURM job's one worker its job's CPUs.

The command's explicit count (1-3) is given to its workers too; a worker's own ``$OMP_NUM_THREADS`` is
ignored (joblib and Dask set it there), its own ``$EZNAS_THREADS`` is not. MKL follows the same count, and
there is one inter-op thread (eznas never runs ops side by side). The count changes no result beyond float
summation order (evolution's statistics are computed on one thread whatever it is, ``torch_threads(1)``),
so it is not part of a run's config: a run may be resumed with another.

Waiting: PyTorch's CPU wheels bundle GNU OpenMP (``libgomp``; ``torch.__config__.parallel_info()`` says
"ATen parallel backend: OpenMP"), whose idle threads spin for about 300,000 iterations (~3 ms) after every
parallel region before they sleep. Beside another process those spinning threads take the cores its
threads need, and both slow down far beyond their share. :func:`quiet_openmp` sets ``OMP_WAIT_POLICY=PASSIVE``
(unless the user set it): idle threads sleep at once (libgomp: spin count 0; LLVM/Intel OpenMP: block time
0). OpenMP reads the variable once, when torch loads it, so the entry scripts and the ``eznas`` command
(``eznas.__main__``) call it before anything imports torch, and the mapper calls it before starting workers
(they inherit it). ``KMP_BLOCKTIME`` is not set: libgomp does not read it.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass

from eznas.errors import EznasError
from eznas.registry import Valid, check_values

log = logging.getLogger(__name__)

THREADS_ENV = "EZNAS_THREADS"
OMP_THREADS_ENV = "OMP_NUM_THREADS"
SLURM_CPUS_ENV = "SLURM_CPUS_PER_TASK"
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
THREADS_FLAG = "--threads"


@dataclass(frozen=True)
class ThreadChoice:
    """A process's intra-op thread count, where it came from and the CPUs it may use."""

    threads: int
    source: str  # "--threads", "$EZNAS_THREADS", "$OMP_NUM_THREADS" or "share"
    cpus: int
    workers: int = 1  # the processes sharing those CPUs (for "share")

    def __str__(self) -> str:
        if self.source == "share":
            per = f" / {self.workers} worker processes" if self.workers > 1 else ""
            return f"{self.threads} (the automatic share: {self.cpus} CPUs this process may use{per})"
        return f"{self.threads} (from {self.source}; {self.cpus} CPUs this process may use)"


def _count(text: str, what: str) -> int:
    """An integer from a flag's or variable's text (an OpenMP list such as "4,2": its first entry)."""
    try:
        return int(text.split(",")[0].strip())
    except ValueError:
        raise EznasError(f"{what}={text!r} is not a count (expected an integer >= 1)") from None


def _env_count(environ: Mapping[str, str], var: str) -> int | None:
    """``$var`` as a count >= 1, None when unset or empty; a bad value is an EznasError naming it."""
    text = environ.get(var, "").strip()
    if not text:
        return None
    n = _count(text, f"${var}")
    check_values({var: n}, {var: Valid(lambda v: v >= 1, ">= 1")}, name=lambda k: f"${k}")
    return n


def process_cpus(affinity: Collection[int] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The CPUs this process may use: its affinity (``os.sched_getaffinity(0)``; where the platform has none,
    ``os.cpu_count()``), capped by ``$SLURM_CPUS_PER_TASK``. ``affinity`` and ``environ`` replace the
    process's own (tests)."""
    environ = os.environ if environ is None else environ
    if affinity is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    else:
        cpus = len(affinity)
    cpus = max(cpus, 1)
    slurm = _env_count(environ, SLURM_CPUS_ENV)
    return min(cpus, slurm) if slurm is not None else cpus


def cpu_share(workers: int = 1, affinity: Collection[int] | None = None,
              environ: Mapping[str, str] | None = None) -> int:
    """Each of ``workers`` processes' share of this process's CPUs: ``cpus // workers``, at least 1."""
    if workers < 1:
        raise EznasError(f"workers must be >= 1, got {workers}")
    return max(process_cpus(affinity, environ) // workers, 1)


def requested_threads(flag: int | None = None, affinity: Collection[int] | None = None,
                      environ: Mapping[str, str] | None = None, omp: bool = True) -> ThreadChoice | None:
    """The explicit count, first found of ``flag`` (--threads), ``$EZNAS_THREADS`` and (with ``omp``)
    ``$OMP_NUM_THREADS``; None when none is given. ``--threads`` and ``$EZNAS_THREADS`` must be >= 1 and at
    most the CPUs this process may use; ``$OMP_NUM_THREADS``, the user's setting for every OpenMP program,
    is taken as it is (>= 1). Errors are EznasError naming the flag or variable."""
    environ = os.environ if environ is None else environ
    cpus = process_cpus(affinity, environ)
    fits = Valid(lambda n: 1 <= n <= cpus, f">= 1 and <= {cpus} (the CPUs this process may use)")
    if flag is not None:
        check_values({THREADS_FLAG: flag}, {THREADS_FLAG: fits})
        return ThreadChoice(flag, THREADS_FLAG, cpus)
    if (n := _env_count(environ, THREADS_ENV)) is not None:
        check_values({THREADS_ENV: n}, {THREADS_ENV: fits}, name=lambda k: f"${k}")
        return ThreadChoice(n, f"${THREADS_ENV}", cpus)
    if omp and (n := _env_count(environ, OMP_THREADS_ENV)) is not None:
        return ThreadChoice(n, f"${OMP_THREADS_ENV}", cpus)
    return None


def decide_threads(flag: int | None = None, workers: int = 1, affinity: Collection[int] | None = None,
                   environ: Mapping[str, str] | None = None, omp: bool = True) -> ThreadChoice:
    """The intra-op thread count of a process that is one of ``workers`` sharing this machine's CPUs: the
    explicit count (:func:`requested_threads`), else the automatic share (:func:`cpu_share`)."""
    explicit = requested_threads(flag, affinity, environ, omp)
    if explicit is not None:
        return explicit
    return ThreadChoice(cpu_share(workers, affinity, environ), "share", process_cpus(affinity, environ), workers)


def quiet_openmp(environ: MutableMapping[str, str] | None = None) -> bool:
    """``OMP_WAIT_POLICY=PASSIVE`` unless it is set: OpenMP's idle threads sleep instead of spinning. It
    takes effect in processes whose OpenMP starts after this (this one only if torch is not loaded yet, and
    every process it starts later); True when it was set here."""
    environ = os.environ if environ is None else environ
    if environ.get(WAIT_POLICY_ENV):
        return False
    environ[WAIT_POLICY_ENV] = "PASSIVE"
    return True


def set_threads(n: int) -> None:
    """Compute with ``n`` intra-op threads (OpenMP and MKL) and one inter-op thread from now on. The inter-op
    count can be set only before torch's first inter-op work; after that it stays as it is."""
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work has started: it stays
        log.debug("torch inter-op threads stay %d (set before)", torch.get_num_interop_threads())


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Compute with ``n`` torch threads inside the block (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` inside the block (restored after)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def command_threads(flag: int | None = None) -> Iterator[ThreadChoice]:
    """A command's threads inside the block: the count :func:`decide_threads` chooses (a bad ``--threads``
    or variable is an EznasError, before anything is done), one inter-op thread, OpenMP's idle threads
    passive, and ``--threads`` passed on to the workers it starts as ``$EZNAS_THREADS``. The intra-op count
    and the environment are restored after (a command run in-process leaves its caller's as they were)."""
    choice = decide_threads(flag)
    quiet_openmp()
    log.info("torch threads: %s", choice)
    with _environ({THREADS_ENV: str(flag)} if flag is not None else {}), torch_threads(choice.threads):
        set_threads(choice.threads)
        yield choice


_worker_threads: tuple[int, int] | None = None  # (pid, threads) set in this worker process


def worker_threads(explicit: int | None, per_machine: int, affinity: Collection[int] | None = None,
                   environ: Mapping[str, str] | None = None) -> int:
    """In a worker process, before a task: compute with the command's explicit count (``explicit``, from
    :func:`requested_threads` where the command runs), else the worker's own ``$EZNAS_THREADS``, else its
    share of its machine's CPUs among the ``per_machine`` workers started there; set once per process.
    The count."""
    global _worker_threads
    n = explicit if explicit is not None else decide_threads(None, per_machine, affinity, environ, omp=False).threads
    if _worker_threads != (os.getpid(), n):
        set_threads(n)
        _worker_threads = (os.getpid(), n)
        log.debug("worker %d: %d torch threads", os.getpid(), n)
    return n
