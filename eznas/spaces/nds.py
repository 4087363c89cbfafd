"""NDS: the DARTS-cell design spaces of "On Network Design Spaces" (Radosavovic et al., ICCV 2019).

One JSON file per space under ``<data_root>/nds/`` (from https://dl.fbaipublicfiles.com/nds/data.zip,
facebookresearch/nds): ``Amoeba.json``, ``DARTS.json``, ``ENAS.json``, ``NASNet.json``, ``PNAS.json``.
Each file is a list of records (some releases wrap it as ``{"top": [...], "mid": [...]}``)::

    {"net": {"genotype": {"normal": [["sep_conv_3x3", 1], ...], "normal_concat": [2, 3, 4, 5],
                          "reduce": [...], "reduce_concat": [...]},
             "width": 32, "depth": 20, "aux": false, "drop_prob": 0.0},
     "test_ep_top1": [top-1 error (%) per epoch, ...], ...}

Accuracy = 100 - the last ``test_ep_top1`` value. An arch's spec is compact JSON of the record's genotype,
width and depth, so ``build`` needs nothing else; the network is the DARTS ``NetworkCIFAR`` at that width
and depth (``SpaceOptions.width``/``cells`` override them), without the auxiliary head or drop path.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch.nn as nn

from eznas.errors import ArchError, DataError, EznasError
from eznas.spaces.base import Arch, SearchSpace, SpaceOptions, register_space
from eznas.spaces.darts_genotype import FIELDS, Genotype, make_genotype
from eznas.spaces.darts_network import NetworkCIFAR

log = logging.getLogger(__name__)

NDS_FILES = {
    "amoeba": "Amoeba.json",
    "darts": "DARTS.json",
    "enas": "ENAS.json",
    "nasnet": "NASNet.json",
    "pnas": "PNAS.json",
}
DEFAULT_ACCURACY_KEY = "test_ep_top1"


def nds_subspace(name: str | None) -> str:
    """Normalise ``DARTS``, ``darts`` or EZNAS's ``nds_darts`` to ``darts``; unknown or missing -> error."""
    valid = ", ".join(NDS_FILES)
    if not name:
        raise EznasError(f"the NDS space needs nds_space set to one of {valid}")
    key = name.strip().lower()
    key = key[len("nds_"):] if key.startswith("nds_") else key
    if key not in NDS_FILES:
        raise EznasError(f"unknown nds_space {name!r}; valid: {valid} (any case, 'nds_' prefix allowed)")
    return key


def read_records(path: Path) -> list[Any]:
    """Read an NDS JSON file: a list of records, or a ``{"top": [...], "mid": [...]}`` dict of two lists."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"benchmark file not found: {path} (unzip https://dl.fbaipublicfiles.com/nds/data.zip into "
            "<data_root>/nds/ or pass --benchmark-path)"
        )
    try:
        with path.open() as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc})") from None
    if isinstance(data, dict):
        if not all(isinstance(data.get(k), list) for k in ("top", "mid")):
            raise DataError(
                f"{path}: expected a list of records or a dict with 'top' and 'mid' lists, got keys {list(data)}"
            )
        data = data["top"] + data["mid"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of records, got {type(data).__name__}")
    return data


def _field(record: Any, name: str, where: str, prefix: str = "") -> Any:
    if not isinstance(record, dict) or name not in record:
        raise DataError(f"{where}: missing field {prefix + name!r}")
    return record[name]


def _error_to_accuracy(value: Any, where: str) -> float:
    """A top-1 error (%) or a per-epoch list of them (its last value) -> accuracy (%)."""
    if isinstance(value, list):
        if not value:
            raise DataError(f"{where}: empty error curve")
        value = value[-1]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: top-1 error {value!r} is not a number")
    return 100.0 - float(value)


def encode_spec(genotype: Genotype, width: int, depth: int) -> str:
    """The compact JSON spec that ``NDS.build`` reads back."""
    lists = {
        "normal": [list(e) for e in genotype.normal],
        "normal_concat": list(genotype.normal_concat),
        "reduce": [list(e) for e in genotype.reduce],
        "reduce_concat": list(genotype.reduce_concat),
    }
    return json.dumps({"genotype": lists, "width": width, "depth": depth}, separators=(",", ":"))


def decode_spec(spec: str) -> tuple[Genotype, int, int]:
    """Parse and validate a spec from ``encode_spec``; a bad one raises ArchError naming the problem."""
    where = f"NDS spec {spec[:60]!r}{'...' if len(spec) > 60 else ''}"
    try:
        data = json.loads(spec)
    except (TypeError, ValueError) as exc:
        raise ArchError(f"{where}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ArchError(f"{where}: expected a JSON object with genotype, width, depth")
    missing = [k for k in ("genotype", "width", "depth") if k not in data]
    if missing:
        raise ArchError(f"{where}: missing field {missing[0]!r}")
    width, depth = (_size(data[k], k, where, ArchError) for k in ("width", "depth"))
    return _genotype(data["genotype"], where, "genotype", ArchError), width, depth


def _genotype(raw: Any, where: str, label: str, error: type[EznasError]) -> Genotype:
    """Validate a JSON genotype; a missing part raises ``error``, a bad op/index ArchError."""
    if not isinstance(raw, dict):
        raise error(f"{where}: {label} must be an object with {', '.join(FIELDS)}")
    for name in FIELDS:
        if name not in raw:
            raise error(f"{where}: missing field '{label}.{name}'")
    return make_genotype(*(raw[name] for name in FIELDS), where=where)


def _size(value: Any, label: str, where: str, error: type[EznasError]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(f"{where}: {label} must be a positive integer, got {value!r}")
    return value


@register_space("NDS")
class NDS(SearchSpace):
    """The five DARTS-cell NDS spaces on CIFAR-10; ``SpaceOptions.nds_space`` picks one."""

    evolvable = False  # a task names no NDS space
    sized = ("width", "cells")

    name = "NDS"

    def __init__(self, options: SpaceOptions = SpaceOptions()) -> None:
        super().__init__(options)
        if options.nds_space is not None:
            nds_subspace(options.nds_space)  # fail early on an unknown name

    @property
    def subspace(self) -> str:
        """``amoeba``, ``darts``, ``enas``, ``nasnet`` or ``pnas``."""
        return nds_subspace(self.options.nds_space)

    @property
    def tag(self) -> str:
        if self.options.nds_space is None:
            return self.name
        return f"NDS-{NDS_FILES[self.subspace].removesuffix('.json')}"

    def default_benchmark(self, data_root: Path, dataset: str) -> Path:
        file = NDS_FILES[self.subspace]
        if dataset != "cifar10":
            raise DataError(
                f"NDS {file} holds CIFAR-10 results, not {dataset!r} (the ImageNet '_in' files need the "
                "ImageNet network, which is not built here)"
            )
        return Path(data_root) / "nds" / file

    def load(self, path: Path, dataset: str, accuracy_key: str | None = None) -> list[Arch]:
        """Read an NDS JSON file; uid = record index, accuracy = 100 - the final top-1 error.

        ``accuracy_key`` names another top-1 error field of the records (a list uses its last value).
        """
        key = accuracy_key or DEFAULT_ACCURACY_KEY
        archs, skipped = [], 0
        for i, record in enumerate(read_records(path)):
            where = f"{path}: record {i}"
            net = _field(record, "net", where)
            genotype = _genotype(_field(net, "genotype", where, "net."), where, "net.genotype", DataError)
            width, depth = (
                _size(_field(net, k, where, "net."), f"net.{k}", where, DataError) for k in ("width", "depth")
            )
            accuracy = _error_to_accuracy(_field(record, key, where), f"{where}: {key}")
            if math.isnan(accuracy):
                skipped += 1
                continue
            archs.append(Arch(str(i), encode_spec(genotype, width, depth), accuracy))
        if skipped:
            log.warning("%s: skipped %d records with no %s", path, skipped, key)
        log.info("%s: %d NDS records", path, len(archs))
        return archs

    def build(self, spec: str, num_classes: int) -> nn.Module:
        genotype, width, depth = decode_spec(spec)
        width = width if self.options.width is None else self.options.width
        depth = depth if self.options.cells is None else self.options.cells
        return NetworkCIFAR(genotype, num_classes, width, depth)
