"""NASBench101: NASLib's encoding, pruning, NB-101's channel split, and the network against the table's params."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from eznas.errors import ArchError, DataError
from eznas.spaces import SpaceOptions, get_space
from eznas.spaces.nb101 import parse_encoding, vertex_channels

# row 0 of the early NB-Suite-Zero file: vertex 2 (a maxpool) feeds only vertex 5, which feeds nothing
ROW0 = ("(0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, "
        "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 4, 4, 4, 1)")


def test_encoding_is_pruned_to_the_vertices_on_input_output_paths():
    matrix, ops = parse_encoding(ROW0, "here")
    assert ops == ("input", "maxpool3x3", "maxpool3x3", "conv3x3-bn-relu", "conv3x3-bn-relu", "output")
    assert matrix.shape == (6, 6) and matrix[0].tolist() == [0, 1, 1, 1, 1, 1]


def test_channels_split_like_nb101():
    # input -> a -> output, input -> b -> output: 128 output channels split 64 / 64; a chain keeps the width
    fan = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert vertex_channels(128, 128, fan) == [128, 64, 64, 128]
    odd = np.array([[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5])
    assert vertex_channels(64, 128, odd) == [64, 43, 43, 42, 128]
    chain = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert vertex_channels(32, 64, chain) == [32, 64, 64, 64]


@pytest.mark.parametrize("text, message", [
    ("(1, 2)", "expected 49 adjacency ints and 7 op codes"),
    ("nope(", "not a NASLib NB-101 encoding"),
    (ROW0.replace("(0, 1, 1", "(0, 1, 2", 1), r"adjacency entry \(0, 2\) = 2"),
    (ROW0[:-2] + "3)", "bad op code 3 at vertex 6"),
    (ROW0.replace("2, 2, 4, 4, 4, 1)", "2, 2, 4, 4, 1, 1)"), "bad op code 1 at vertex 5"),
])
def test_a_bad_encoding_names_the_row_and_the_token(text, message, tmp_path):
    path = tmp_path / "nb101.csv"
    pd.DataFrame({"naslib_encoding": [ROW0, text], "val_accuracy": [92.0, 91.0]}).to_csv(path, index=False)
    with pytest.raises(ArchError, match=rf"nb101.csv: row 1 \(file line 3\): {message}"):
        get_space("NASBench101").load(path, "cifar10")


def test_missing_accuracy_column_names_file_and_column(tmp_path):
    path = tmp_path / "nb101.csv"
    pd.DataFrame({"naslib_encoding": [ROW0]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="nb101.csv: missing column 'val_accuracy'"):
        get_space("NASBench101").load(path, "cifar10")


def test_real_table_parameter_counts_are_exact(data_root, one_thread):
    """At NB-101's width (128) every parameter count equals the table's (all 500 rows checked once; 12 here)."""
    space = get_space("NASBench101")
    path = space.default_benchmark(data_root, "cifar10")
    if not path.is_file():
        pytest.skip(f"{path} not present")
    archs, table = space.load(path, "cifar10"), pd.read_csv(path)
    assert len(archs) == 500
    for arch in archs[:12]:
        params = sum(p.numel() for p in space.build(arch.spec, 10).parameters()) / 1e6
        assert params == pytest.approx(table.params[int(arch.uid)], abs=1e-6), arch.uid
    small = get_space("NASBench101", SpaceOptions(width=8)).build(archs[0].spec, 10)
    with torch.no_grad():
        assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_units_are_every_conv_bn_pair_with_the_conv_input(one_thread):
    """NB-101 is Conv-BN-ReLU: the collector's units are its Conv -> BN pairs (the stem and the 1x1 projections
    too), ``inp`` is the conv's input itself; a ReLU -> Conv -> BN rule would find a few of them."""
    from eznas.data import Batch
    from eznas.spaces.nb101 import spec_string
    from eznas.stats import collect
    from eznas.stats.units import find_units

    net = get_space("NASBench101", SpaceOptions(width=8)).build(spec_string(*parse_encoding(ROW0, "row 0")), 10)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    convs = [name for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert sorted(u.name for u in find_units(net, x)) == sorted(convs) and len(convs) == 64
    stats = collect(net, Batch(x, torch.zeros(4, dtype=torch.long), 10))
    stem = stats.units[0].tensors
    assert stats.units[0].name == "layers.0.0" and torch.equal(stem["inp_D"], x)
    for unit in stats.units:
        t = unit.tensors
        assert torch.equal(t["inp_D"], t["pre_D"]) and torch.equal(t["inp_grad_N"], t["pre_grad_N"])
        assert torch.equal(t["inp_P"], t["pre_P"]) and t["act_D"].shape[1] == t["weight"].shape[0]
    assert stats.features["n_units"] == 64
    net.unit_rule = "relu_conv_bn"  # what NB-201's rule would see
    assert 0 < len(find_units(net, x)) < 20
    net.unit_rule = "conv-bn"
    with pytest.raises(ValueError, match="unit_rule is 'conv-bn'; valid: relu_conv_bn, conv_bn"):
        find_units(net, x)


def test_az_nas_features_are_the_stem_and_the_nine_cells(one_thread):
    """AZ-NAS reads a network's ``stem`` and ``cells``: NB-101's are the first Conv-BN-ReLU and its 9 cells (the
    stacks' max-pools are not cells), so its components are finite there, the stride-2 pairs included."""
    import math

    from eznas.data import Batch
    from eznas.proxies import Probe
    from eznas.proxies.aznas import components, feature_modules
    from eznas.spaces.nb101 import Cell, spec_string

    net = get_space("NASBench101", SpaceOptions(width=8)).build(spec_string(*parse_encoding(ROW0, "row 0")), 10)
    features = feature_modules(net)
    assert features[0] is net.layers[0] and len(features) == 10 and all(isinstance(m, Cell) for m in features[1:])
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    c = components(Probe(net, Batch(x, torch.zeros(4, dtype=torch.long), 10), seed=1), 8)
    assert all(math.isfinite(v) for v in c.values()) and c["expressivity"] > 0
