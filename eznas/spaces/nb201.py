"""NAS-Bench-201: cell strings, the C=16 N=5 TinyNetwork, and the accuracy table.

A cell string lists, for nodes 1..3, the op on each edge from an earlier node::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

The network (Dong & Yang, ICLR 2020) is: stem conv3x3+BN; three stages of N cells at C, 2C, 4C channels
joined by stride-2 residual blocks; BN-ReLU, global average pooling and a linear classifier.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch
import torch.nn as nn

from eznas.errors import ArchError, DataError
from eznas.spaces.base import Arch, SearchSpace, register_space
from eznas.spaces.encoding import Encoding
from eznas.spaces.ops import AvgPool2d, ReLUConvBN, Zero

log = logging.getLogger(__name__)

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
ACCURACY_KEYS = {"cifar10": "cifar10_test", "cifar100": "cifar100_test", "ImageNet16-120": "imagenet16_120_test"}

Cell = tuple[tuple[tuple[str, int], ...], ...]  # per node: ((op, input_node), ...)
_OP = "(?:" + "|".join(OPS) + ")"
# the canonical form of a cell string (every string of the NB-201 table): a match needs no further parsing
CANONICAL = re.compile(rf"\|{_OP}~0\|\+\|{_OP}~0\|{_OP}~1\|\+\|{_OP}~0\|{_OP}~1\|{_OP}~2\|")


def parse_arch(spec: str) -> Cell:
    """Parse and validate a cell string; a bad one raises ArchError naming the bad token."""
    if not isinstance(spec, str):
        raise ArchError(f"NB-201 arch must be a string, got {type(spec).__name__} {spec!r}")
    nodes = spec.strip().split("+")
    if len(nodes) != 3:
        raise ArchError(f"NB-201 arch {spec!r}: expected 3 nodes separated by '+', got {len(nodes)}")
    cell = []
    for j, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise ArchError(f"NB-201 arch {spec!r}: node {node!r} must be wrapped in '|'")
        edges = []
        for token in node[1:-1].split("|"):
            op, sep, src = token.partition("~")
            if op not in OPS:
                raise ArchError(f"NB-201 arch {spec!r}: bad token {token!r} (op must be one of {', '.join(OPS)})")
            if not sep or not src.isdigit() or int(src) >= j:
                raise ArchError(f"NB-201 arch {spec!r}: bad token {token!r} (input of node {j} must be 0..{j - 1})")
            edges.append((op, int(src)))
        if sorted(s for _, s in edges) != list(range(j)):
            raise ArchError(f"NB-201 arch {spec!r}: node {node!r} must have exactly one edge from each of 0..{j - 1}")
        cell.append(tuple(edges))
    return tuple(cell)


_INPUTS = (0, 0, 1, 0, 1, 2)  # the input node of each of the 6 edges, in string order


def encode_cell(spec: str) -> tuple[str, ...]:
    """A cell string -> its 6 ops in string order."""
    return tuple(op for node in parse_arch(spec) for op, _ in node)


def decode_cell(code: tuple) -> str:
    """6 ops in string order -> the cell string."""
    edges = [f"{op}~{src}" for op, src in zip(code, _INPUTS)]
    return f"|{edges[0]}|+|{edges[1]}|{edges[2]}|+|{edges[3]}|{edges[4]}|{edges[5]}|"


def _op(name: str, c_in: int, c_out: int) -> nn.Module:
    """An NB-201 op from ``c_in`` to ``c_out`` channels at stride 1 (xautodl's: where the widths differ, a
    skip is a 1x1 conv + BN, a pool starts with a 1x1 ReLU-Conv-BN, ``none`` gives ``c_out`` zeros)."""
    if name == "none":
        return Zero(channels=c_out if c_out != c_in else None)
    if name == "skip_connect":
        return nn.Identity() if c_in == c_out else \
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
    if name == "nor_conv_1x1":
        return ReLUConvBN(c_in, c_out, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c_in, c_out, 3, 1, 1)
    pool = AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    return pool if c_in == c_out else nn.Sequential(ReLUConvBN(c_in, c_out, 1, 1, 0), pool)


class InferCell(nn.Module):
    """A cell from ``c_in`` to ``c_out`` channels (default ``c_in``): the edges from its input change the width."""

    def __init__(self, cell: Cell, c_in: int, c_out: int | None = None):
        super().__init__()
        c_out = c_in if c_out is None else c_out
        self.edges = nn.ModuleList()
        self.inputs: list[list[int]] = []
        for node in cell:
            self.inputs.append([src for _, src in node])
            self.edges.append(nn.ModuleList(_op(op, c_in if src == 0 else c_out, c_out) for op, src in node))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for ops, srcs in zip(self.edges, self.inputs):
            nodes.append(sum(op(nodes[s]) for op, s in zip(ops, srcs)))
        return nodes[-1]


class ResNetBasicBlock(nn.Module):
    """The stride-2 reduction between stages: two ReLU-Conv-BN plus an avg-pool + 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class TinyNetwork(nn.Module):
    """NB-201's network for ``cell``; ``channels`` (3N + 2 counts: N cells, a residual block, N cells, a
    block, N cells, each mapping the previous count to its own) generalises it to NATS-Bench's size space;
    the default is NB-201's C=16, N=5: (16,) * 5 + (32,) * 6 + (64,) * 6."""

    unit_rule = "relu_conv_bn"  # its ReLU-Conv-BN ops are the collector's units (eznas.stats)

    def __init__(self, cell: Cell, num_classes: int, channels: Sequence[int] | None = None):
        super().__init__()
        channels = tuple(channels) if channels is not None else (16,) * 5 + (32,) * 6 + (64,) * 6
        if len(channels) % 3 != 2 or min(channels) < 1:
            raise ArchError(f"NB-201 network channels must be 3N + 2 counts >= 1, got {channels}")
        n = len(channels) // 3
        self.stem = nn.Sequential(nn.Conv2d(3, channels[0], 3, padding=1, bias=False), nn.BatchNorm2d(channels[0]))
        blocks: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip((channels[0], *channels), channels)):
            reduction = i in (n, 2 * n + 1)
            blocks.append(ResNetBasicBlock(c_in, c_out) if reduction else InferCell(cell, c_in, c_out))
        self.cells = nn.Sequential(*blocks)
        self.lastact = nn.Sequential(nn.BatchNorm2d(channels[-1]), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(x.mean(dim=(2, 3)))


@register_space("NASBench201")
class NASBench201(SearchSpace):
    """NAS-Bench-201 cells on CIFAR-10/100 and ImageNet16-120 (200-epoch table)."""

    datasets = ("cifar10", "cifar100", "ImageNet16-120")
    default_datasets = ("cifar10", "cifar100")
    full_table = True
    # the best test accuracy in each table (the reference optimum; a search's is computed from the table)
    optimum = {"cifar10": 94.37, "cifar100": 73.51, "ImageNet16-120": 47.31}

    name = "NASBench201"

    def encoding(self) -> Encoding:
        """The 6 edges' ops, in string order (5^6 = 15,625 cells)."""
        return Encoding((OPS,) * 6, encode_cell, decode_cell)

    def default_benchmark(self, data_root: Path, dataset: str) -> Path:
        return Path(data_root) / "nb201" / "nb201_acc_200ep.csv"

    def load(self, path: Path, dataset: str, accuracy_key: str | None = None) -> list[Arch]:
        key = accuracy_key or ACCURACY_KEYS.get(dataset)
        if key is None:
            raise DataError(f"no default accuracy column for dataset {dataset!r}; pass --accuracy-key")
        def check(spec: object) -> None:
            if not (isinstance(spec, str) and CANONICAL.fullmatch(spec)):
                parse_arch(spec)

        return table_archs(path, read_table(path, ["index", "arch_str", key]), key, check)

    def build(self, spec: str, num_classes: int) -> nn.Module:
        return TinyNetwork(parse_arch(spec), num_classes)


def table_archs(path: Path, table: pd.DataFrame, key: str, check: Callable[[object], object]) -> list[Arch]:
    """The archs of an ``index, arch_str, <key>`` table: every spec validated now by ``check`` (naming the row,
    not when built), a non-numeric accuracy or a repeated index refused, rows without an accuracy left out."""
    for row, spec in enumerate(table["arch_str"]):
        try:
            check(spec)
        except ArchError as exc:
            raise ArchError(f"{path}: {row_name(row)}: {exc}") from None
    accuracy = pd.to_numeric(table[key], errors="coerce")
    refuse_rows(path, accuracy.isna() & table[key].notna(), lambda r: f"{key} {table[key][r]!r} is not a number")
    refuse_rows(path, table["index"].duplicated(), lambda r: f"index {table['index'][r]} appears twice")
    keep = accuracy.notna()
    return [Arch(str(i), s, float(a)) for i, s, a in zip(table["index"][keep], table["arch_str"][keep],
                                                          accuracy[keep])]


def row_name(row: int) -> str:
    """How errors name a CSV row (0-based, after the header)."""
    return f"row {row} (file line {row + 2})"


def refuse_rows(path: Path, bad: pd.Series, message: Callable[[int], str]) -> None:
    """Raise DataError naming the first row where ``bad`` is true, with ``message(row)``."""
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DataError(f"{path}: {row_name(row)}: {message(row)}")


UID_COLUMN = "uid"  # an optional column of a row-numbered table: the arch's uid


def read_archs(path: Path, spec_column: str, accuracy_key: str, spec_of: Callable[[object, str], str]) -> list[Arch]:
    """The archs of a ``<spec_column>,<accuracy_key>`` CSV: uid = 0-based row, or the ``uid`` column where the
    file has one (a subset of a table keeps its archs' uids, so their networks' seeds: the benchmarks write
    such subsets); spec = ``spec_of(cell, where)`` (which validates it, raising ArchError naming ``where``);
    rows without an accuracy are skipped (a warning counts them), a non-number accuracy is a DataError naming
    the row, as is a ``uid`` that is not a whole number >= 0 or repeats one before it. The spec column is read
    as text (a spec of digits keeps its leading zeros)."""
    table = read_table(path, [spec_column, accuracy_key], text=[spec_column])
    uids = [str(row) for row in range(len(table))]
    if UID_COLUMN in table.columns:
        uids = [str(u) for u in table[UID_COLUMN]]
        refuse_rows(path, pd.Series([not u.isdigit() for u in uids]),
                    lambda row: f"{UID_COLUMN} {uids[row]!r} is not a whole number >= 0")
        refuse_rows(path, pd.Series(uids).duplicated(), lambda row: f"{UID_COLUMN} {uids[row]!r} repeats an earlier row's")
    archs, skipped = [], 0
    for row, (uid, text, acc) in enumerate(zip(uids, table[spec_column], table[accuracy_key])):
        spec = spec_of(text, f"{path}: {row_name(row)}")
        if pd.isna(acc):
            skipped += 1
            continue
        try:
            accuracy = float(acc)
        except (TypeError, ValueError):
            raise DataError(f"{path}: {row_name(row)}: {accuracy_key} {acc!r} is not a number") from None
        archs.append(Arch(uid, spec, accuracy))
    if skipped:
        log.warning("%s: skipped %d rows with no %s", path, skipped, accuracy_key)
    return archs


def read_table(path: Path, columns: list[str], text: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV and check it has ``columns``; errors name the file and the missing column. The ``text``
    columns are read as strings, not parsed as numbers."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"benchmark file not found: {path} (run setup_script.sh or pass --benchmark-path)")
    try:
        table = pd.read_csv(path, dtype={c: str for c in text})
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}: missing column {missing[0]!r} (columns present: {', '.join(map(str, table.columns))})"
        )
    return table
