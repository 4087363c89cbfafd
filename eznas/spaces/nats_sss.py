"""NATS-Bench's size search space (Dong et al., TPAMI 2021): NB-201's skeleton with one fixed cell and a
channel count per layer.

An arch is five channel counts from ``CHOICES`` (8..64 in steps of 8), ``"8:16:24:32:40"``: 8^5 = 32,768
archs. The network is NATS-Bench's ``infer.shape.tiny`` (xautodl's DynamicShapeTinyNet) with N = 1: stem
conv3x3+BN to the first count; cell, stride-2 residual block, cell, residual block, cell at the five counts
(a cell or block maps the previous layer's count to its own: in a cell the edges from its input do, as
NB-201's ops with another output width); BN-ReLU, global average pooling, linear. The cell is ``CELL``, the
best NB-201 topology.

Ground truth is NOT in the mirror. Accepted forms (``--benchmark-path``, or under the data root at
``nats_sss/``, looked up in this order):

* ``nats_sss.csv``: ``index``, ``arch_str`` and an accuracy column (``cifar10_test``, ``cifar100_test``,
  ``imagenet16_120_test`` by default, as NB-201's table; ``--accuracy-key`` picks another);
* ``NATS-sss-v1_0-50262-simple/``: the official benchmark folder (``meta.pickle.pbz2`` and one
  ``NNNNNN.pickle.pbz2`` per arch), read without the ``nats_bench`` package;
* ``NATS-sss-v1_0-50262.pickle.pbz2``: the official single-file table (a dict with ``arch2infos``).

From the official files the accuracy is the 90-epoch schedule's (``hp = 90``, EZNAS's), last epoch, mean
over the seeds trained; its key is ``<set>:<eval>``: ``cifar10:ori-test`` (CIFAR-10 default: trained on
train+valid, tested on the test set), ``cifar100:x-test``, ``ImageNet16-120:x-test`` (defaults), or e.g.
``cifar10-valid:x-valid``. ``python -m eznas.fetch --nats-sss PATH`` converts an official table to
``nats_sss/nats_sss.csv`` once (reading the 32,768 official files takes minutes).
"""
from __future__ import annotations

import bz2
import pickle
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import torch.nn as nn

from eznas.errors import ArchError, DataError
from eznas.spaces.base import Arch, SearchSpace, register_space
from eznas.spaces.encoding import Encoding
from eznas.spaces.nb201 import ACCURACY_KEYS, TinyNetwork, parse_arch, read_table, table_archs

CHOICES = (8, 16, 24, 32, 40, 48, 56, 64)
LAYERS = 5
CELL = parse_arch("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
SIMPLE, SINGLE, CSV = "NATS-sss-v1_0-50262-simple", "NATS-sss-v1_0-50262.pickle.pbz2", "nats_sss.csv"
HP = "90"
OFFICIAL_KEYS = {"cifar10": "cifar10:ori-test", "cifar100": "cifar100:x-test", "ImageNet16-120": "ImageNet16-120:x-test"}
DOWNLOAD = ("NATS-Bench-SSS ground truth is not in the data mirror: download NATS-sss-v1_0-50262-simple.tar "
            "(links in https://github.com/D-X-Y/NATS-Bench#preparation-and-download) and extract it into {folder}/, "
            "or put a CSV with columns index, arch_str, cifar10_test (...) at {folder}/" + CSV)


def parse_channels(spec: Any) -> tuple[int, ...]:
    """``"8:16:24:32:40"`` -> (8, 16, 24, 32, 40); a bad spec raises ArchError naming the token."""
    if not isinstance(spec, str):
        raise ArchError(f"NATS-SSS arch must be a string like '8:16:24:32:40', got {type(spec).__name__} {spec!r}")
    tokens = spec.strip().split(":")
    if len(tokens) != LAYERS:
        raise ArchError(f"NATS-SSS arch {spec!r}: expected {LAYERS} channel counts separated by ':', got {len(tokens)}")
    for token in tokens:
        if not token.isdigit() or int(token) not in CHOICES:
            raise ArchError(f"NATS-SSS arch {spec!r}: bad token {token!r} (a channel count must be one of "
                            f"{', '.join(map(str, CHOICES))})")
    return tuple(int(t) for t in tokens)


def read_pbz2(path: Path) -> Any:
    try:
        with bz2.open(path, "rb") as f:
            return pickle.load(f)  # noqa: S301 - the user's own benchmark file, as nats_bench reads it
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise DataError(f"{path}: not a readable NATS-Bench .pickle.pbz2 file ({exc})") from None


def official_accuracy(info: dict, key: str, where: str) -> float | None:
    """The ``key`` (``<set>:<eval>``) accuracy of one arch's ``hp``-90 record: last epoch, mean over seeds;
    None where that set was not trained."""
    subset, _, evaluation = key.partition(":")
    try:
        results = info[HP]["all_results"]
    except (KeyError, TypeError):
        raise DataError(f"{where}: no hp={HP} results (keys present: {list(info)[:5]})") from None
    values = []
    for (name, _seed), r in results.items():
        if name != subset:
            continue
        at = f"{evaluation}@{r['epochs'] - 1}"
        if at not in r["eval_acc1es"]:
            present = sorted({k.split("@")[0] for k in r["eval_acc1es"]})
            raise DataError(f"{where}: no {evaluation!r} accuracy for {subset!r} (evaluations present: "
                            f"{', '.join(present)})")
        values.append(float(r["eval_acc1es"][at]))
    return sum(values) / len(values) if values else None


def official_records(path: Path) -> Iterable[tuple[int, str, dict]]:
    """(index, arch string, per-hp info) of every arch of an official table: a ``-simple`` folder or a
    single ``.pickle.pbz2`` file."""
    if path.is_dir():
        meta = read_pbz2(path / "meta.pickle.pbz2")
        for index, arch in enumerate(meta["meta_archs"]):
            file = path / f"{index:06d}.pickle.pbz2"
            if file.is_file():
                yield index, arch, read_pbz2(file)
        return
    table = read_pbz2(path)
    if not isinstance(table, dict) or not isinstance(table.get("arch2infos"), dict):
        raise DataError(f"{path}: not a NATS-Bench table (expected a dict with 'meta_archs' and 'arch2infos')")
    for index, info in sorted(table["arch2infos"].items()):
        yield int(index), table["meta_archs"][int(index)], info


def official_table(path: Path, keys: Iterable[str]) -> pd.DataFrame:
    """An official table as a frame: ``index``, ``arch_str`` and one column per accuracy key."""
    keys = list(keys)
    rows = [{"index": index, "arch_str": arch,
             **{k: official_accuracy(info, k, f"{path}: arch {index} ({arch})") for k in keys}}
            for index, arch, info in official_records(path)]
    if not rows:
        raise DataError(f"{path}: no arch records in this NATS-Bench table")
    return pd.DataFrame(rows, columns=["index", "arch_str", *keys])


@register_space("NATSBenchSSS")
class NATSBenchSSS(SearchSpace):
    """NATS-Bench size space: five channel counts on NB-201's fixed best cell."""

    datasets = ("cifar10", "cifar100", "ImageNet16-120")
    default_datasets = ("cifar10", "cifar100")
    full_table = True

    name = "NATSBenchSSS"

    def encoding(self) -> Encoding:
        """The 5 layers' channel counts (8^5 = 32,768 archs)."""
        return Encoding((CHOICES,) * LAYERS, parse_channels, lambda code: ":".join(map(str, code)))

    def default_benchmark(self, data_root: Path, dataset: str) -> Path:
        folder = Path(data_root) / "nats_sss"
        found = [folder / n for n in (CSV, SIMPLE, SINGLE) if (folder / n).exists()]
        return found[0] if found else folder / CSV

    def load(self, path: Path, dataset: str, accuracy_key: str | None = None) -> list[Arch]:
        path = Path(path)
        if not path.exists():
            raise DataError(f"benchmark not found: {path}. " + DOWNLOAD.format(folder=path.parent))
        official = path.is_dir() or path.name.endswith(".pbz2")
        key = accuracy_key or (OFFICIAL_KEYS if official else ACCURACY_KEYS).get(dataset)
        if key is None:
            raise DataError(f"no default accuracy for dataset {dataset!r} in {path}; pass --accuracy-key")
        table = official_table(path, [key]) if official else read_table(path, ["index", "arch_str", key])
        return table_archs(path, table, key, parse_channels)

    def build(self, spec: str, num_classes: int) -> nn.Module:
        return TinyNetwork(CELL, num_classes, channels=parse_channels(spec))
