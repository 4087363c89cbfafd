"""Kill evolve.py with SIGKILL at random moments, resume it, and count how many runs end exactly like an
uninterrupted one (hall_of_fame.json and logbook.csv byte for byte).

    python benchmarks/bench_faults.py --trials 10

Each trial starts from an empty statistics cache, so kills land in statistics collection, in the
generations and in the held-out test alike. Writes benchmarks/results/faults.json.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eznas.io import write_json

REPO = Path(__file__).resolve().parents[1]
CONFIG = """population = 10
offspring = 10
generations = 3
elites = 2
hall_of_fame = 5
[fitness]
tasks = ["NASBench201:cifar10"]
selection = 16
validation = 8
screen = 8
promote = 3
batch_size = 4
[parallel]
backend = "serial"
"""


def evolve(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "evolve.py"), "--quiet", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def phase(run: Path) -> str:
    """What the run had finished when it was killed, from its folder."""
    if not (run / "config.json").is_file():
        return "starting"
    if not (run / "logbook.csv").is_file():
        return "statistics / generation 0"
    gens = (run / "logbook.csv").read_text().strip().splitlines()[1:]
    return f"after generation {len(gens) - 1}" if not (run / "test_scores.csv").exists() else "finished"


def outputs(run: Path) -> tuple[str, str]:
    return (run / "hall_of_fame.json").read_text(), (run / "logbook.csv").read_text()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "faults.json"))
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eznas-faults-"))
    (work / "config.toml").write_text(CONFIG)
    data = ["--data-root", args.data_root] if args.data_root else []

    def common(i: int) -> list[str]:
        return [*data, "--cache-dir", str(work / f"cache-{i}"), "--test-networks", "8"]

    t0 = time.perf_counter()
    ref = evolve(["--config", str(work / "config.toml"), "--out", str(work / "reference"), *common(-1)])
    _, err = ref.communicate()
    if ref.returncode:
        sys.exit(f"error: the uninterrupted run failed: {err.strip().splitlines()[-1]}")
    wall = time.perf_counter() - t0
    expected = outputs(work / "reference")
    print(f"uninterrupted run: {wall:.1f} s")

    rng = random.Random(args.seed)
    trials = []
    for i in range(args.trials):
        run = work / f"trial-{i}"
        delay = rng.uniform(0.5, wall)
        proc = evolve(["--config", str(work / "config.toml"), "--out", str(run), *common(i)])
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        killed = proc.returncode == -signal.SIGKILL
        at = phase(run)
        if (run / "config.json").is_file():  # resume what is there
            again = evolve(["--resume", str(run), *common(i)])
        else:  # killed before it wrote anything: start it again
            again = evolve(["--config", str(work / "config.toml"), "--out", str(run), *common(i)])
        _, err = again.communicate()
        ok = again.returncode == 0 and outputs(run) == expected
        trials.append({"kill_after_s": round(delay, 2), "killed": killed, "phase": at, "resumed_ok": again.returncode == 0,
                       "matched": ok, **({"error": err.strip().splitlines()[-1]} if again.returncode else {})})
        print(f"trial {i}: kill at {delay:5.1f} s ({at}{'' if killed else ', had already finished'}): "
              f"{'matched' if ok else 'DIFFERENT'}")
    matched = sum(t["matched"] for t in trials)
    print(f"matched {matched} of {len(trials)} (killed {sum(t['killed'] for t in trials)})")
    write_json(Path(args.out), {"uninterrupted_seconds": wall, "config": CONFIG, "trials": trials,
                                "matched": matched, "of": len(trials)})
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
