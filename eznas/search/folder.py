"""A search's run folder: the guard that keeps a new search out of a folder that holds one, the resumed
search's settings and checkpoint read back, and the checkpoint written.

The run folder holds ``config.json`` (the resolved config), ``state.json`` (the checkpoint: every arch
scored, the REA population, the RNG, the seconds spent; written atomically about every
``CHECKPOINT_SECONDS`` and at the end), ``trajectory.csv``, ``top.csv``, ``result.json`` and ``search.png``
(``eznas.search.results``). ``resume`` continues the search in the folder: the settings must be the run's,
except the budgets, which may grow, and ``top_k``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from eznas.io import check_writable, write_json
from eznas.runfolder import RunFolder, as_used
from eznas.search.config import BUDGETS, SearchConfig
from eznas.search.strategies import Scored, SearchState

Checkpoint = tuple[SearchState, dict[str, Any]]  # the search's state, its RNG's bit generator state


def open_folder(out: Path, cfg: SearchConfig, resume: bool) -> tuple[RunFolder, Checkpoint | None]:
    """The run folder at ``out``, guarded and writable, and, where ``resume`` finds a checkpoint there (its
    settings checked against ``cfg``), the checkpoint; the caller writes ``config.json``."""
    # a setting newer than a saved search: its default, what that search used (it read its table, table=True)
    folder = RunFolder(out, may_change=(*BUDGETS, "out"), migrate=as_used(dataclasses.asdict(SearchConfig())))
    folder.guard(resume)
    check_writable(out, folder=True, what="--out")
    if not (resume and (out / "state.json").is_file()):
        return folder, None
    folder.check_resumed(folder.saved_config(), dataclasses.asdict(cfg))
    saved = folder.read("state.json")
    state = SearchState([Scored(tuple(h["code"]), h["uid"], h["spec"], h["score"], h["accuracy"], h["seconds"],
                                h.get("parts", {})) for h in saved["history"]],
                        list(saved["population"]), saved["elapsed"])
    return folder, (state, saved["rng"])


def save_checkpoint(out: Path, state: SearchState, rng: np.random.Generator) -> None:
    """``state.json``: every arch scored, the REA population, the seconds spent and the RNG (atomically)."""
    write_json(out / "state.json", {
        "history": [dataclasses.asdict(h) for h in state.history], "population": state.population,
        "elapsed": state.elapsed, "rng": rng.bit_generator.state})
