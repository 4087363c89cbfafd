"""The verify run: score sampled benchmark architectures with proxies, programs and rankers, rank-correlate the
scores with the accuracies, and write the run folder and the row of each proxy in ``all_tests.csv``."""
from __future__ import annotations

import dataclasses
import logging
import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

import eznas
from eznas import report
from eznas.data import BatchSource, resolve_data_root
from eznas.errors import DataError
from eznas.io import check_writable
from eznas.proxies import per_arch_calls
from eznas.scoring import ArchScores, resolve_device, sample_archs, score_archs
from eznas.spaces import SpaceOptions, get_space
from eznas.verify.config import VerifyConfig, check_config, proxy_calls, resolved, settings
from eznas.verify.folder import Partial, check_run_folder, run_folder, write_config
from eznas.verify.summary import proxy_summaries

log = logging.getLogger("eznas.verify")  # its lines keep the name they had in logs

CHECKPOINT_SECONDS = 60.0


def run_verify(cfg: VerifyConfig, progress: Callable[[int, int], Callable[[ArchScores], None]] | None = None,
               resume: bool = False) -> dict[str, Any]:
    """Score, correlate and write the run folder; returns the summary (also in summary.json, and ranked in
    summary.md).

    ``progress(total, done)`` may return a callback called once per arch scored now (the CLI's progress;
    ``done`` archs were scored before a resume). The scores so far are checkpointed to
    ``partial_scores.csv`` in the run folder about every minute; ``resume`` continues from there (same
    settings required) instead of starting again, and returns a finished run's summary as it is. A folder
    that holds results is never written to without ``resume``. Every input and both outputs are checked
    before anything is scored; then the resolved config is written to the folder's ``config.json``.
    """
    check_config(cfg)
    cfg = resolved(cfg)
    out = cfg.run_dir()
    folder = run_folder(cfg, out)
    if (done_before := check_run_folder(folder, cfg, resume)) is not None:
        log.info("%s already holds this run, finished: nothing to score", out)
        return done_before
    calls = proxy_calls(cfg)
    labels = tuple(calls)
    check_writable(out, folder=True, what="--out")
    report.check_all_tests(Path(cfg.results_csv))
    space = get_space(cfg.search_space, SpaceOptions(cfg.nds_space, cfg.width, cfg.cells, cfg.probe))
    data_root = resolve_data_root(cfg.data_root)
    bench = Path(cfg.benchmark_path) if cfg.benchmark_path else space.default_benchmark(data_root, cfg.dataset)
    archs = sample_archs(space.load(bench, cfg.dataset, cfg.accuracy_key), cfg.n_samples, cfg.seed)
    if not archs:
        raise DataError(f"{bench}: no architectures to score (no row with an accuracy)")
    batches = BatchSource(data_root, cfg.dataset, cfg.batch_size, cfg.seed, fresh=cfg.fresh_batch,
                          first=cfg.first_batch)
    device = resolve_device(cfg.device)
    log.info("scoring %d %s archs on %s with %s -> %s", len(archs), space.tag, cfg.dataset,
             ",".join(labels), out)
    write_config(folder, cfg)

    per_arch = per_arch_calls(calls, cfg.batch_size)
    partial = Partial(out, cfg)
    rows, secs, wall = partial.load() if resume else ([], {}, 0.0)
    secs = {p: secs.get(p, 0.0) for p in per_arch}
    done = {row["uid"] for row in rows}
    if done:
        log.info("resuming %s: %d of %d archs already scored", out, len(done), len(archs))
    tick = progress(len(archs), len(done)) if progress else None
    start, saved = time.perf_counter() - wall, time.perf_counter()
    for r in score_archs(space, archs, list(per_arch.values()), batches, seed=cfg.seed, init=cfg.init, device=device,
                         skip=done):
        rows.append({"uid": r.arch.uid, "arch": r.arch.spec, "accuracy": r.arch.accuracy, **r.scores,
                     **{f"error_{k}": v for k, v in r.errors.items()}})
        for p, s in r.seconds.items():
            secs[p] += s
        if tick:
            tick(r)
        if time.perf_counter() - saved > CHECKPOINT_SECONDS:
            partial.save(rows, secs, time.perf_counter() - start)
            saved = time.perf_counter()
    wall = time.perf_counter() - start
    table = pd.DataFrame(rows)
    for label, call in calls.items():  # pool-level proxies: from their components' columns, the pool complete
        if call.proxy.pool:
            table[label] = call.proxy.pool(table)
            secs[label] = sum(secs[c] for c in call.proxy.components)

    summary: dict[str, Any] = {
        "config": {**dataclasses.asdict(cfg), "run_dir": str(out), "benchmark_path": str(bench),
                   "data_root": str(data_root), "device": str(device)},
        "versions": {"eznas": eznas.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "settings": settings(cfg),
        "n_archs": len(archs),
        "wall_seconds": wall,
        "proxies": proxy_summaries(table, calls, secs, len(archs), cfg.bootstrap, cfg.seed),
    }
    out.mkdir(parents=True, exist_ok=True)
    report.write_scores(out / "scores.csv", table)
    report.write_summary(out / "summary.json", summary)
    title = f"{space.tag} {cfg.dataset}: {len(archs)} archs, batch {cfg.batch_size}, seed {cfg.seed}"
    report.write_summary_md(out / "summary.md", summary, title)
    report.plot_scatter(out / "scatter.png", table, list(labels), summary, title)
    partial.remove()  # last: a run killed while writing its outputs resumes from its checkpoint
    stamp = datetime.now().isoformat(timespec="seconds")
    report.append_all_tests(Path(cfg.results_csv), [
        {"timestamp": stamp, "proxy": name, "seed": cfg.seed, "n_samples": len(archs),
         "batch_size": cfg.batch_size, "dataset": cfg.dataset, "search_space": space.tag,
         "nds_space": cfg.nds_space or "", "tau": m["kendall"], "pearson": m["pearson"],
         "spearman": m["spearman"], "n": m["n"], "run_dir": str(out)}
        for name, m in summary["proxies"].items() if not m["all_non_finite"]  # no figure, no row
    ])
    return summary
