"""The tables of a reproduce.sh run, gathered into OUT/tables.md (and printed).

    python benchmarks/reproduce_tables.py results/reproduce
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

from eznas.io import atomic_open

TASKS = ("NASBench201-cifar10", "NASBench201-cifar100", "DARTS-cifar10")


def tables(out: Path) -> str:
    # baselines.md: each part of baselines.json (reproduce.sh's: part "all") under "## name", one level down here
    baselines = re.sub(r"^## ", "### ", (out / "baselines.md").read_text().strip(), flags=re.M)
    parts = [f"# Reproduction in {out}", "", "## Baselines", "", baselines, ""]
    hof = json.loads((out / "evolve" / "hall_of_fame.json").read_text())
    config = json.loads((out / "evolve" / "config.json").read_text())
    parts += ["## Evolution", "",
              f"Population {config['population']}, {config['generations']} generations, seed {config['seed']}, "
              f"tasks {', '.join(config['fitness']['tasks'])}, {config['fitness']['selection']} selection and "
              f"{config['fitness']['validation']} validation networks per task, fitness = "
              f"{config['fitness']['combine']} of {config['fitness']['metric']}.", "",
              "| rank | validation fitness | selection fitness | program (exported, higher is better) |",
              "|---|---|---|---|"]
    parts += [f"| {i} | {h['validation_fitness']:.4f} | {h['fitness']:.4f} | `{h['exported']}` |"
              for i, h in enumerate(hof[:3], 1)]
    test = pd.read_csv(out / "evolve" / "test_scores.csv")
    parts += ["", "Test archs (never read during the run), batch and statistics as in fitness:", "",
              "| program | task | n | Spearman ρ | Kendall τ |", "|---|---|---|---|---|"]
    parts += [f"| `{r.program}` | {r.task} | {r.n} | {r.spearman:.3f} | {r.kendall:.3f} |" for r in test.itertuples()]
    parts += ["", "## Hall of fame verified with verify_scores.py (seed 0: the baselines' archs)", "",
              "| program | " + " | ".join(f"{t} ρ / τ" for t in TASKS) + " |", "|---" * (len(TASKS) + 1) + "|"]
    summaries = {t: json.loads((out / f"verify-{t}" / "summary.json").read_text()) for t in TASKS}
    for program in summaries[TASKS[0]]["proxies"]:
        cells = []
        for t in TASKS:
            m = summaries[t]["proxies"].get(program)
            cells.append(f"{m['spearman']:.3f} / {m['kendall']:.3f} (n={m['n']})" if m else "—")
        parts.append(f"| `{program}` | " + " | ".join(cells) + " |")
    return "\n".join(parts) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="the reproduce.sh output folder")
    args = p.parse_args()
    md = tables(args.out)
    with atomic_open(args.out / "tables.md") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
