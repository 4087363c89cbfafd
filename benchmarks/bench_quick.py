"""Time ``evolve.py --quick`` (the complete small first try) from an empty value cache, as a user runs it:
one subprocess per setting (one after the other), its wall seconds, the outputs it wrote and its winner.

    python benchmarks/bench_quick.py                                  # the default, without terminals and blends, other terminals
    python benchmarks/bench_quick.py --settings default --out benchmarks/results/quick
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eznas.report import merge_rows, write_results  # noqa: E402

SETTINGS = {"default": [], "features_only": ["--proxy_terminals", "none", "--blend", "0"],
            "other_terminals": ["--proxy_terminals", "meco,synflow,naswot"]}
OUTPUTS = ("config.json", "logbook.csv", "hall_of_fame.json", "checkpoint.pkl", "evolution.png", "best_proxy.py",
           "test_scores.csv")


def run(name: str, extra: list[str], data_root: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out, cache = Path(tmp) / "run", Path(tmp) / "cache"
        cmd = [sys.executable, "evolve.py", "--quick", "--quiet", "--out", str(out), "--cache_dir", str(cache), *extra]
        if data_root:
            cmd += ["--data_root", data_root]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{name}: evolve.py --quick failed:\n{proc.stderr[-2000:]}")
        winner = json.loads((out / "hall_of_fame.json").read_text())[0]  # ranked on the validation networks
        return {"setting": name, "command": " ".join(["python evolve.py --quick", *extra]), "wall_seconds": wall,
                "outputs": {f: (out / f).is_file() for f in OUTPUTS},
                "winner": winner["exported"], "winner_validation": winner["validation_fitness"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of: {', '.join(SETTINGS)}")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "quick"))
    args = p.parse_args()
    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    if unknown := [n for n in names if n not in SETTINGS]:
        raise SystemExit(f"unknown setting {unknown[0]!r}; valid: {', '.join(SETTINGS)}")
    out = Path(args.out)
    before = json.loads(out.with_suffix(".json").read_text())["runs"] if out.with_suffix(".json").is_file() else []
    # a setting measured now replaces its row; the others are kept
    results = merge_rows(before, [run(n, SETTINGS[n], args.data_root) for n in names], key=lambda r: (r["setting"],))
    lines = ["| setting | command | wall s | every output file | winner | validation |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | `{r['command']}` | {r['wall_seconds']:.0f} | {all(r['outputs'].values())} "
              f"| `{r['winner']}` | {r['winner_validation']:.3f} |" for r in results]
    print(write_results(out, {"runs": results}, "\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
