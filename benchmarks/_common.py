"""What several benchmark scripts share: where they read and write (--data-root, --runs, --out), verify runs
in a runs folder, running an evolution in its own process, and result files that several parts (or processes)
fill in turn: one current file per script, each setting it measures a named part of it (``record_part``)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import psutil

from eznas.data import resolve_data_root
from eznas.io import locked, write_bytes, write_json
from eznas.report import write_results
from eznas.verify import VerifyConfig, run_verify
from eznas.verify.summary import result_line

REPO = Path(__file__).resolve().parents[1]


def location_args(p: argparse.ArgumentParser, out: str, runs: str | None = None) -> None:
    """The flags of where a benchmark reads and writes: --data-root, --runs (its run folders, where it has
    them) and --out (its figures)."""
    p.add_argument("--data-root", default=None)
    if runs is not None:
        p.add_argument("--runs", default=runs)
    p.add_argument("--out", default=out)


def locations(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """The data root, runs folder and figures' path that ``location_args``'s flags give."""
    return resolve_data_root(args.data_root), Path(args.runs), Path(args.out)


def verified(runs: Path, folder: Path, **settings) -> tuple[dict, pd.DataFrame]:
    """A verify run in ``folder`` with these VerifyConfig settings (a finished run is reused, an unfinished one
    resumed), its rows added to ``runs``/all_tests.csv: its summary and per-arch scores."""
    summary = run_verify(VerifyConfig(**settings, out=str(folder), results_csv=str(runs / "all_tests.csv")),
                         resume=True)
    return summary, pd.read_csv(folder / "scores.csv")


def print_summary(tag: str, summary: dict) -> None:
    """A verify run's figures under its tag: archs, wall seconds, a line per proxy."""
    print(f"--- {tag}: {summary['n_archs']} archs, {summary['wall_seconds']:.0f} s")
    for name, m in summary["proxies"].items():
        print(result_line(name, m))


def figures(summary: dict) -> dict:
    """What a results file keeps of a verify run: archs, wall seconds and each proxy's figures."""
    return {"n_archs": summary["n_archs"], "wall_seconds": summary["wall_seconds"], "proxies": summary["proxies"]}


def publish(out: Path, results: dict, markdown: str) -> None:
    """``out`` as .json and its table as .md, the table printed and both files named."""
    print(write_results(out, results, markdown))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


def saved(path: Path) -> dict:
    """A results file's content as it is now ({} before the first write)."""
    return json.loads(path.read_text()) if path.is_file() else {}


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
    one started: the read and the write hold the file's lock) and return the whole file's content."""
    with locked(out):
        results = saved(out)
        results.setdefault(section, {})[key] = value
        write_json(out, results)
    return results


def record_part(out: Path, part: str, value: dict, render: Callable[[dict], str]) -> dict:
    """Set ``parts[part]`` in the JSON at ``out`` as it is now (the other parts kept as they are) and write the
    .md beside it from the whole file: each part's table (``render`` of its content) under its name. The
    table is printed; returns the whole file's content."""
    results = record(out.with_suffix(".json"), "parts", part, value)
    markdown = "\n".join(f"## {name}\n\n{render(content)}" for name, content in results["parts"].items())
    write_bytes(out.with_suffix(".md"), markdown.encode())  # UTF-8 whatever the locale (ρ, —)
    print(markdown)
    print(f"wrote {out.with_suffix('.json')} (part {part}) and {out.with_suffix('.md')}")
    return results
