"""verify_scores: score sampled benchmark architectures with proxies and rank-correlate with accuracy."""
from __future__ import annotations

import dataclasses
import json
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
from eznas.errors import DataError, EznasError
from eznas.io import write_json
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


CHECKPOINT_SECONDS = 60.0
NOT_NUMBERS = ("results_csv", "bootstrap", "out")  # config fields a resumed run may change


def run_verify(cfg: VerifyConfig, progress: Callable[[int], Callable[[ArchScores], None]] | None = None,
               resume: bool = False) -> dict[str, Any]:
    """Score, correlate and write the run folder; returns the summary (also in summary.json).

    ``progress(total)`` may return a per-arch callback (the CLI's progress bar). The scores so far are
    checkpointed to ``partial_scores.csv`` in the run folder about every minute; ``resume`` continues
    from there (same settings required) instead of starting again, and returns a finished run's summary
    as it is.
    """
    if resume and (done_before := finished(cfg)) is not None:
        log.info("%s already holds this run, finished: nothing to score", cfg.out)
        return done_before
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

    partial = Partial(out, cfg)
    rows, secs, wall = partial.load() if resume else ([], {}, 0.0)
    secs = {p: secs.get(p, 0.0) for p in labels}
    done = {row["uid"] for row in rows}
    if done:
        log.info("resuming %s: %d of %d archs already scored", out, len(done), len(archs))
    tick = progress(len(archs)) if progress else None
    for _ in range(len(done) if tick else 0):
        tick(None)
    start, saved = time.perf_counter() - wall, time.perf_counter()
    for r in score_archs(space, archs, list(calls.values()), batches, seed=cfg.seed, init=cfg.init, device=device,
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

    summary: dict[str, Any] = {
        "config": {**dataclasses.asdict(cfg), "run_dir": str(out), "benchmark_path": str(bench),
                   "data_root": str(data_root), "device": str(device)},
        "versions": {"eznas": eznas.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "settings": settings(cfg),
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
    partial.remove()
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


def settings(cfg: VerifyConfig) -> dict[str, Any]:
    """The config fields that change the scores, as JSON stores them (a finished or partial run's key)."""
    return json.loads(json.dumps({k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_NUMBERS}))


def finished(cfg: VerifyConfig) -> dict[str, Any] | None:
    """The summary of the finished run in ``cfg.out`` if it was made with the same settings, else None."""
    path = cfg.run_dir() / "summary.json"
    try:
        summary = json.loads(path.read_text()) if cfg.out and path.is_file() else None
    except ValueError:
        return None
    return summary if summary and summary.get("settings") == settings(cfg) else None


class Partial:
    """The scores of an unfinished run (``partial_scores.csv`` + ``partial_state.json``, written atomically)."""

    def __init__(self, out: Path, cfg: VerifyConfig):
        self.scores, self.state = out / "partial_scores.csv", out / "partial_state.json"
        self.config = settings(cfg)

    def save(self, rows: list[dict[str, Any]], seconds: dict[str, float], wall: float) -> None:
        self.scores.parent.mkdir(parents=True, exist_ok=True)
        report.write_scores(self.scores, pd.DataFrame(rows))
        write_json(self.state, {"config": self.config, "seconds": seconds, "wall_seconds": wall, "n": len(rows)})

    def load(self) -> tuple[list[dict[str, Any]], dict[str, float], float]:
        """(rows, seconds per proxy, wall seconds) so far; nothing when there is no partial run."""
        if not self.state.is_file():
            return [], {}, 0.0
        try:
            state = json.loads(self.state.read_text())
            table = pd.read_csv(self.scores, dtype={"uid": str, "arch": str})
            config = self.config
            changed = [k for k in config if state["config"].get(k) != config[k]]
            rows = table.head(state["n"]).to_dict("records")
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{self.state.parent}: the partial run is unreadable ({exc}); delete "
                            f"{self.state.name} to start again") from None
        if changed:
            raise EznasError(f"--resume {self.state.parent}: the partial run was made with other settings "
                             f"({changed[0]}: {state['config'].get(changed[0])!r}, now {config[changed[0]]!r})")
        for row in rows:  # pandas reads the absent errors back as NaN
            for key in [k for k, v in row.items() if k.startswith("error_") and not isinstance(v, str)]:
                del row[key]
        return rows, state["seconds"], state["wall_seconds"]

    def remove(self) -> None:
        self.scores.unlink(missing_ok=True)
        self.state.unlink(missing_ok=True)
