"""How many threads a process computes with: its share of the CPUs it may use, never more.

Every command (``verify_scores.py``, ``evolve.py``, ``search.py``, or ``eznas verify|evolve|search``) calls
:func:`command_threads` once, at its start, and every worker process a backend starts calls
:func:`worker_threads` before its first task (``eznas.parallel``). The intra-op thread count is, first found first:

1. ``--threads N`` (verify, evolve, search);
2. ``$EZNAS_THREADS``;
3. ``$OMP_NUM_THREADS`` where the command was started (the user's setting for every OpenMP program);
4. the automatic share: the CPUs this process may use (``os.sched_getaffinity``, else ``os.cpu_count()``,
   capped by ``$SLURM_CPUS_PER_TASK``) divided by the worker processes the command starts on this machine,
   at least 1. The command's own process takes the whole share (it waits while its workers compute) divided
   among the eznas commands running on those CPUs (:class:`Presence`: each command leaves a file naming its
   CPUs in ``<tmp>/eznas-<uid>/commands/`` while it runs), and checks it again before each arch it scores
   (:func:`refit_threads`): a verify alone computes with 2 threads on 2 CPUs, one each when a second command
   starts beside it, 2 again when that ends. Loky or LocalCluster workers take ``cpus // workers`` each; a
   SLURM job's one worker its job's CPUs.

The command's explicit count (1-3) is given to its workers too; a worker's own ``$OMP_NUM_THREADS`` is
ignored (joblib and Dask set it there), its own ``$EZNAS_THREADS`` is not. MKL follows the same count, and
there is one inter-op thread (eznas never runs ops side by side). The count changes no result beyond float
summation order (evolution's statistics are computed on one thread whatever it is, ``torch_threads(1)``),
so it is not part of a run's config: a run may be resumed with another.

Waiting: PyTorch's CPU wheels bundle GNU OpenMP (``libgomp``; ``torch.__config__.parallel_info()`` says
"ATen parallel backend: OpenMP"), whose idle threads spin for about 300,000 iterations (~3 ms) after every
parallel region before they sleep. Beside another process those spinning threads take the cores its
threads need, and both slow down far beyond their share (a verify 17x). Sleeping at once costs a process
alone as much (a 24-arch verify on 2 CPUs: 83 s against 46 s spinning: every small op wakes its threads).
:func:`quiet_openmp` sets ``OMP_WAIT_POLICY=PASSIVE`` and ``GOMP_SPINCOUNT=3000`` (unless the user set
either): libgomp's idle threads spin for 3,000 iterations (tens of microseconds) and then sleep (the verify:
51 s alone, 2.1x beside another with 2 threads each; ``benchmarks/results/contention.md``), other OpenMP
runtimes sleep at once. OpenMP reads the variables once, when torch loads it, so the entry scripts and the
``eznas`` command (``eznas.__main__``) call it before anything imports torch, and the mapper calls it before
starting workers (they inherit it). ``KMP_BLOCKTIME`` is not set: libgomp does not read it.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Collection, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from eznas.errors import EznasError
from eznas.registry import Valid, check_values

log = logging.getLogger(__name__)

THREADS_ENV = "EZNAS_THREADS"
OMP_THREADS_ENV = "OMP_NUM_THREADS"
SLURM_CPUS_ENV = "SLURM_CPUS_PER_TASK"
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
SPIN_ENV = "GOMP_SPINCOUNT"
SPIN_COUNT = "3000"  # libgomp's idle threads: tens of microseconds of spinning, then sleep
THREADS_FLAG = "--threads"


@dataclass(frozen=True)
class ThreadChoice:
    """A process's intra-op thread count, where it came from and the CPUs it may use."""

    threads: int
    source: str  # "--threads", "$EZNAS_THREADS", "$OMP_NUM_THREADS" or "share"
    cpus: int
    workers: int = 1  # the processes sharing those CPUs (for "share")
    commands: int = 1  # the eznas commands computing on those CPUs, this one included (for "share")

    def __str__(self) -> str:
        if self.source == "share":
            per = f" / {self.workers} worker processes" if self.workers > 1 else ""
            per += f" / {self.commands} eznas commands on them" if self.commands > 1 else ""
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
        cpus = len(_cpu_ids())
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
    """``OMP_WAIT_POLICY=PASSIVE`` and ``GOMP_SPINCOUNT=3000`` unless either is set: OpenMP's idle threads
    spin briefly (libgomp), then sleep. It takes effect in processes whose OpenMP starts after this (this one
    only if torch is not loaded yet, and every process it starts later); True when it was set here."""
    environ = os.environ if environ is None else environ
    if environ.get(WAIT_POLICY_ENV) or environ.get(SPIN_ENV):
        return False
    environ.update({WAIT_POLICY_ENV: "PASSIVE", SPIN_ENV: SPIN_COUNT})
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


_pinned = 0  # torch_threads blocks open in this process: refit_threads leaves their count as it is


@contextmanager
def torch_threads(n: int = 1, pin: bool = True) -> Iterator[None]:
    """Compute with ``n`` torch threads inside the block (restored after); ``pin``: no command's
    :func:`refit_threads` changes it there (evolution's statistics are computed on one thread)."""
    import torch

    global _pinned
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    _pinned += pin
    try:
        yield
    finally:
        _pinned -= pin
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


def presence_folder() -> Path:
    """Where the running eznas commands of this user leave their files (:class:`Presence`)."""
    return Path(tempfile.gettempdir()) / f"eznas-{os.getuid()}" / "commands"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _stopped(pid: int) -> bool:
    """Whether the process is stopped (SIGSTOP, Ctrl-Z: state T or t in /proc; False where there is no /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


class Presence:
    """This command among the eznas commands running on this machine, while the block runs: a file named by
    its pid in ``folder`` (:func:`presence_folder`) listing the CPUs it may use. :meth:`sharing` counts the
    commands whose CPUs overlap this one's (a SLURM job's own CPUs are not shared with another job's); a dead
    command's file is removed by the next one that reads it, a stopped one's (SIGSTOP, Ctrl-Z) not counted while it
    is. Where the folder cannot be written, the command counts as alone."""

    def __init__(self, cpus: Collection[int], folder: Path | None = None, pid: int | None = None) -> None:
        self.cpus, self.folder, self.pid = frozenset(cpus), folder or presence_folder(), pid or os.getpid()
        self.path = self.folder / str(self.pid)

    def __enter__(self) -> Presence:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.path.write_text(",".join(str(c) for c in sorted(self.cpus)))
        except OSError as exc:
            log.debug("no presence file %s: %s", self.path, exc)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass

    def sharing(self) -> int:
        """The running eznas commands on this one's CPUs, itself included."""
        try:
            entries = [e for e in self.folder.iterdir() if e.name.isdigit() and int(e.name) != self.pid]
        except OSError:
            return 1
        n = 1
        for entry in entries:
            if not _alive(int(entry.name)):
                entry.unlink(missing_ok=True)
                continue
            try:
                cpus = {int(c) for c in entry.read_text().split(",") if c.strip()}
            except (OSError, ValueError):  # being written, or not ours
                continue
            n += bool(cpus & self.cpus) and not _stopped(int(entry.name))
        return n


_shared: tuple[Presence, ThreadChoice] | None = None  # a command's automatic share, while it runs


def refit_threads() -> int | None:
    """Before a unit of work (an arch to score): a command computing with the automatic share takes its
    share among the eznas commands running on its CPUs now; the count, None outside such a command or inside
    a block that set its own (:func:`torch_threads`)."""
    global _shared
    if _shared is None or _pinned:
        return None
    presence, before = _shared
    choice = _share(presence, before)
    if choice != before:
        import torch

        _shared = presence, choice
        torch.set_num_threads(choice.threads)
        log.info("torch threads: %s", choice)
    return choice.threads


def _share(presence: Presence, choice: ThreadChoice) -> ThreadChoice:
    """The automatic share ``choice`` divided among the eznas commands on ``presence``'s CPUs now."""
    commands = presence.sharing()
    return replace(choice, threads=max(choice.cpus // commands, 1), commands=commands)


def _cpu_ids() -> frozenset[int]:
    return frozenset(os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1))


@contextmanager
def command_threads(flag: int | None = None) -> Iterator[ThreadChoice]:
    """A command's threads inside the block: the count :func:`decide_threads` chooses (a bad ``--threads``
    or variable is an EznasError, before anything is done; the automatic share divided among the eznas
    commands running on its CPUs, :func:`refit_threads`), one inter-op thread, OpenMP's idle threads
    briefly spinning, and ``--threads`` passed on to the workers it starts as ``$EZNAS_THREADS``. The
    intra-op count and the environment are restored after (a command run in-process leaves its caller's as
    they were)."""
    global _shared
    choice, outer = decide_threads(flag), _shared
    quiet_openmp()
    with _environ({THREADS_ENV: str(flag)} if flag is not None else {}), torch_threads(choice.threads, pin=False), \
            Presence(_cpu_ids()) as presence:
        if choice.source == "share":
            choice = _share(presence, choice)
        log.info("torch threads: %s", choice)
        set_threads(choice.threads)
        _shared = (presence, choice) if choice.source == "share" else None
        try:
            yield choice
        finally:
            _shared = outer


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
