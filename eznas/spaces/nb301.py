"""NAS-Bench-301 (Siems et al., 2020): the DARTS space, from NASLib's compact encoding.

NASLib writes a DARTS genotype as ``[normal, reduce]``, each 8 ``(input_node, op_index)`` pairs, two per
intermediate node, op indices into ``COMPACT_OPS`` (NASLib's ``convert_compact_to_genotype``; every cell
concatenates nodes 2..5). The table is NAS-Bench-Suite-Zero's early NB-301 file
(``nbsuitezero_early/nb301_zc_early_cifar10.csv``: ``naslib_compact``, ``val_accuracy`` and NB-Suite-Zero's
stored proxy scores). Networks come from the DARTS builder: by default (``--probe none``) NB-301's own
training network (stem, 8 cells, width 32), whose parameter count, without the BN affine parameters, is the
table's ``params`` minus a constant 2,752; ``--probe swap`` is SWAP's probe network, the DARTS space's default.
Unlike on the DARTS CSV, the probe network ranks NB-301's archs poorly (Kendall τ of meco and AZ-NAS 0.12 and
0.10 on it, 0.35 and 0.38 on the own network: README, Learned rankers), so the own network is the default here.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from eznas.errors import ArchError, DataError
from eznas.spaces.base import register_space
from eznas.spaces.darts import DARTS, NB301_OPS, PROBES, Probe, darts_cells
from eznas.spaces.darts_genotype import Genotype, make_genotype
from eznas.spaces.encoding import Encoding

COMPACT_OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
               "dil_conv_5x5")
CONCAT = (2, 3, 4, 5)


def compact_to_genotype(text: str, where: str) -> Genotype:
    """NASLib's compact ``[[(node, op), ...8], [...8]]`` as a validated Genotype; errors name ``where`` and the
    bad token."""
    try:
        value: Any = ast.literal_eval(text) if isinstance(text, str) else text
    except (ValueError, SyntaxError):
        raise ArchError(f"{where}: not a NASLib compact encoding: {text!r}") from None
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ArchError(f"{where}: expected [normal, reduce], got {text!r}")
    cells = []
    for name, cell in zip(("normal", "reduce"), value):
        if not (isinstance(cell, (list, tuple)) and len(cell) == 8):
            raise ArchError(f"{where}: {name} must be 8 (input_node, op_index) pairs, got {cell!r}")
        edges = []
        for i, pair in enumerate(cell):
            ok = isinstance(pair, (list, tuple)) and len(pair) == 2 and all(type(v) is int for v in pair)
            if not ok or not 0 <= pair[1] < len(COMPACT_OPS):
                raise ArchError(f"{where}: bad pair {pair!r} in {name} edge {i} (op index 0..{len(COMPACT_OPS) - 1})")
            edges.append((COMPACT_OPS[pair[1]], pair[0]))
        cells.append(edges)
    return make_genotype(cells[0], CONCAT, cells[1], CONCAT, where)  # checks each input node


@register_space("NASBench301")
class NASBench301(DARTS):
    """NB-301 archs (NASLib compact encoding) with their CIFAR-10 validation accuracies."""

    name = "NASBench301"
    default_probe = "none"
    spec_column, accuracy_column = "naslib_compact", "val_accuracy"
    networks = {**PROBES, "none": Probe(32, 8, True, "NB-301's training network: stem, 8 cells, width 32")}

    def encoding(self) -> Encoding:
        """DARTS's 7 primitives without ``none``, two different inputs per node (as NB-301's genotypes)."""
        return darts_cells(NB301_OPS, distinct_inputs=True)

    def default_benchmark(self, data_root: Path, dataset: str) -> Path:
        if dataset != "cifar10":
            raise DataError(f"NASBench301 ground truth is CIFAR-10 only (nb301_zc_early_cifar10.csv), not {dataset!r}")
        return Path(data_root) / "nbsuitezero_early" / "nb301_zc_early_cifar10.csv"

    def spec_of(self, text: Any, where: str) -> str:
        return str(compact_to_genotype(text, where))
