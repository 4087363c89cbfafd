"""What several benchmark scripts share: running an evolution in its own process, and result files that
several parts (or processes) fill in turn."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

from eznas.io import write_json

REPO = Path(__file__).resolve().parents[1]


def run_evolve(seed: int, run: Path, cache: Path, extra: list[str]) -> dict:
    """One evolve.py run (resumed if its folder holds one) with ``extra`` flags: wall seconds and peak RSS of
    its process tree."""
    args = [sys.executable, str(REPO / "evolve.py"), "--quiet", "--seed", str(seed), "--cache_dir", str(cache), *extra]
    resumed = (run / "config.json").is_file()  # then the times cover only what was left of the run
    args += ["--resume", str(run)] if resumed else ["--out", str(run)]
    start, peak = time.perf_counter(), 0
    proc = subprocess.Popen(args, cwd=REPO)
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]))
        except psutil.Error:
            pass
        time.sleep(0.5)
    if proc.returncode:
        raise SystemExit(f"error: evolve.py --seed {seed} failed with exit code {proc.returncode}")
    return {"wall_seconds": time.perf_counter() - start, "peak_rss_gb": peak / 1024 ** 3, "resumed": resumed}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def record(out: Path, section: str, key: str, value: dict) -> dict:
    """Set ``section[key]`` in the JSON at ``out`` as it is now (another part may have written it since this
    one started) and return the whole file's content."""
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.setdefault(section, {})[key] = value
    write_json(out, results)
    return results
