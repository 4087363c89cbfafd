"""AZ-NAS: its per-arch components on NB-201 networks and the pool-level rank combination in verify."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from eznas.data import BatchSource
from eznas.errors import EznasError
from eznas.networks import build_network
from eznas.proxies import Probe, parse_proxy
from eznas.proxies.aznas import COMPONENTS, components, entropy_of_spectrum
from eznas.spaces import Arch, get_space

GOOD = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
IDENTITY = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"  # every cell passes its input through
ZERO = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|"  # every cell outputs zeros


def probe_of(spec: str, data_root) -> Probe:
    batches = BatchSource(data_root, "cifar10", 4, 0)
    net = build_network(get_space("NASBench201"), Arch("0", spec, 0.0), 10, 0)
    return Probe(net, batches.batch(), seed=1)


def test_components_are_finite_memoised_and_identity_cells_are_untrainable(data_root):
    probe = probe_of(GOOD, data_root)
    before = [p.detach().clone() for p in probe.net.parameters()]
    c = components(probe, 8)
    assert all(math.isfinite(v) for v in c.values()) and c["expressivity"] > 0
    assert components(probe, 8) is c  # the three proxies share one computation
    assert all(torch.equal(a, b) for a, b in zip(before, probe.net.parameters()))  # on a copy
    assert parse_proxy("az_trainability:batch=8")(probe) == c["trainability"]
    # NB-201's residual blocks keep some trainability; the identity cells' pairs score -inf, so the mean does
    assert components(probe_of(IDENTITY, data_root), 8)["trainability"] == -math.inf


def test_az_nas_is_the_sum_of_log_ranks_of_its_components_in_the_pool(data_root, tmp_path):
    from eznas.cli import verify_main

    table = tmp_path / "six.csv"
    full = pd.read_csv(data_root / "nb201" / "nb201_acc_200ep.csv")
    full.sample(6, random_state=0).to_csv(table, index=False)
    assert verify_main(["--benchmark-path", str(table), "--data-root", str(data_root), "--proxy",
                        "az_nas,flops", "--batch_size", "4", "--quiet", "--bootstrap", "5", "--out",
                        str(tmp_path / "v"), "--results-csv", str(tmp_path / "all.csv")]) == 0
    scores = pd.read_csv(tmp_path / "v" / "scores.csv")
    assert set(COMPONENTS) <= set(scores.columns)
    want = sum(np.log(stats.rankdata(scores[c]) / 6) for c in COMPONENTS)
    np.testing.assert_allclose(scores["az_nas"], want)
    with pytest.raises(EznasError, match="az_nas is pool-level"):
        parse_proxy("az_nas")(probe_of(GOOD, data_root))


def test_a_cell_with_zero_output_has_entropy_zero_so_the_arch_is_finite_and_lowest(data_root):
    """AZ-NAS's code divides 0 by 0 on a zero feature (NaN, ranked lowest); ours gives entropy 0: finite, so an
    evolved program can read it (zc_az_expressivity), and still below any arch whose features vary."""
    zero, good = components(probe_of(ZERO, data_root), 8), components(probe_of(GOOD, data_root), 8)
    assert math.isfinite(zero["expressivity"]) and math.isfinite(zero["progressivity"])
    assert zero["expressivity"] < good["expressivity"] and zero["progressivity"] < good["progressivity"]
    assert entropy_of_spectrum(torch.zeros(2, 4, 3, 3)) == 0.0
    assert entropy_of_spectrum(torch.randn(8, 4, 3, 3)) > 0


def test_a_stemless_darts_probe_network_scores_with_the_input_as_its_first_feature(data_root):
    space = get_space("DARTS")
    arch = space.load(space.default_benchmark(data_root, "cifar10"), "cifar10")[0]
    net = build_network(space, arch, 10, 0)
    assert isinstance(net.stem, torch.nn.Identity) and len(net.cells) == 1
    c = components(Probe(net, BatchSource(data_root, "cifar10", 4, 0).batch(), seed=2), 8)
    assert all(math.isfinite(v) for v in c.values())
