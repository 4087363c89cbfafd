"""A verify run's folder: ``config.json`` (the resolved config, written before anything is scored), the guard
that keeps a new run out of a folder that holds results, the resumed run's settings checked, and the scores of
an unfinished run (``Partial``: checkpointed about every minute, read back on ``--resume``).

A folder holds a verify run once it holds results (RESULT_FILES): a run killed before its first checkpoint is
started again. A resumed run's settings are read from its ``config.json``, or, in a folder made before verify
wrote one, from its summary or partial run; a setting newer than the run is what the run used (LEGACY), else
its default now (eznas.runfolder.as_used)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd

from eznas import report
from eznas.errors import DataError, EznasError
from eznas.io import write_json
from eznas.runfolder import RunFolder, as_used
from eznas.verify.config import NOT_NUMBERS, VerifyConfig, flag, settings

RESULT_FILES = ("summary.json", "scores.csv", "partial_scores.csv", "partial_state.json")  # a run's results
LEGACY = {"DARTS": {"probe": "none"}}  # what runs made before a field existed used (DARTS: the standard network)


def run_folder(cfg: VerifyConfig, out: Path) -> RunFolder:
    """A verify run's folder: it holds a run once it holds results (RESULT_FILES); a resumed run may change
    NOT_NUMBERS; a run made before a setting existed used its default then (LEGACY), else its default now."""
    used = as_used(settings(VerifyConfig(search_space=cfg.search_space)), LEGACY.get(cfg.search_space))
    return RunFolder(out, holds=RESULT_FILES, may_change=NOT_NUMBERS, flag=flag, migrate=used, same=_same)


def check_run_folder(folder: RunFolder, cfg: VerifyConfig, resume: bool) -> dict[str, Any] | None:
    """Refuse to write into a folder that holds results, unless resuming the same run there; returns the
    summary of that run when it is finished (nothing to score), else None."""
    out = Path(folder.path)
    if folder.guard(resume) is None:
        return None
    source = next((n for n in ("summary.json", "partial_state.json") if (out / n).exists()), None)
    if source is None:
        if (out / "scores.csv").exists():  # written, then killed before its summary: its settings are unknown
            raise EznasError(f"--resume {out}: scores.csv there has no summary.json or partial run to tell "
                             "its settings; move it aside to score the run again")
        return None  # a first checkpoint killed half-way: nothing to continue
    saved = folder.read(source)
    folder.check_resumed(_saved_settings(folder, saved, source), settings(cfg))
    return saved if source == "summary.json" else None


def _saved_settings(folder: RunFolder, saved: dict[str, Any], source: str) -> dict[str, Any]:
    """The settings a run used: its config.json or, in a folder made before verify wrote one, the settings in
    its ``source`` (summary.json or partial_state.json, read as ``saved``); migrated either way."""
    if folder.config.is_file():
        return folder.saved_config()
    before = saved.get("settings" if source == "summary.json" else "config")
    if not isinstance(before, dict):
        raise DataError(f"--resume {folder.path}: {Path(folder.path) / source} is unreadable (no settings); move "
                        "it aside to start again")
    return folder.migrate(before)


def write_config(folder: RunFolder, cfg: VerifyConfig) -> None:
    """The run's frozen config (the resolved VerifyConfig) in its folder's config.json, as every command writes."""
    Path(folder.path).mkdir(parents=True, exist_ok=True)
    folder.write_config(dataclasses.asdict(cfg))


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
