"""Two eznas commands on one machine: does each finish within 2.5x of its time alone?

    python benchmarks/bench_contention.py                           # new threads against the old, on a quiet machine
    python benchmarks/bench_contention.py --threads-mode new --repeats 3
    python benchmarks/bench_contention.py --n_samples 2 --evolve-args "--tasks NASBench201:cifar10 --population 4 \\
        --generations 1 --test_networks 2 --proxy_terminals none --blend 0" --out /tmp/contention   # a tiny check

Per threads mode, each command a process of its own, into temporary run folders (an evolution from an empty
value cache each time):

1. ``verify_scores.py --n_samples 24 --proxy swap,meco --batch_size 16 --seed 0`` alone, then two of it
   started together;
2. ``evolve.py --quick`` alone, then beside that verify, started together.

Each process's wall seconds (from its start to its exit) and the ratio beside another / alone; the target
is each ratio <= 2.5 on 2 cores. Threads modes: ``new`` (eznas's default: each command's share of its CPUs
among the eznas commands running on them, idle OpenMP threads spinning 3,000 iterations, then asleep),
``fixed`` (the same waiting, every command with all its CPUs' threads, ``EZNAS_THREADS=<cpus>``: ``new`` without
the commands counting each other), ``passive`` (the default before: every command with all its CPUs' threads,
``EZNAS_THREADS=<cpus>``, idle threads asleep at once, ``OMP_WAIT_POLICY=PASSIVE``), ``old`` (the behaviour before that: all CPUs'
threads and libgomp's default spinning, ``GOMP_SPINCOUNT=300000``), ``one`` (``EZNAS_THREADS=1``). The thread count each process reports is kept. Writes
benchmarks/results/contention.json and .md (``--out``): a mode measured now replaces its row.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eznas.report import merge_rows, write_results  # noqa: E402
from eznas.threads import (OMP_THREADS_ENV, SLURM_CPUS_ENV, SPIN_COUNT, SPIN_ENV, THREADS_ENV,  # noqa: E402
                           WAIT_POLICY_ENV, process_cpus)

REPO = Path(__file__).resolve().parents[1]
TARGET = 2.5
CPUS = process_cpus()
MODES = {  # the environment of every command in the mode
    "new": {},
    "fixed": {THREADS_ENV: str(CPUS), WAIT_POLICY_ENV: "PASSIVE", SPIN_ENV: SPIN_COUNT},
    "passive": {THREADS_ENV: str(CPUS), WAIT_POLICY_ENV: "PASSIVE"},
    "old": {THREADS_ENV: str(CPUS), SPIN_ENV: "300000"},
    "one": {THREADS_ENV: "1"},
}
UNSET = (THREADS_ENV, OMP_THREADS_ENV, WAIT_POLICY_ENV, SPIN_ENV, "MKL_NUM_THREADS")
THREADS_LINE = re.compile(r"torch threads: (\d+)")


def environment(mode: str) -> dict[str, str]:
    """This environment without thread settings, with the mode's."""
    return {**{k: v for k, v in os.environ.items() if k not in UNSET}, **MODES[mode]}


def commands(args: argparse.Namespace, tmp: Path, tag: str) -> dict[str, list[str]]:
    """The verify and evolve command lines, into run folders of their own under ``tmp`` (``tag``)."""
    data = ["--data-root", args.data_root] if args.data_root else []
    verify = [sys.executable, str(REPO / "verify_scores.py"), "--quiet", "--n_samples", str(args.n_samples),
              "--proxy", args.proxy, "--batch_size", str(args.batch_size), "--seed", str(args.seed),
              "--out", str(tmp / f"verify-{tag}"), "--results-csv", str(tmp / f"all_tests-{tag}.csv"), *data]
    evolve = [sys.executable, str(REPO / "evolve.py"), "--quick", "--quiet", "--out", str(tmp / f"evolve-{tag}"),
              "--cache_dir", str(tmp / f"cache-{tag}"), *shlex.split(args.evolve_args), *data]
    return {"verify": verify, "evolve": evolve}


def run_together(cmds: list[list[str]], env: dict[str, str], logs: Path) -> list[dict]:
    """Start ``cmds`` together; each one's wall seconds and the torch threads it reported."""
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i, cmd in enumerate(cmds):
        err = open(logs / f"{i}.err", "w")
        procs.append((subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err),
                      time.perf_counter(), err, logs / f"{i}.err"))
    ended = {}
    while len(ended) < len(procs):
        for i, (proc, _, _, _) in enumerate(procs):
            if i not in ended and proc.poll() is not None:
                ended[i] = time.perf_counter()
        time.sleep(0.05)
    rows = []
    for i, (proc, start, err, path) in enumerate(procs):
        err.close()
        text = path.read_text()
        if proc.returncode:
            raise SystemExit(f"error: {shlex.join(cmds[i][1:])} failed with exit code {proc.returncode}:\n"
                             f"{text[-2000:]}")
        threads = THREADS_LINE.search(text)
        rows.append({"wall_seconds": ended[i] - start, "threads": int(threads.group(1)) if threads else None})
    return rows


def measure(mode: str, args: argparse.Namespace) -> dict:
    """One mode's figures: each scenario's wall seconds (median over the repeats) and the ratios."""
    env = environment(mode)
    runs: dict[str, list[list[dict]]] = {}
    scenarios = {"verify_alone": ["verify"], "two_verifies": ["verify", "verify"]}
    if not args.no_evolve:
        scenarios |= {"evolve_alone": ["evolve"], "evolve_and_verify": ["evolve", "verify"]}
    for repeat in range(args.repeats):
        for name, which in scenarios.items():
            with tempfile.TemporaryDirectory(prefix="contention-") as tmp:
                cmds = [commands(args, Path(tmp), f"{i}")[what] for i, what in enumerate(which)]
                runs.setdefault(name, []).append(run_together(cmds, env, Path(tmp) / "logs"))
            print(f"{mode} {name} (repeat {repeat + 1}): "
                  + ", ".join(f"{w} {r['wall_seconds']:.1f} s" for w, r in zip(which, runs[name][-1])), flush=True)

    def wall(name: str, i: int = 0) -> float:
        return statistics.median(r[i]["wall_seconds"] for r in runs[name])

    row = {"mode": mode, "env": MODES[mode], "cpus": CPUS, "repeats": args.repeats,
           "threads": sorted({r["threads"] for rs in runs.values() for rr in rs for r in rr if r["threads"]}),
           "verify_alone": wall("verify_alone"), "two_verifies": [wall("two_verifies", 0), wall("two_verifies", 1)]}
    row["two_verifies_ratio"] = max(row["two_verifies"]) / row["verify_alone"]
    ratios = [row["two_verifies_ratio"]]
    if not args.no_evolve:
        row |= {"evolve_alone": wall("evolve_alone"),
                "evolve_and_verify": {"evolve": wall("evolve_and_verify", 0), "verify": wall("evolve_and_verify", 1)}}
        row["evolve_ratio"] = row["evolve_and_verify"]["evolve"] / row["evolve_alone"]
        row["verify_beside_evolve_ratio"] = row["evolve_and_verify"]["verify"] / row["verify_alone"]
        ratios += [row["evolve_ratio"], row["verify_beside_evolve_ratio"]]
    row["worst_ratio"] = max(ratios)
    row["target_met"] = row["worst_ratio"] <= TARGET
    return row


def table(rows: list[dict], settings: dict) -> str:
    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.1f}"

    lines = [f"`{settings['verify']}` and `{settings['evolve']}` on {CPUS} CPUs; wall seconds of each process "
             f"(median of the repeats), ratio = beside another / alone (target <= {TARGET}):", "",
             "| mode | threads | verify alone | two verifies (each) | ratio | evolve alone | evolve + verify "
             "(evolve, verify) | ratios | target met |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pair = r.get("evolve_and_verify")
        lines.append(
            f"| {r['mode']} | {', '.join(map(str, r['threads']))} | {f(r['verify_alone'])} | "
            f"{' / '.join(f(x) for x in r['two_verifies'])} | {r['two_verifies_ratio']:.2f} | "
            f"{f(r.get('evolve_alone'))} | {f(pair['evolve']) + ' / ' + f(pair['verify']) if pair else '–'} | "
            f"{'%.2f / %.2f' % (r['evolve_ratio'], r['verify_beside_evolve_ratio']) if pair else '–'} | "
            f"{'yes' if r['target_met'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads-mode", "--threads_mode", default="new,old",
                   help=f"comma-separated, of: {', '.join(MODES)} (default new,old)")
    p.add_argument("--n_samples", "--n-samples", type=int, default=24)
    p.add_argument("--proxy", default="swap,meco")
    p.add_argument("--batch_size", "--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--evolve-args", "--evolve_args", default="",
                   help="more evolve.py flags after --quick (e.g. a smaller run for a check)")
    p.add_argument("--no-evolve", "--no_evolve", action="store_true", help="only the verify scenarios")
    p.add_argument("--repeats", type=int, default=1, help="runs of each scenario; the median is kept (default 1)")
    p.add_argument("--data-root", "--data_root", default=None)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "contention"))
    args = p.parse_args()
    modes = [m.strip() for m in args.threads_mode.split(",") if m.strip()]
    if unknown := [m for m in modes if m not in MODES]:
        raise SystemExit(f"error: unknown --threads-mode {unknown[0]!r}; valid: {', '.join(MODES)}")
    if args.repeats < 1 or args.n_samples < 1:
        raise SystemExit("error: --repeats and --n_samples must be >= 1")
    if SLURM_CPUS_ENV in os.environ:
        print(f"note: ${SLURM_CPUS_ENV}={os.environ[SLURM_CPUS_ENV]} caps the CPUs: {CPUS}")
    settings = {"verify": f"verify_scores.py --n_samples {args.n_samples} --proxy {args.proxy} --batch_size "
                          f"{args.batch_size} --seed {args.seed}",
                "evolve": " ".join(["evolve.py --quick", args.evolve_args]).strip()}
    out = Path(args.out)
    before = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").is_file() else {}
    rows = [measure(m, args) for m in modes]
    if before.get("settings") == settings:  # rows of other modes measured with these settings are kept
        rows = merge_rows(before["rows"], rows, key=lambda r: (r["mode"],))
    print(write_results(out, {"settings": settings, "target_ratio": TARGET, "rows": rows}, table(rows, settings)))


if __name__ == "__main__":
    main()
