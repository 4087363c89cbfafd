"""Scores a search looks up instead of computing: a ``verify_scores.py`` run folder's (``--scores``).

``scores`` (a ``verify_scores.py`` run folder with the same space, dataset, batch and seed) supplies the
fitness of the archs it scored: they are looked up, not computed, and each counts the verify run's
seconds per arch, so a benchmark of many searches pays for each arch's score once. ``SCORE_SETTINGS`` are
the settings such scores depend on; the score cache (``eznas.search.cache``) is keyed by them too.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from eznas.errors import DataError, EznasError
from eznas.search.config import SearchConfig


# the verify settings that must equal the search's for its scores to be the ones the search would compute
SCORE_SETTINGS = {"search_space": "search_space", "dataset": "dataset", "batch_size": "batch_size",
                  "seed": "score_seed", "probe": "probe", "width": "width", "cells": "cells"}  # verify's: ours


def looked_up_scores(cfg: SearchConfig, label: str, parts: list[str]) -> tuple[dict[str, dict[str, float]], float]:
    """A verify run's values of ``parts`` (the fitness's per-arch columns: ``label`` itself, or a pool
    fitness's components) by uid, and the fitness's seconds per arch; its settings must be the search's
    (first_batch, fresh_batch and init at their defaults), else an error names the one that differs."""
    folder = Path(cfg.scores)
    try:
        summary = json.loads((folder / "summary.json").read_text())
        table = pd.read_csv(folder / "scores.csv", dtype={"uid": str})
    except (OSError, ValueError) as exc:
        raise DataError(f"--scores {folder}: not a finished verify_scores.py run folder ({exc})") from None
    run = summary["config"]
    wanted = {**{k: getattr(cfg, ours) for k, ours in SCORE_SETTINGS.items()}, "first_batch": False, "fresh_batch": False,
              "init": "default"}
    for key, value in wanted.items():
        if run.get(key) != value:
            raise EznasError(f"--scores {folder}: its {key} is {run.get(key)!r}, the search's {value!r}: its "
                             "scores are not the ones this search would compute")
    missing = [c for c in parts if c not in table.columns]
    if label not in summary["proxies"] or missing:
        raise EznasError(f"--scores {folder}: no scores of {(missing or [label])[0]!r} there (it scored "
                         f"{', '.join(summary['proxies'])})")
    values = table[parts].astype(float).to_dict("records")
    return dict(zip(table["uid"], values)), summary["proxies"][label]["seconds_per_arch"]
