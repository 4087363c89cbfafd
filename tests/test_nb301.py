"""NASBench301: NASLib's compact encoding, the loader, and the networks against the table's params."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from scipy import stats

from eznas.errors import ArchError, DataError
from eznas.spaces import SpaceOptions, get_space
from eznas.spaces.nb301 import compact_to_genotype

COMPACT = ("[[(0, 0), (1, 5), (1, 1), (0, 1), (1, 3), (0, 3), (1, 3), (3, 2)], "
           "[(1, 0), (0, 2), (1, 3), (0, 3), (3, 0), (0, 1), (2, 0), (3, 6)]]")


def test_compact_encoding_is_naslibs_op_list_and_input_nodes():
    g = compact_to_genotype(COMPACT, "here")
    assert g.normal[:3] == (("max_pool_3x3", 0), ("dil_conv_3x3", 1), ("avg_pool_3x3", 1))
    assert g.reduce[-1] == ("dil_conv_5x5", 3) and g.normal_concat == g.reduce_concat == (2, 3, 4, 5)


@pytest.mark.parametrize("text, message", [
    ("[[(0, 0)]]", r"expected \[normal, reduce\]"),
    ("not python", "not a NASLib compact encoding"),
    (COMPACT.replace("(3, 6)", "(3, 7)"), r"bad pair \(3, 7\) in reduce edge 7"),
    (COMPACT.replace("(1, 5)", "(1, 5), (0, 0)", 1), "normal must be 8"),
    (COMPACT.replace("(1, 3), (3, 2)", "(1, 3), (5, 2)", 1), "bad input index 5 in normal edge 7"),
])
def test_a_bad_encoding_names_the_row_and_the_token(text, message, tmp_path):
    path = tmp_path / "nb301.csv"
    pd.DataFrame({"naslib_compact": [COMPACT, text], "val_accuracy": [93.0, 92.0]}).to_csv(path, index=False)
    with pytest.raises(ArchError, match=rf"nb301.csv: row 1 \(file line 3\).*{message}"):
        get_space("NASBench301").load(path, "cifar10")


def test_missing_accuracy_column_names_file_and_column(tmp_path):
    path = tmp_path / "nb301.csv"
    pd.DataFrame({"naslib_compact": [COMPACT]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="nb301.csv: missing column 'val_accuracy'"):
        get_space("NASBench301").load(path, "cifar10")
    with pytest.raises(DataError, match="CIFAR-10 only"):
        get_space("NASBench301").default_benchmark(tmp_path, "cifar100")


def test_real_table_networks_match_its_params(data_root, one_thread):
    """On NB-301's own network (--probe none, the default: width 32, 8 cells), params without BN's affine
    parameters are the table's minus a constant; --probe swap is SWAP's probe network, DARTS's default."""
    space = get_space("NASBench301")
    assert space.probe == "none" and space.tag == "NASBench301" and get_space("DARTS").probe == "swap"
    path = space.default_benchmark(data_root, "cifar10")
    if not path.is_file():
        pytest.skip(f"{path} not present")
    archs = space.load(path, "cifar10")
    table = pd.read_csv(path)
    assert len(archs) == len(table) == 725 and archs[0].accuracy == pytest.approx(table.val_accuracy[0])
    ours, theirs = [], []
    for arch in archs[:30]:
        net = space.build(arch.spec, 10)
        ours.append(sum(p.numel() for m in net.modules() if not isinstance(m, torch.nn.BatchNorm2d)
                        for p in m.parameters(recurse=False)) / 1e6)
        theirs.append(table.params[int(arch.uid)])
    gaps = [t - o for o, t in zip(ours, theirs)]
    assert max(gaps) - min(gaps) < 1e-5 and abs(gaps[0] - 0.002752) < 1e-5
    assert stats.spearmanr(ours, theirs).statistic == pytest.approx(1.0)
    probe = get_space("NASBench301", SpaceOptions(probe="swap"))
    assert probe.tag == "NASBench301-probe-swap" and len(probe.build(archs[0].spec, 10).cells) == 1
