"""verify_scores: score sampled benchmark architectures with proxies and rank-correlate with accuracy."""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import platform
import time
from collections import Counter
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
from eznas.io import check_writable, write_json
from eznas.metrics import bootstrap_ci, correlations, top_of_ranking
from eznas.proxies import ProxyCall, parse_proxy, per_arch_calls
from eznas.gp.as_proxy import program_call, program_names
from eznas.rankers import ranker_call
from eznas.inits import list_inits
from eznas.registry import UnknownNameError, Valid, at_least, check_values
from eznas.runfolder import RunFolder, jsonable
from eznas.scoring import ArchScores, resolve_device, sample_archs, score_archs
from eznas.spaces import SpaceOptions, check_network_options, get_space, space_class

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyConfig:
    search_space: str = "NASBench201"
    nds_space: str | None = None
    dataset: str = "cifar10"
    batch_size: int = 16
    n_samples: int | None = None  # None or -1: all architectures
    seed: int = 0
    proxies: tuple[str, ...] = ("synflow", "naswot", "params")
    programs: tuple[str, ...] = ()  # evolved programs, scored like proxies
    rankers: tuple[str, ...] = ()  # folders of saved learned rankers (eznas.rankers), scored like proxies
    program_signal: str = "logits_sum"
    accuracy_key: str | None = None
    benchmark_path: str | None = None
    data_root: str | None = None
    device: str = "auto"
    out: str | None = None
    results_csv: str = "results/all_tests.csv"
    fresh_batch: bool = False
    first_batch: bool = False  # the first batch_size training images (SWAP's unshuffled loader)
    init: str = "default"
    width: int | None = None
    cells: int | None = None
    probe: str | None = None  # DARTS: a proxy's own probe network (eznas.spaces.darts.PROBES)
    bootstrap: int = 1000

    def run_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        space = self.search_space + (f"-{self.nds_space}" if self.nds_space else "") + (f"-probe-{self.probe}" if self.probe else "")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path("results") / "verify" / f"{space}-{self.dataset}-s{self.seed}-{stamp}"


CHECKPOINT_SECONDS = 60.0
NOT_NUMBERS = ("results_csv", "bootstrap", "out")  # config fields a resumed run may change
RESULT_FILES = ("summary.json", "scores.csv", "partial_scores.csv", "partial_state.json")  # a run's results
FLAGS = {"proxies": "--proxy", "programs": "--program/--program-file", "rankers": "--ranker"}  # where a flag's name is not the field's
RANGES = {  # config field -> its valid values (None: the default)
    "batch_size": at_least(1),
    "n_samples": Valid(lambda n: n == -1 or n >= 1, ">= 1, or -1 (all)"),
    "seed": at_least(0),
    "bootstrap": at_least(1),
    "width": at_least(1),
    "cells": at_least(1),
}
LEGACY = {"DARTS": {"probe": "none"}}  # what runs made before a field existed used (DARTS: the standard network)


def flag(field: str) -> str:
    """The command-line flag of a config field."""
    return FLAGS.get(field, f"--{field}")


def check_config(cfg: VerifyConfig) -> None:
    """Every value in range, and no option the chosen space ignores (EznasError naming the flag)."""
    check_values(dataclasses.asdict(cfg), RANGES, name=flag)
    check_network_options(cfg.search_space, cfg.width, cfg.cells, cfg.probe)  # the space's class says which it takes
    if cfg.init not in list_inits():  # --set init=... passes no argparse choices
        raise EznasError(f"--init {cfg.init!r} is not an initialisation; valid: {', '.join(list_inits())}")
    if cfg.fresh_batch and cfg.first_batch:
        raise EznasError("--fresh_batch and --first_batch exclude each other")
    if cfg.nds_space is not None and cfg.search_space != "NDS":
        raise EznasError(f"--nds_space applies to --search_space NDS only, not {cfg.search_space}")
    if not cfg.proxies and not cfg.programs and not cfg.rankers:
        raise EznasError("nothing to score: give --proxy, --program, --program-file or --ranker")


def resolved(cfg: VerifyConfig) -> VerifyConfig:
    """The config with the space's defaults that change the scores made explicit (DARTS: its probe network),
    so that a run folder records them and a later default cannot change a resumed run."""
    if cfg.probe is None and space_class(cfg.search_space).has_probes():
        return dataclasses.replace(cfg, probe=space_class(cfg.search_space).default_probe)
    return cfg


def proxy_calls(cfg: VerifyConfig) -> dict[str, ProxyCall]:
    """The proxies (options checked) and programs (parsed) to score, by label; errors name the flag."""
    calls = {}
    shared = program_names(cfg.programs)  # one collection per arch serves every program
    for field, items, make in (("proxies", cfg.proxies, lambda t: parse_proxy(t, cfg.batch_size)),
                               ("programs", cfg.programs, lambda t: program_call(t, cfg.program_signal, cfg.seed, shared)),
                               ("rankers", cfg.rankers, lambda d: ranker_call(d, cfg.search_space, cfg.batch_size))):
        for text in items:
            try:
                call = make(text)
            except (EznasError, UnknownNameError) as exc:
                raise EznasError(f"{flag(field)}: {exc}") from None
            calls[call.label] = call
    return calls


def run_verify(cfg: VerifyConfig, progress: Callable[[int, int], Callable[[ArchScores], None]] | None = None,
               resume: bool = False) -> dict[str, Any]:
    """Score, correlate and write the run folder; returns the summary (also in summary.json, and ranked in
    summary.md).

    ``progress(total, done)`` may return a callback called once per arch scored now (the CLI's progress;
    ``done`` archs were scored before a resume). The scores so far are checkpointed to
    ``partial_scores.csv`` in the run folder about every minute; ``resume`` continues from there (same
    settings required) instead of starting again, and returns a finished run's summary as it is. A folder
    that holds results is never written to without ``resume``. Every input and both outputs are checked
    before anything is scored.
    """
    check_config(cfg)
    cfg = resolved(cfg)
    out = cfg.run_dir()
    if (done_before := check_run_folder(cfg, out, resume)) is not None:
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
        "proxies": {},
    }
    short = short_names(calls)
    for name in labels:
        s, a = table[name].to_numpy(float), table["accuracy"].to_numpy(float)
        finite = np.isfinite(s)
        if (~finite).any():
            log.warning("%s: %d of %d archs have a non-finite score and are excluded", name,
                        int((~finite).sum()), len(s))
        m = correlations(s[finite], a[finite])
        m["excluded_non_finite"] = int((~finite).sum())
        m["all_non_finite"] = not finite.any()
        m["failures"] = failures(table, name)
        m["ci95"] = bootstrap_ci(s[finite], a[finite], n_boot=cfg.bootstrap, seed=cfg.seed)
        m.update(top_of_ranking(s[finite], a[finite]))
        m["short_name"] = short[name]
        m["seconds"] = secs[name]
        m["seconds_per_arch"] = secs[name] / max(len(archs), 1)
        m["definition"] = calls[name].proxy.doc
        m["options"] = {**calls[name].proxy.options(), **calls[name].options}
        summary["proxies"][name] = m

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


def short_names(calls: dict[str, ProxyCall]) -> dict[str, str]:
    """Per label, the name tables and plots show: ``program 1``, ``program 2``, ... for the programs (whose
    label is their whole text), the label for the rest."""
    programs = iter(range(1, len(calls) + 1))
    return {label: f"program {next(programs)}" if call.proxy.name == "program" else label
            for label, call in calls.items()}


def failures(table: pd.DataFrame, name: str) -> dict[str, int]:
    """Per reason, how many archs got a non-finite score: the error the proxy raised (its first line),
    else the value it returned; most frequent first."""
    scores, errors = table[name].to_numpy(float), table.get(f"error_{name}")
    reasons: Counter[str] = Counter()
    for i in np.flatnonzero(~np.isfinite(scores)):
        error = errors.iloc[i] if errors is not None else None
        reasons[error.splitlines()[0][:200] if isinstance(error, str) and error else f"returned {scores[i]}"] += 1
    return dict(reasons.most_common())


def notes(summary: dict[str, Any]) -> list[str]:
    """Lines for stdout about the archs each proxy could not score, with the reasons."""
    lines = []
    for name, m in summary["proxies"].items():
        reasons = "; ".join(f"{why}: {k}" for why, k in m.get("failures", {}).items())
        reasons = f" ({reasons})" if reasons else ""
        if m.get("all_non_finite"):
            lines.append(f"warning: {name}: no finite score on any of the {summary['n_archs']} archs{reasons}; "
                         f"no row appended to {summary['config']['results_csv']}")
        elif m["excluded_non_finite"]:
            lines.append(f"note: {name}: {m['excluded_non_finite']} archs with a non-finite score were "
                         f"excluded{reasons}")
    return lines


def result_line(name: str, m: dict[str, Any]) -> str:
    """The closing stdout line per proxy."""
    def f(x: float) -> str:
        return "nan" if x is None or math.isnan(x) else f"{x:.4f}"

    return (f"proxy={name} kendall={f(m['kendall'])} spearman={f(m['spearman'])} pearson={f(m['pearson'])} "
            f"n={m['n']} seconds={m['seconds']:.1f}")


def settings(cfg: VerifyConfig) -> dict[str, Any]:
    """The config fields that change the scores, as JSON stores them (a finished or partial run's key)."""
    return jsonable({k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_NUMBERS})


def run_folder(cfg: VerifyConfig, out: Path) -> RunFolder:
    """A verify run's folder: it holds a run once it holds results (RESULT_FILES); a resumed run may change
    NOT_NUMBERS; a run made before a setting existed used its default then (LEGACY), else its default now."""
    def migrate(before: dict[str, Any]) -> dict[str, Any]:
        return {**settings(VerifyConfig(search_space=cfg.search_space)), **LEGACY.get(cfg.search_space, {}), **before}

    return RunFolder(out, holds=RESULT_FILES, may_change=NOT_NUMBERS, flag=flag, migrate=migrate, same=_same)


def check_run_folder(cfg: VerifyConfig, out: Path, resume: bool) -> dict[str, Any] | None:
    """Refuse to write into a folder that holds results, unless resuming the same run there; returns the
    summary of that run when it is finished (nothing to score), else None."""
    folder = run_folder(cfg, out)
    if folder.guard(resume) is None:
        return None
    source = next((n for n in ("summary.json", "partial_state.json") if (out / n).exists()), None)
    if source is None:
        if (out / "scores.csv").exists():  # written, then killed before its summary: its settings are unknown
            raise EznasError(f"--resume {out}: scores.csv there has no summary.json or partial run to tell "
                             "its settings; move it aside to score the run again")
        return None  # a first checkpoint killed half-way: nothing to continue
    saved = folder.read(source)
    before = saved.get("settings" if source == "summary.json" else "config")
    if not isinstance(before, dict):
        raise DataError(f"--resume {out}: {out / source} is unreadable (no settings); move it aside to start again")
    folder.check_resumed(folder.migrate(before), settings(cfg))
    return saved if source == "summary.json" else None


PATH_SETTINGS = ("benchmark_path", "data_root")  # the settings that name a file or folder


def _same(key: str, before: Any, now: Any) -> bool:
    """One setting unchanged; a file or folder given once relative and once absolute is the same one."""
    if before == now:
        return True
    return key in PATH_SETTINGS and isinstance(before, str) and isinstance(now, str) \
        and Path(before).resolve() == Path(now).resolve()


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
            rows = table.head(state["n"]).to_dict("records")
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{self.state.parent}: the partial run is unreadable ({exc}); delete "
                            f"{self.state.name} to start again") from None
        if state["config"] != self.config:  # check_run_folder names the field; this guards direct use
            raise EznasError(f"--resume {self.state.parent}: the partial run was made with other settings")
        for row in rows:  # pandas reads the absent errors back as NaN
            for key in [k for k, v in row.items() if k.startswith("error_") and not isinstance(v, str)]:
                del row[key]
        return rows, state["seconds"], state["wall_seconds"]

    def remove(self) -> None:
        self.scores.unlink(missing_ok=True)
        self.state.unlink(missing_ok=True)
