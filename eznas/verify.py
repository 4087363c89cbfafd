"""verify_scores: score sampled benchmark architectures with proxies and rank-correlate with accuracy."""
from __future__ import annotations

import dataclasses
import logging
import math
import platform
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

import eznas
from eznas import report
from eznas.data import BatchSource, resolve_data_root
from eznas.metrics import bootstrap_ci, correlations
from eznas.proxies import parse_proxy
from eznas.proxies.program import program_call
from eznas.scoring import ArchScores, resolve_device, sample_archs, score_archs
from eznas.spaces import SpaceOptions, get_space

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyConfig:
    search_space: str = "NASBench201"
    nds_space: str | None = None
    dataset: str = "cifar10"
    batch_size: int = 16
    n_samples: int | None = None  # None or < 0: all architectures
    seed: int = 0
    proxies: tuple[str, ...] = ("synflow", "naswot", "params")
    programs: tuple[str, ...] = ()  # evolved programs, scored like proxies
    program_signal: str = "logits_sum"
    accuracy_key: str | None = None
    benchmark_path: str | None = None
    data_root: str | None = None
    device: str = "auto"
    out: str | None = None
    results_csv: str = "results/all_tests.csv"
    fresh_batch: bool = False
    init: str = "default"
    width: int | None = None
    cells: int | None = None
    bootstrap: int = 1000

    def run_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        space = self.search_space + (f"-{self.nds_space}" if self.nds_space else "")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path("results") / "verify" / f"{space}-{self.dataset}-s{self.seed}-{stamp}"


def run_verify(cfg: VerifyConfig, progress: Callable[[int], Callable[[ArchScores], None]] | None = None
               ) -> dict[str, Any]:
    """Score, correlate and write the run folder; returns the summary (also in summary.json).

    ``progress(total)`` may return a per-arch callback (the CLI's progress bar).
    """
    calls = {spec: parse_proxy(spec) for spec in cfg.proxies}  # unknown names and options fail first
    for text in cfg.programs:
        call = program_call(text, cfg.program_signal, cfg.seed)
        calls[call.label] = call
    labels = tuple(calls)
    space = get_space(cfg.search_space, SpaceOptions(cfg.nds_space, cfg.width, cfg.cells))
    data_root = resolve_data_root(cfg.data_root)
    bench = Path(cfg.benchmark_path) if cfg.benchmark_path else space.default_benchmark(data_root, cfg.dataset)
    archs = sample_archs(space.load(bench, cfg.dataset, cfg.accuracy_key), cfg.n_samples, cfg.seed)
    batches = BatchSource(data_root, cfg.dataset, cfg.batch_size, cfg.seed, fresh=cfg.fresh_batch)
    device = resolve_device(cfg.device)
    out = cfg.run_dir()
    log.info("scoring %d %s archs on %s with %s -> %s", len(archs), space.tag, cfg.dataset,
             ",".join(labels), out)

    tick = progress(len(archs)) if progress else None
    start = time.perf_counter()
    rows, secs = [], {p: 0.0 for p in labels}
    for r in score_archs(space, archs, list(calls.values()), batches, seed=cfg.seed, init=cfg.init, device=device):
        rows.append({"uid": r.arch.uid, "arch": r.arch.spec, "accuracy": r.arch.accuracy, **r.scores,
                     **{f"error_{k}": v for k, v in r.errors.items()}})
        for p, s in r.seconds.items():
            secs[p] += s
        if tick:
            tick(r)
    wall = time.perf_counter() - start
    table = pd.DataFrame(rows)

    summary: dict[str, Any] = {
        "config": {**dataclasses.asdict(cfg), "run_dir": str(out), "benchmark_path": str(bench),
                   "data_root": str(data_root), "device": str(device)},
        "versions": {"eznas": eznas.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "n_archs": len(archs),
        "wall_seconds": wall,
        "proxies": {},
    }
    for name in labels:
        s, a = table[name].to_numpy(float), table["accuracy"].to_numpy(float)
        finite = np.isfinite(s)
        if (~finite).any():
            log.warning("%s: %d of %d archs have a non-finite score and are excluded", name,
                        int((~finite).sum()), len(s))
        m = correlations(s[finite], a[finite])
        m["excluded_non_finite"] = int((~finite).sum())
        m["ci95"] = bootstrap_ci(s[finite], a[finite], n_boot=cfg.bootstrap, seed=cfg.seed)
        m["seconds"] = secs[name]
        m["seconds_per_arch"] = secs[name] / max(len(archs), 1)
        m["definition"] = calls[name].proxy.doc
        m["options"] = {**calls[name].proxy.options(), **calls[name].options}
        summary["proxies"][name] = m

    out.mkdir(parents=True, exist_ok=True)
    report.write_scores(out / "scores.csv", table)
    report.write_summary(out / "summary.json", summary)
    title = f"{space.tag} {cfg.dataset}: {len(archs)} archs, batch {cfg.batch_size}, seed {cfg.seed}"
    report.plot_scatter(out / "scatter.png", table, list(labels), summary, title)
    stamp = datetime.now().isoformat(timespec="seconds")
    report.append_all_tests(Path(cfg.results_csv), [
        {"timestamp": stamp, "proxy": name, "seed": cfg.seed, "n_samples": len(archs),
         "batch_size": cfg.batch_size, "dataset": cfg.dataset, "search_space": cfg.search_space,
         "nds_space": cfg.nds_space or "", "tau": m["kendall"], "pearson": m["pearson"],
         "spearman": m["spearman"], "n": m["n"], "run_dir": str(out)}
        for name, m in summary["proxies"].items()
    ])
    return summary


def result_line(name: str, m: dict[str, Any]) -> str:
    """The closing stdout line per proxy."""
    def f(x: float) -> str:
        return "nan" if x is None or math.isnan(x) else f"{x:.4f}"

    return (f"proxy={name} kendall={f(m['kendall'])} spearman={f(m['spearman'])} pearson={f(m['pearson'])} "
            f"n={m['n']} seconds={m['seconds']:.1f}")
