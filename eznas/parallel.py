"""One mapper for every parallel loop of eznas: statistics collection (a task per network) and fitness
evaluation (also a task per network, scoring all of a generation's programs on it).

``--backend serial`` runs tasks in this process, ``loky`` in local worker processes (joblib), ``dask`` on
a Dask cluster: the scheduler at ``--scheduler-address``, else a ``LocalCluster`` on 127.0.0.1, else (with
``--cluster slurm``) a dask-jobqueue ``SLURMCluster`` scaled adaptively up to ``--workers`` jobs.

Tasks are small (program strings, task names, arch indices) and pure: a worker rebuilds what it needs from
the shared statistics cache, so a task lost with its worker is simply run again elsewhere and gives the
same result: Dask does this by itself, up to ``retries`` times; with loky the tasks from the first lost
result on are run again on a fresh pool, up to ``retries`` times. (Loky retires a worker whose memory grew
by 300 MB, which torch's allocator does; such a worker can abort while it exits, "double free or
corruption", and that took down whole evolution runs before.) Every task computes with one torch thread
(``torch_threads``), which makes the numbers independent of the backend and of the worker count: float
reductions split over several threads add in another order. Each worker process otherwise computes with its
share of its machine's CPUs (``eznas.threads``: the command's explicit count, else ``cpus // workers`` for
the workers started here, a SLURM job's CPUs for its worker), set before its first task; workers inherit
``OMP_WAIT_POLICY=PASSIVE``, so idle OpenMP threads sleep instead of spinning against other processes.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from eznas.errors import EznasError
from eznas.threads import cpu_share, quiet_openmp, requested_threads, worker_threads
from eznas.threads import torch_threads  # noqa: F401 (re-exported: eznas.gp.values imports it from here)

log = logging.getLogger(__name__)

BACKENDS = ("serial", "loky", "dask")
CLUSTERS = ("local", "slurm")


@dataclass(frozen=True)
class ParallelConfig:
    """Where tasks run. None of it changes a result, so a resumed run may change any of it."""

    backend: str = "serial"  # serial | loky | dask
    workers: int = 1  # loky processes, LocalCluster workers, or the most SLURM jobs
    scheduler_address: str | None = None  # dask: an existing scheduler, e.g. tcp://10.0.0.1:8786
    cluster: str = "local"  # dask without an address: local (LocalCluster) or slurm (dask-jobqueue)
    retries: int = 3  # reruns of a task whose worker was lost (dask: per task; loky: of the pool)
    # SLURM workers (dask-jobqueue SLURMCluster): one worker process per job
    queue: str | None = None
    account: str | None = None
    walltime: str = "01:00:00"
    cores: int = 1
    memory: str = "8GB"
    gpus: int = 0
    lifetime: str | None = None  # e.g. "55m": workers retire before the walltime kills them

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise EznasError(f"unknown backend {self.backend!r}; valid: {', '.join(BACKENDS)}")
        if self.cluster not in CLUSTERS:
            raise EznasError(f"unknown cluster {self.cluster!r}; valid: {', '.join(CLUSTERS)}")
        if self.workers < 1:
            raise EznasError(f"workers must be >= 1, got {self.workers}")
        if self.retries < 0:
            raise EznasError(f"retries must be >= 0, got {self.retries}")


def worker_env(threads: int) -> dict[str, str]:
    """The environment of a LocalCluster's worker processes: their thread count for OpenMP, MKL and
    OpenBLAS, and glibc's malloc returning freed memory."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
            "MALLOC_TRIM_THRESHOLD_": "65536"}


@dataclass(frozen=True)
class WorkerPlan:
    """What a worker needs to choose its threads: the command's explicit count (None: automatic), how many
    workers share its machine, and the driver's pid (a task run in the driver, as joblib does with one
    job, keeps the driver's threads)."""

    explicit: int | None
    per_machine: int
    driver: int

    @classmethod
    def of(cls, config: ParallelConfig) -> WorkerPlan:
        """The plan for ``config``'s workers, from this (the driver's) environment: workers of an existing
        scheduler or of SLURM jobs have a machine each, as far as eznas knows."""
        remote = config.backend == "dask" and (config.scheduler_address is not None or config.cluster == "slurm")
        explicit = requested_threads()
        return cls(explicit.threads if explicit else None, 1 if remote else config.workers, os.getpid())

    def local_threads(self) -> int:
        """Each worker's threads where the workers run on this machine."""
        return self.explicit if self.explicit is not None else cpu_share(self.per_machine)


class InWorker:
    """``fn(item)`` with the worker's threads set first (once per worker process); it carries ``fn``'s name,
    which Dask's task keys show (``value_task-<hash>``)."""

    def __init__(self, fn: Callable[[Any], Any], plan: WorkerPlan) -> None:
        self.fn, self.plan = fn, plan
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)

    def __call__(self, item: Any) -> Any:
        if os.getpid() != self.plan.driver:
            worker_threads(self.plan.explicit, self.plan.per_machine)
        return self.fn(item)


class Mapper:
    """``map(fn, items)`` = ``[fn(x) for x in items]``, in order, on the configured backend.
    ``fn`` must be a module-level function; open with ``with open_mapper(cfg) as mapper``."""

    def __init__(self, config: ParallelConfig = ParallelConfig()):
        self.config = config
        self._client = None
        self._cluster = None

    @property
    def parallel(self) -> bool:
        return self.config.backend != "serial"

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], tick: Callable[[], None] | None = None) -> list[Any]:
        """``fn`` over ``items``, results in order; ``tick()`` after each finished item (progress)."""
        items = list(items)
        tick = tick or (lambda: None)
        if not items:
            return []
        if self.config.backend == "serial":
            return [_ticked(fn(x), tick) for x in items]
        plan = WorkerPlan.of(self.config)
        if self.config.backend == "loky":
            return self._loky_map(fn, items, tick, plan)
        from dask.distributed import as_completed

        client = self._dask_client()
        futures = client.map(InWorker(fn, plan), items, pure=False, retries=self.config.retries)
        for _ in as_completed(futures):
            tick()
        return client.gather(futures)

    def _loky_map(self, fn: Callable[[Any], Any], items: list[Any], tick: Callable[[], None],
                  plan: WorkerPlan) -> list[Any]:
        from joblib import Parallel, delayed
        from joblib.externals.loky.process_executor import BrokenProcessPool
        from joblib.parallel import LokyBackend

        quiet_openmp()  # before the workers start: they inherit it
        results: list[Any] = []
        for attempt in range(self.config.retries + 1):
            rest = items[len(results):]
            # the workers' OMP/MKL/OpenBLAS variables: their share (joblib's own default ignores SLURM)
            run = Parallel(n_jobs=min(self.config.workers, len(rest)), return_as="generator",
                           backend=LokyBackend(inner_max_num_threads=plan.local_threads()))
            try:
                for r in run(delayed(InWorker(fn, plan))(x) for x in rest):
                    results.append(_ticked(r, tick))
                return results
            except BrokenProcessPool as exc:  # a worker died; the pool is rebuilt by the next Parallel
                if attempt == self.config.retries:
                    raise EznasError(f"a loky worker was lost {attempt + 1} time(s) in one map "
                                     f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
                log.warning("a loky worker was lost (%s); running the %d unfinished tasks again (retry %d of %d)",
                            type(exc).__name__, len(items) - len(results), attempt + 1, self.config.retries)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------------------ dask
    def _dask_client(self):
        if self._client is None:
            try:
                from dask.distributed import Client
            except ImportError:
                raise EznasError("--backend dask needs dask: pip install 'eznas[dask]'") from None
            c = self.config
            if c.scheduler_address:
                log.info("dask: connecting to %s", c.scheduler_address)
                self._client = Client(c.scheduler_address)
            else:
                self._cluster = make_cluster(c)
                self._client = Client(self._cluster)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None


def _ticked(result: Any, tick: Callable[[], None]) -> Any:
    tick()
    return result


def make_cluster(c: ParallelConfig):
    """A LocalCluster on 127.0.0.1 (one single-threaded worker process per ``workers``), or an adaptive
    dask-jobqueue SLURMCluster of up to ``workers`` one-worker jobs."""
    quiet_openmp()  # before the workers start (LocalCluster processes, sbatch jobs): they inherit it
    if c.cluster == "local":
        import dask
        from dask.distributed import LocalCluster

        log.info("dask: starting a LocalCluster of %d workers on 127.0.0.1", c.workers)
        # Dask's nannies live in this process and, by default, put OMP_NUM_THREADS=1 and friends into its
        # environment each time they (re)start a worker, which changes this process's later float results;
        # give those variables (each worker's share of the threads) to the workers only (a nanny still sets
        # PYTHONHASHSEED, which is harmless).
        env = worker_env(WorkerPlan.of(c).local_threads())
        with dask.config.set({"distributed.nanny.pre-spawn-environ": {}, "distributed.nanny.environ": env}):
            return LocalCluster(n_workers=c.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                dashboard_address=None)
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise EznasError("--cluster slurm needs dask-jobqueue: pip install 'eznas[dask]'") from None
    worker_args = ["--lifetime", c.lifetime, "--lifetime-stagger", "2m"] if c.lifetime else []
    cluster = SLURMCluster(
        queue=c.queue, account=c.account, walltime=c.walltime, cores=c.cores, processes=1, memory=c.memory,
        job_extra_directives=[f"--gres=gpu:{c.gpus}"] if c.gpus else [], worker_extra_args=worker_args,
        scheduler_options={"dashboard_address": None},
    )
    cluster.adapt(minimum_jobs=0, maximum_jobs=c.workers)
    log.info("dask: SLURMCluster, adaptive up to %d jobs; job script:\n%s", c.workers, cluster.job_script())
    return cluster


@contextmanager
def open_mapper(config: ParallelConfig) -> Iterator[Mapper]:
    mapper = Mapper(config)
    try:
        yield mapper
    finally:
        mapper.close()
