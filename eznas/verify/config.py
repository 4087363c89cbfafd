"""A verify run's settings: ``VerifyConfig`` (one field per ``verify_scores.py`` flag), their check before
anything is read, the defaults a run resolves (DARTS: its probe network), the settings that change the scores
(a run's key) and the proxies, programs and rankers it scores."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from eznas.errors import EznasError
from eznas.gp.as_proxy import program_call, program_names
from eznas.inits import list_inits
from eznas.proxies import ProxyCall, parse_proxy
from eznas.rankers import ranker_call
from eznas.registry import UnknownNameError, Valid, at_least, check_values
from eznas.runfolder import jsonable
from eznas.spaces import check_network_options, space_class


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


NOT_NUMBERS = ("results_csv", "bootstrap", "out")  # config fields a resumed run may change
FLAGS = {"proxies": "--proxy", "programs": "--program/--program-file", "rankers": "--ranker"}  # where a flag's name is not the field's
RANGES = {  # config field -> its valid values (None: the default)
    "batch_size": at_least(1),
    "n_samples": Valid(lambda n: n == -1 or n >= 1, ">= 1, or -1 (all)"),
    "seed": at_least(0),
    "bootstrap": at_least(1),
    "width": at_least(1),
    "cells": at_least(1),
}


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


def settings(cfg: VerifyConfig) -> dict[str, Any]:
    """The config fields that change the scores, as JSON stores them (a finished or partial run's key)."""
    return jsonable({k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_NUMBERS})
