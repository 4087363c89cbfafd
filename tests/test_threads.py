"""Threads that fit a process's share of the machine (eznas.threads): the share from the CPUs a process may
use, the order in which an explicit count wins, bad counts as one ``error:`` line, a command's threads, the
OpenMP wait policy the entry scripts give torch, and the threads a backend's worker processes compute with."""
import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eznas.errors import EznasError
from eznas.parallel import Mapper, ParallelConfig, WorkerPlan, open_mapper
from eznas.threads import (OMP_THREADS_ENV, SLURM_CPUS_ENV, SPIN_ENV, THREADS_ENV, WAIT_POLICY_ENV, Presence,
                           command_threads, cpu_share, decide_threads, process_cpus, quiet_openmp, refit_threads,
                           requested_threads, torch_threads, worker_threads)

# the CLIs are imported where they are used: the loky workers below import this module, and it stays light
REPO = Path(__file__).resolve().parents[1]

CPUS = process_cpus(environ={})  # this machine's, without $SLURM_CPUS_PER_TASK (the tests clear it)
EIGHT = range(8)  # an affinity of 8 CPUs


@pytest.fixture
def clean_env(monkeypatch):
    """No thread settings in this process's environment (restored after)."""
    for var in (THREADS_ENV, OMP_THREADS_ENV, SLURM_CPUS_ENV, WAIT_POLICY_ENV, SPIN_ENV):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_the_share_is_the_cpus_a_process_may_use_over_its_workers():
    assert process_cpus(EIGHT, {}) == 8
    assert process_cpus(EIGHT, {SLURM_CPUS_ENV: "4"}) == 4  # SLURM caps the affinity
    assert process_cpus(EIGHT, {SLURM_CPUS_ENV: "16"}) == 8  # and never raises it
    assert process_cpus(EIGHT, {SLURM_CPUS_ENV: " "}) == 8  # empty: unset
    assert [cpu_share(w, EIGHT, {}) for w in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    assert cpu_share(2, EIGHT, {SLURM_CPUS_ENV: "6"}) == 3
    assert cpu_share(1, range(1), {}) == 1
    with pytest.raises(EznasError, match="workers must be >= 1, got 0"):
        cpu_share(0, EIGHT, {})


def test_without_an_affinity_the_cpu_count_is_used(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert process_cpus(environ={}) == 6 and cpu_share(4, environ={}) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one
    assert process_cpus(environ={}) == 1


def test_precedence_flag_then_eznas_threads_then_omp_then_the_share():
    env = {THREADS_ENV: "5", OMP_THREADS_ENV: "7"}
    got = decide_threads(3, 2, EIGHT, env)
    assert (got.threads, got.source) == (3, "--threads")
    got = decide_threads(None, 2, EIGHT, env)
    assert (got.threads, got.source) == (5, "$EZNAS_THREADS")
    got = decide_threads(None, 2, EIGHT, {OMP_THREADS_ENV: "7"})
    assert (got.threads, got.source) == (7, "$OMP_NUM_THREADS")
    got = decide_threads(None, 2, EIGHT, {OMP_THREADS_ENV: "7"}, omp=False)  # a worker's: set by joblib/Dask
    assert (got.threads, got.source) == (4, "share")
    got = decide_threads(None, 2, EIGHT, {THREADS_ENV: "", OMP_THREADS_ENV: ""})
    assert (got.threads, got.source, got.cpus, got.workers) == (4, "share", 8, 2)
    assert "4 (the automatic share: 8 CPUs this process may use / 2 worker processes)" == str(got)
    assert decide_threads(None, 1, EIGHT, {OMP_THREADS_ENV: "4,2"}).threads == 4  # an OpenMP list: its first
    assert decide_threads(None, 1, EIGHT, {OMP_THREADS_ENV: "16"}).threads == 16  # the user's, as it is
    assert requested_threads(None, EIGHT, {}) is None


@pytest.mark.parametrize("flag, env, message", [
    (0, {}, "--threads must be >= 1 and <= 8 (the CPUs this process may use), got 0"),
    (-2, {}, "--threads must be >= 1 and <= 8 (the CPUs this process may use), got -2"),
    (9, {}, "--threads must be >= 1 and <= 8 (the CPUs this process may use), got 9"),
    (4, {SLURM_CPUS_ENV: "2"}, "--threads must be >= 1 and <= 2"),
    (None, {THREADS_ENV: "two"}, "$EZNAS_THREADS='two' is not a count (expected an integer >= 1)"),
    (None, {THREADS_ENV: "0"}, "$EZNAS_THREADS must be >= 1, got 0"),
    (None, {THREADS_ENV: "9"}, "$EZNAS_THREADS must be >= 1 and <= 8 (the CPUs this process may use), got 9"),
    (None, {SLURM_CPUS_ENV: "4(x2)"}, "$SLURM_CPUS_PER_TASK='4(x2)' is not a count"),
    (None, {SLURM_CPUS_ENV: "0"}, "$SLURM_CPUS_PER_TASK must be >= 1, got 0"),
    (None, {OMP_THREADS_ENV: "many"}, "$OMP_NUM_THREADS='many' is not a count"),
])
def test_bad_counts_name_the_flag_or_variable(flag, env, message):
    with pytest.raises(EznasError) as err:
        decide_threads(flag, 1, EIGHT, env)
    assert message in str(err.value)


COMMANDS = {"verify": ("verify_main", "eznas.verify", "run_verify"),  # (entry, module, what it runs)
            "evolve": ("evolve_main", "eznas.gp.run", "run_evolution"),
            "search": ("search_main", "eznas.search.run", "Search")}
BAD = [  # (command, flags, environment, what the error line names)
    ("verify", ["--threads", "0"], {}, "--threads must be >= 1"),
    ("evolve", ["--threads", "-1"], {}, "got -1"),
    ("search", ["--threads", str(CPUS + 1)], {}, f"<= {CPUS} (the CPUs this process may use), got {CPUS + 1}"),
    ("verify", ["--threads", "x"], {}, "argument --threads: invalid int value: 'x'"),
    ("search", [], {THREADS_ENV: "lots"}, "$EZNAS_THREADS='lots'"),
    ("evolve", [], {THREADS_ENV: str(CPUS + 1)}, f"$EZNAS_THREADS must be >= 1 and <= {CPUS}"),
    ("verify", [], {SLURM_CPUS_ENV: "x"}, "$SLURM_CPUS_PER_TASK='x'"),
]


@pytest.mark.parametrize("command, flags, env, culprit", BAD, ids=[f"{c} {' '.join(f)} {e}" for c, f, e, _ in BAD])
def test_a_bad_count_is_one_error_line_and_exit_code_2(command, flags, env, culprit, clean_env, capsys, tmp_path):
    import eznas.cli

    entry, module, name = COMMANDS[command]
    main = getattr(eznas.cli, entry)
    clean_env.setattr(f"{module}.{name}", lambda *a, **k: pytest.fail("a bad thread count ran the command"))
    for key, value in env.items():
        clean_env.setenv(key, value)
    code = main(["--quiet", "--out", str(tmp_path / "run"), *flags])
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and culprit in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_a_command_computes_with_its_threads_and_restores_its_callers(clean_env, tmp_path):
    from eznas.cli import verify_main

    seen = {}

    def run_verify(cfg, progress, resume):  # noqa: ANN001, ANN202 - what the command ran with
        seen.update(threads=torch.get_num_threads(), env=os.environ.get(THREADS_ENV),
                    wait=os.environ.get(WAIT_POLICY_ENV))
        return {"config": {"run_dir": str(tmp_path)}, "proxies": {}}

    clean_env.setattr("eznas.verify.run_verify", run_verify)
    before = torch.get_num_threads()
    want = 1 if before != 1 or CPUS == 1 else 2  # another count than the caller's, where there is one
    assert verify_main(["--quiet", "--proxy", "params", "--threads", str(want)]) == 0
    assert seen == {"threads": want, "env": str(want), "wait": "PASSIVE"}  # --threads reaches its workers
    assert torch.get_num_threads() == before and THREADS_ENV not in os.environ


def test_the_count_is_not_part_of_a_run_so_a_resumed_run_may_change_it(clean_env, data_root, tmp_path):
    from eznas.cli import verify_main

    run = ["--quiet", "--data-root", str(data_root), "--n_samples", "2", "--proxy", "params", "--bootstrap", "5",
           "--out", str(tmp_path / "run"), "--results-csv", str(tmp_path / "all_tests.csv")]
    assert verify_main([*run, "--threads", "1"]) == 0
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert "threads" not in summary
    assert verify_main([*run, "--resume", "--threads", str(CPUS)]) == 0  # finished: reported as it is
    assert (tmp_path / "run" / "summary.json").read_text() == summary


def test_quiet_openmp_keeps_the_users_policy():
    env = {WAIT_POLICY_ENV: "ACTIVE"}
    assert not quiet_openmp(env) and env[WAIT_POLICY_ENV] == "ACTIVE"
    env = {SPIN_ENV: "0"}
    assert not quiet_openmp(env) and env == {SPIN_ENV: "0"}
    env = {}
    assert quiet_openmp(env) and env == {WAIT_POLICY_ENV: "PASSIVE", SPIN_ENV: "3000"}


def test_presence_counts_the_live_commands_on_the_same_cpus(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            with Presence({0, 1}, tmp_path) as me:
                assert me.sharing() == 1 and me.path.read_text() == "0,1"
                with Presence({1, 2}, tmp_path, pid=other.pid):  # a live command on an overlapping CPU
                    assert me.sharing() == 2
                with Presence({2, 3}, tmp_path, pid=other.pid):  # another SLURM job's CPUs
                    assert me.sharing() == 1
                with Presence({1, 2}, tmp_path, pid=other.pid):  # a stopped one (Ctrl-Z) uses no CPU until resumed
                    other.send_signal(signal.SIGSTOP)
                    os.waitpid(other.pid, os.WUNTRACED)  # until it has stopped
                    try:
                        assert me.sharing() == (1 if Path(f"/proc/{other.pid}").is_dir() else 2)
                    finally:
                        other.send_signal(signal.SIGCONT)
                        os.waitpid(other.pid, os.WCONTINUED)
                    assert me.sharing() == 2
                (tmp_path / ended.stdout.strip()).write_text("0,1")  # a command that died without a goodbye
                assert me.sharing() == 1 and not (tmp_path / ended.stdout.strip()).exists()
            assert not me.path.exists()
        finally:
            other.kill()


@pytest.mark.skipif(CPUS < 2, reason="the share of one CPU is one thread, alone or not")
def test_a_command_shares_its_cpus_with_the_commands_beside_it(clean_env, monkeypatch, tmp_path):
    monkeypatch.setattr("eznas.threads.presence_folder", lambda: tmp_path)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            neighbour = Presence(range(CPUS), tmp_path, pid=other.pid)
            with neighbour, command_threads() as choice:  # started beside another command
                assert (choice.threads, choice.commands, torch.get_num_threads()) == (CPUS // 2, 2, CPUS // 2)
                with torch_threads(1):  # evolution's statistics: one thread, whatever the share
                    neighbour.__exit__()
                    assert refit_threads() is None and torch.get_num_threads() == 1
                assert refit_threads() == CPUS == torch.get_num_threads()  # the other command has ended
                with neighbour:
                    assert refit_threads() == CPUS // 2 == torch.get_num_threads()
            assert refit_threads() is None  # outside a command
            with command_threads(1):  # an explicit count is the command's whatever runs beside it
                with neighbour:
                    assert refit_threads() is None and torch.get_num_threads() == 1
        finally:
            other.kill()


def _environ(**values: str) -> dict[str, str]:
    """This environment without thread settings, with ``values``."""
    unset = (THREADS_ENV, OMP_THREADS_ENV, SLURM_CPUS_ENV, WAIT_POLICY_ENV, "GOMP_SPINCOUNT")
    return {**{k: v for k, v in os.environ.items() if k not in unset}, **values}


def test_the_entry_scripts_make_openmp_passive_before_anything_imports_torch():
    for script in ("verify_scores.py", "evolve.py", "search.py"):
        body = ast.parse((REPO / script).read_text()).body
        calls = [i for i, node in enumerate(body) if "quiet_openmp()" == ast.unparse(node)]
        imports = [i for i, node in enumerate(body) if isinstance(node, ast.ImportFrom)
                   and node.module not in ("eznas.threads", "__future__")]
        assert calls and imports and calls[0] < min(imports), script


def test_openmp_reads_the_policy_when_torch_loads_and_a_command_takes_its_share():
    """libgomp (torch's OpenMP) reads its wait policy once, when torch loads it; OMP_DISPLAY_ENV shows what
    it read: GOMP_SPINCOUNT 3000 (idle threads spin briefly, then sleep) after an entry script's import,
    300000 (about 3 ms of spinning after every parallel region) for torch alone."""
    code = ("import torch; from eznas.threads import command_threads\n"
            "with command_threads(): print(torch.get_num_threads(), torch.get_num_interop_threads())")
    shown = {}
    for first in ("import verify_scores", "import torch"):
        r = subprocess.run([sys.executable, "-c", f"{first}\n{code}"], cwd=REPO, capture_output=True, text=True,
                           env=_environ(OMP_DISPLAY_ENV="VERBOSE"), timeout=60)
        spin = [line.split("=")[1].strip() for line in r.stderr.splitlines() if "GOMP_SPINCOUNT" in line]
        shown[first] = (spin[0] if spin else r.stderr[-2000:], r.stdout.strip())
    assert shown == {"import verify_scores": ("'3000'", f"{CPUS} 1"), "import torch": ("'300000'", f"{CPUS} 1")}


def test_the_eznas_command_makes_openmp_passive_before_torch_loads(tmp_path):
    """``eznas COMMAND`` (``python -m eznas``; the console script runs the same main) too: libgomp read
    PASSIVE when the command's module loaded torch."""
    r = subprocess.run([sys.executable, "-m", "eznas", "verify", "--version"], cwd=REPO, capture_output=True,
                       text=True, env=_environ(OMP_DISPLAY_ENV="VERBOSE"), timeout=60)
    spin = [line.split("=")[1].strip() for line in r.stderr.splitlines() if "GOMP_SPINCOUNT" in line]
    assert (r.returncode, spin[:1]) == (0, ["'3000'"]), r.stderr[-2000:]


def worker_report(_: int) -> tuple[int, int, int, str | None]:
    """What a worker computes with: (pid, intra-op threads, inter-op threads, OMP_WAIT_POLICY)."""
    return os.getpid(), torch.get_num_threads(), torch.get_num_interop_threads(), os.environ.get(WAIT_POLICY_ENV)


def test_loky_workers_get_their_share(clean_env):
    with open_mapper(ParallelConfig("loky", workers=2)) as mapper:
        got = mapper.map(worker_report, range(4))
    assert {(t, i, w) for _, t, i, w in got} == {(max(CPUS // 2, 1), 1, "PASSIVE")}
    assert all(pid != os.getpid() for pid, *_ in got)


def test_a_worker_takes_the_commands_explicit_count_else_its_own_share():
    before = torch.get_num_threads()
    try:
        assert worker_threads(3, 2, EIGHT, {}) == 3  # --threads or a variable where the command runs
        assert worker_threads(None, 2, EIGHT, {OMP_THREADS_ENV: "1"}) == 4  # joblib's and Dask's: ignored
        assert worker_threads(None, 2, EIGHT, {THREADS_ENV: "1"}) == 1  # the worker's own
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_task_run_in_the_driver_keeps_the_drivers_threads(clean_env):
    before = torch.get_num_threads()
    with open_mapper(ParallelConfig("loky", workers=1)) as mapper:  # joblib runs one job in this process
        [(pid, threads, _, _)] = mapper.map(worker_report, [0])
    assert (pid, threads, torch.get_num_threads()) == (os.getpid(), before, before)


def test_remote_workers_have_a_machine_each(clean_env):
    assert WorkerPlan.of(ParallelConfig("loky", workers=3)).per_machine == 3
    assert WorkerPlan.of(ParallelConfig("dask", workers=3)).per_machine == 3  # a LocalCluster here
    assert WorkerPlan.of(ParallelConfig("dask", workers=3, cluster="slurm")).per_machine == 1
    assert WorkerPlan.of(ParallelConfig("dask", workers=3, scheduler_address="tcp://h:8786")).per_machine == 1
    assert WorkerPlan.of(ParallelConfig("loky", workers=3)).explicit is None
    clean_env.setenv(OMP_THREADS_ENV, "1")  # the user's, where the command runs: its workers' too
    assert WorkerPlan.of(ParallelConfig("loky", workers=3)).local_threads() == 1
    assert Mapper(ParallelConfig()).map(worker_report, [0])[0][0] == os.getpid()  # serial: no worker
