"""Learned rankers: what a proxy must beat when some archs are labelled (issue: rankers).

* ``nar``: a NAR-style Transformer over each NB-201 cell's op/FLOPs/params tensor (``eznas.rankers.nar``);
* ``proxy_ridge``: ridge regression of the accuracy on zero-cost proxy scores (each sign(v) log(1 + |v|),
  standardised on the training archs), the few-shot competitor.

Both train on k labelled archs (``fit``), are saved to a folder (``ranker.json`` + ``ranker.pt``) and
loaded back (``load_ranker``, which refuses a ranker of another space, naming both), and score an arch
as a per-arch proxy (``ranker_call``: ``verify_scores.py --ranker DIR``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import torch

from eznas.errors import DataError, EznasError
from eznas.io import atomic_path, write_json
from eznas.proxies.base import Probe, Proxy, ProxyCall, parse_proxy
from eznas.rankers import nar

KINDS = ("nar", "proxy_ridge")
SPACES = {"nar": ("NASBench201",)}  # the spaces a kind can encode (proxy_ridge: any)


def signed_log(v: np.ndarray) -> np.ndarray:
    """sign(v) log(1 + |v|); a value that is not finite (NASWOT's -inf on a singular kernel) is missing: NaN."""
    v = np.where(np.isfinite(v), v, np.nan)
    return np.sign(v) * np.log1p(np.abs(v))


@dataclass
class Ranker:
    kind: str
    space: str
    dataset: str
    inputs: tuple[str, ...] = ()  # proxy_ridge: the proxies it reads
    mean: list[float] = field(default_factory=list)  # proxy_ridge: standardisation of the inputs
    std: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)  # proxy_ridge: coefficients (standardised inputs)
    record: dict[str, Any] = field(default_factory=dict)  # training settings, splits, figures
    model: nar.NARModel | None = None  # nar

    # ------------------------------------------------------------------------------------ scoring
    def score_specs(self, specs: list[str], resolution: int = 32) -> np.ndarray:
        if self.kind != "nar":
            raise EznasError(f"a {self.kind} ranker scores proxy values, not arch strings")
        return nar.predict(self.model, np.stack([nar.encode(s, resolution) for s in specs]))

    def score_values(self, values: np.ndarray) -> np.ndarray:
        """proxy_ridge: scores of rows of raw proxy values (columns ``inputs``); a missing or non-finite input
        counts as the training mean."""
        z = (signed_log(values) - np.array(self.mean)) / np.array(self.std)
        return np.nan_to_num(z, nan=0.0) @ np.array(self.weights)

    # ------------------------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.model is not None:
            with atomic_path(folder / "ranker.pt") as tmp:
                torch.save(self.model.state_dict(), tmp)
        meta = {k: v for k, v in asdict(self).items() if k != "model"}
        write_json(folder / "ranker.json", meta)


def fit_ridge(values: pd.DataFrame, accuracy: np.ndarray, alpha: float = 1.0) -> tuple[list, list, list]:
    """Ridge on standardised signed-log proxy values: (mean, std, weights)."""
    x = signed_log(values.to_numpy(float))
    mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    std[~np.isfinite(std) | (std == 0)] = 1.0
    z = np.nan_to_num((x - mean) / std, nan=0.0)
    y = (accuracy - accuracy.mean()) / (accuracy.std() or 1.0)
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ y)
    return mean.tolist(), std.tolist(), w.tolist()


def check_meta(meta: Any, path: Path) -> None:
    """A ranker.json names its kind, space and dataset, and a proxy_ridge one as many means, stds and weights
    as inputs (a DataError naming the file and the first bad field)."""
    def bad(name: str, why: str) -> NoReturn:
        raise DataError(f"{path}: field {name} {why}")

    if not isinstance(meta, dict):
        bad("(top level)", "is not an object")
    if meta.get("kind") not in KINDS:
        bad("kind", f"is {meta.get('kind')!r}; valid: {', '.join(KINDS)}")
    if unknown := sorted(set(meta) - {f.name for f in fields(Ranker)} - {"model"}):
        bad(unknown[0], "is not a ranker field")
    for name in ("space", "dataset"):
        if not isinstance(meta.get(name), str):
            bad(name, "is missing or not a string")
    if not isinstance(meta.get("record", {}), dict):
        bad("record", "is not an object")
    if meta["kind"] == "nar":
        if not isinstance(meta.get("record", {}).get("config"), dict):
            bad("record.config", "is missing (a NAR ranker's model settings)")
        return
    inputs = meta.get("inputs")
    if not (isinstance(inputs, list) and inputs and all(isinstance(v, str) for v in inputs)):
        bad("inputs", "is missing or not a list of proxy names")
    for name in ("mean", "std", "weights"):
        value = meta.get(name)
        if not (isinstance(value, list) and len(value) == len(inputs)
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            bad(name, f"must hold {len(inputs)} number{'s' * (len(inputs) != 1)}, one per input")


def load_ranker(folder: str | Path, space: str | None = None) -> Ranker:
    """A saved ranker; ``space`` (when given) must be the one it was trained on."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "ranker.json").read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"--ranker {folder}: no readable ranker.json ({exc})") from None
    check_meta(meta, folder / "ranker.json")
    if space is not None and meta["space"] != space:
        raise EznasError(f"--ranker {folder}: trained on {meta['space']}, not {space}")
    ranker = Ranker(**{k: tuple(v) if k == "inputs" else v for k, v in meta.items()})
    if ranker.kind == "nar":
        try:
            model = nar.NARModel(nar.NARConfig(**ranker.record["config"]))
        except (TypeError, ValueError) as exc:
            raise DataError(f"--ranker {folder / 'ranker.json'}: field record.config does not make a NAR model "
                            f"({exc})") from None
        try:
            model.load_state_dict(torch.load(folder / "ranker.pt", weights_only=True))
        except (OSError, RuntimeError) as exc:
            raise DataError(f"--ranker {folder}: ranker.pt does not load ({exc})") from None
        ranker.model = model.eval()
    return ranker


def ranker_call(folder: str | Path, space: str, batch_size: int | None = None) -> ProxyCall:
    """A saved ranker as a per-arch proxy (label ``ranker:<folder name>``)."""
    ranker = load_ranker(folder, space)
    if ranker.kind == "nar":
        def score(probe: Probe) -> float:
            return float(ranker.score_specs([probe.arch.spec], probe.batch.x.shape[-1])[0])
        needs: frozenset[str] = frozenset()
    else:
        calls = [parse_proxy(p, batch_size) for p in ranker.inputs]
        needs = frozenset().union(*(c.needs for c in calls))

        def score(probe: Probe) -> float:
            values = np.array([[c(probe) for c in calls]])
            return float(ranker.score_values(values)[0])
    doc = f"a saved {ranker.kind} ranker trained on {ranker.space} {ranker.dataset}"
    return ProxyCall(f"ranker:{Path(folder).name}", Proxy("ranker", score, needs, doc, arch_only=ranker.kind == "nar"))


def check_k(k: int, pool: int) -> None:
    """k labelled archs must fit the labelled pool (one line naming both)."""
    if not 2 <= k <= pool:
        raise EznasError(f"k = {k} labelled archs is out of range: the labelled pool has {pool} (k must be 2..{pool})")
