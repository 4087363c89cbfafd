"""The search benchmark: its table (programs named "program N" with their text below, GPU-scored seconds
marked) and its --workers processes."""
import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "bench_search", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_search.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def row(fitness: str, **extra) -> dict:
    return {"dataset": "cifar10", "strategy": "rea", "fitness": fitness, "rho": None, "accuracy": (93.5, 0.1),
            "rank": (200.0, 10.0), "top_percent": (1.3, 0.1), "seconds": (40.0, 2.0), "oracle": (94.3, 0.0), **extra}


def test_programs_are_numbered_with_their_text_under_the_table_and_gpu_seconds_name_the_device():
    program = "net_add(net_rank(zc_synflow), flops)"
    results = {"budget": 1000, "seeds": 10, "optimum": {"cifar10": {"table": 94.37, "archs": 15625}},
               "rows": [row("meco"), row(program, device="cuda"), row(program, strategy="random"), row("params")]}
    lines = bench.markdown(results).splitlines()
    table = [line for line in lines if line.startswith("| cifar10")]
    assert [line.split(" | ")[2] for line in table] == ["meco", "program 1", "program 1", "params"]
    assert "40 ± 2 (cuda)" in table[1] and "(cuda)" not in table[0] + table[2] + table[3]  # old rows: no device
    assert lines[-1] == f"Program 1: `{program}`"


def test_the_device_comes_from_the_score_caches_settings_line_or_the_verify_runs_summary(tmp_path):
    cache = tmp_path / "cifar10-reg_swap.jsonl"
    cache.write_text(json.dumps({"settings": {"device": "cuda", "fitness": "reg_swap"}}) + "\n"
                     + json.dumps({"uid": "1", "values": {"reg_swap": 1.0}, "seconds": 0.5}) + "\n")
    assert bench.scored_on({"score_cache": str(cache)}) == "cuda"
    assert bench.scored_on({"score_cache": str(tmp_path / "not-yet.jsonl")}) == "cpu"  # filled here as it runs
    assert bench.scored_on({"scores": str(tmp_path)}) == "cpu"  # a whole-table verify run not finished yet
    (tmp_path / "summary.json").write_text(json.dumps({"config": {"device": "cuda:0"}}))
    assert bench.scored_on({"scores": str(tmp_path)}) == "cuda:0"  # a finished one: the device it ran on


def test_searches_run_in_worker_processes_find_what_one_after_the_other_finds(tmp_path, data_root):
    """--workers 2 (spawned processes sharing the lazy score cache) gives the rows a sequential run gives."""
    rows = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}" / "search.json"
        subprocess.run([sys.executable, str(SPEC.origin), "--lazy", "--datasets", "cifar10", "--proxies", "params",
                        "--table_archs", "300", "--budget", "25", "--seeds", "3", "--workers", str(workers),
                        "--runs", str(tmp_path / f"w{workers}"), "--out", str(out), "--data-root", str(data_root)],
                       check=True, capture_output=True, text=True, cwd=tmp_path)
        rows[workers] = [{k: r[k] for k in ("strategy", "fitness", "accuracy", "rank", "oracle", "rho")}
                         for r in json.loads(out.read_text())["parts"]["lazy"]["rows"]]
    assert rows[1] == rows[2]
    assert {r["strategy"] for r in rows[2]} == {"random", "rea", "none"}
    cache = tmp_path / "w2" / "cache" / "cifar10-params.jsonl"
    cached = {json.loads(line)["uid"] for line in cache.read_text().splitlines()[1:]}
    visited = {h["uid"] for state in (tmp_path / "w2" / "runs").glob("*rea*/state.json")
               for h in json.loads(state.read_text())["history"]}
    assert visited <= cached and len(visited) > 25  # the processes' searches all wrote to the one cache


def test_workers_below_one_is_one_error_line(tmp_path):
    done = subprocess.run([sys.executable, str(SPEC.origin), "--workers", "0", "--out", str(tmp_path / "s.json")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0 and done.stderr.strip() == "error: --workers 0: give 1 or more"


def test_a_killed_benchmark_stops_its_worker_processes(tmp_path, data_root):
    """SIGTERM to bench_search --workers 2 ends its searches too: the score cache stops growing."""
    runs = tmp_path / "runs"
    cache = runs / "cache" / "cifar10-synflow.jsonl"
    proc = subprocess.Popen([sys.executable, str(SPEC.origin), "--lazy", "--datasets", "cifar10", "--proxies", "synflow",
                             "--strategies", "random", "--budget", "500", "--seeds", "2", "--workers", "2",
                             "--runs", str(runs), "--out", str(tmp_path / "s.json"), "--data-root", str(data_root)],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (cache.is_file() and len(cache.read_text().splitlines()) > 5) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cache.is_file(), "the searches never started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    time.sleep(2)
    lines = len(cache.read_text().splitlines())
    time.sleep(4)
    assert len(cache.read_text().splitlines()) == lines  # no worker left scoring
    assert lines < 1 + 2 * 500
