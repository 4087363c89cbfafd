"""Beyond one process: the mapper's backends give the same results, a Dask worker or the driver killed
mid-run loses nothing, corrupt files are named and never used."""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from eznas.errors import DataError, EznasError
from eznas.gp.values import FitnessData, ValueCache
from eznas.gp.run import run_evolution
from eznas.parallel import Mapper, ParallelConfig, make_cluster, open_mapper
from tests.conftest import REPO, tiny

dask_distributed = pytest.importorskip("dask.distributed")


def square(x: int) -> int:
    return x * x


def square_or_abort(item: tuple[int, str]) -> int:
    """``x * x``; but the first task to see no ``marker`` file creates it and aborts its worker process
    (as a worker that loky retires can abort while it exits)."""
    x, marker = item
    if x == 3 and not os.path.exists(marker):
        Path(marker).touch()
        os.abort()
    return x * x


@pytest.fixture(scope="module")
def dask_cluster():
    cluster = make_cluster(ParallelConfig("dask", workers=2))
    yield cluster
    cluster.close()


def same_run(a: Path, b: Path) -> None:
    assert (a / "hall_of_fame.json").read_text() == (b / "hall_of_fame.json").read_text()
    pd.testing.assert_frame_equal(pd.read_csv(a / "logbook.csv"), pd.read_csv(b / "logbook.csv"))


@pytest.mark.parametrize("backend", ["serial", "loky", "dask"])
def test_every_backend_maps_in_order(backend, dask_cluster):
    ticks = []
    address = dask_cluster.scheduler_address if backend == "dask" else None
    with open_mapper(ParallelConfig(backend, workers=2, scheduler_address=address)) as mapper:
        assert mapper.map(square, range(7), tick=lambda: ticks.append(1)) == [x * x for x in range(7)]
        assert mapper.map(square, []) == []
    assert len(ticks) == 7


def test_a_loky_worker_lost_mid_map_loses_no_result(tmp_path, caplog):
    marker = str(tmp_path / "aborted")
    ticks = []
    with open_mapper(ParallelConfig("loky", workers=2)) as mapper:
        assert mapper.map(square_or_abort, [(x, marker) for x in range(8)],
                          tick=lambda: ticks.append(1)) == [x * x for x in range(8)]
    assert os.path.exists(marker) and len(ticks) == 8
    assert "a loky worker was lost" in caplog.text and "(retry 1 of 3)" in caplog.text
    with open_mapper(ParallelConfig("loky", workers=2, retries=0)) as mapper, \
            pytest.raises(EznasError, match=r"a loky worker was lost 1 time\(s\) in one map"):
        Path(marker).unlink()
        mapper.map(square_or_abort, [(x, marker) for x in range(8)])


def test_bad_parallel_settings_list_the_valid_ones():
    with pytest.raises(EznasError, match="unknown backend 'spark'; valid: serial, loky, dask"):
        ParallelConfig("spark")
    with pytest.raises(EznasError, match="unknown cluster 'pbs'; valid: local, slurm"):
        ParallelConfig("dask", cluster="pbs")
    with pytest.raises(EznasError, match="workers must be >= 1, got 0"):
        ParallelConfig("loky", workers=0)
    with pytest.raises(EznasError, match="retries must be >= 0, got -1"):
        ParallelConfig("loky", retries=-1)


def test_a_local_cluster_started_by_the_mapper_works():
    with open_mapper(ParallelConfig("dask", workers=1)) as mapper:
        assert mapper.map(square, [3]) == [9]
        assert mapper._client.scheduler_info()["address"].startswith("tcp://127.0.0.1:")
    assert mapper._client is None


def test_slurm_workers_are_described_by_the_config():
    pytest.importorskip("dask_jobqueue")

    cfg = ParallelConfig("dask", cluster="slurm", workers=64, queue="gpu", account="nas", walltime="02:00:00",
                         cores=4, memory="16GB", gpus=1, lifetime="115m")
    cluster = make_cluster(cfg)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p gpu", "#SBATCH -A nas", "#SBATCH -t 02:00:00", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --gres=gpu:1", "--lifetime 115m"):
        assert line in script, line


def test_dask_gives_the_serial_hall_of_fame(two_generations, dask_cluster, data_root, tmp_path):
    out, _ = two_generations  # a fresh value cache: the workers compute every value themselves
    cfg = tiny(data_root, parallel=ParallelConfig("dask", workers=2, scheduler_address=dask_cluster.scheduler_address))
    run_evolution(cfg, tmp_path / "dask", cache_dir=tmp_path / "cache", test_networks=8)
    same_run(out, tmp_path / "dask")


def test_a_worker_killed_mid_generation_loses_nothing(two_generations, dask_cluster, data_root, tmp_path):
    out, _ = two_generations
    client = dask_distributed.Client(dask_cluster)
    pids = client.run(os.getpid)
    killed: list[str] = []
    done = threading.Event()

    def kill_a_busy_worker() -> None:
        while not done.is_set():
            for worker, keys in client.processing().items():
                if any("value_task" in str(k) for k in keys) and worker in pids:
                    os.kill(pids[worker], signal.SIGKILL)
                    killed.append(worker)
                    return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    try:
        cfg = tiny(data_root, parallel=ParallelConfig("dask", workers=2,
                                                       scheduler_address=dask_cluster.scheduler_address))
        run_evolution(cfg, tmp_path / "killed", cache_dir=tmp_path / "cache", test_networks=8)
    finally:
        done.set()
        killer.join()
        client.close()
    assert killed, "no worker was busy with a fitness task to kill"
    same_run(out, tmp_path / "killed")


# ------------------------------------------------------------------------------------ the driver killed
TINY_TOML = """population = 8
novel_elites = 0
features = ["params", "flops", "n_units", "depth"]
blend_parts = 0
winner = "best"
offspring = 8
generations = 2
elites = 2
hall_of_fame = 5
[fitness]
tasks = ["NASBench201:cifar10"]
selection = 12
validation = 6
screen = 6
promote = 3
batch_size = 4
[parallel]
backend = "serial"
"""


def evolve(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "evolve.py"), "--quiet", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _generations(run: Path) -> list[int]:
    try:
        return list(pd.read_csv(run / "logbook.csv")["gen"])
    except Exception:  # noqa: BLE001 - not written yet, or being replaced
        return []


KILL_POINTS = {  # when to SIGKILL the driver, judged from its run folder
    "before the first checkpoint": lambda run: (run / "config.json").is_file(),
    "during generation 2": lambda run: _generations(run) == [0, 1],
    "during the held-out test": lambda run: _generations(run) == [0, 1, 2] and not (run / "test_scores.csv").exists(),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_the_driver_killed_and_resumed_gives_the_same_run(point, two_generations, data_root, tmp_path):
    out, _ = two_generations  # a fresh value cache, so the run is not over before the kill point
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    run = tmp_path / "run"
    common = ["--data-root", str(data_root), "--cache-dir", str(tmp_path / "cache"), "--test-networks", "4"]
    proc = evolve("--config", str(tmp_path / "tiny.toml"), "--out", str(run), *common)
    try:
        while proc.poll() is None and not KILL_POINTS[point](run):
            time.sleep(0.002)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill point: {proc.stderr.read()}"
    resumed = evolve("--resume", str(run), *common)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    same_run(out, run)
    assert (run / "test_scores.csv").is_file() and (run / "best_proxy.py").is_file()


def test_a_corrupt_cache_file_is_named_and_never_used(two_generations, data_root, cache_dir, tmp_path):
    cfg = tiny(data_root)
    data = FitnessData(cfg.fitness, ValueCache(cache_dir), data_root)
    task = data.tasks[0]
    key = data.key(task, data.networks(str(task))[0])  # a selection network: always read
    good = ValueCache(cache_dir).path(key)
    assert "sum_units(corr_min_eig(pre_N))" in ValueCache(cache_dir).get(key)
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    ValueCache(copy).path(key).write_bytes(good.read_bytes()[:100])
    with pytest.raises(DataError, match=f"value cache file {ValueCache(copy).path(key)} is unreadable .*delete it"):
        ValueCache(copy).get(key)
    with pytest.raises(DataError, match=f"value cache file .*{key}.json is unreadable"):
        run_evolution(cfg, tmp_path / "run", cache_dir=copy, test_networks=2)
    assert not (tmp_path / "run" / "checkpoint.pkl").exists()


def test_a_mapper_is_serial_by_default():
    assert Mapper().map(square, [1, 2]) == [1, 4] and not Mapper().parallel
