"""The network-level layer of the language: features, network-level programs, reg-SWAP as a seed, and the
collector's forward-only passes (same values as with the backward pass)."""
import math

import pytest
import torch
import torch.nn as nn

from eznas.data import BatchSource
from eznas.features import graph_depth, network_features
from eznas.gp.parse import parse_program
from eznas.gp.seeds import SEEDS
from eznas.proxies import Probe, get_proxy
from eznas.networks import arch_seed, build_network
from eznas.scoring import sample_archs
from eznas.spaces import get_space
from eznas.stats.collector import NAMES, CollectorConfig, collect


@pytest.fixture(scope="module")
def nb201_nets(data_root):
    space = get_space("NASBench201")
    archs = sample_archs(space.load(space.default_benchmark(data_root, "cifar10"), "cifar10"), 6, 3)
    batch = BatchSource(data_root, "cifar10", 4, 0).batch()
    nets = []
    for arch in archs:
        nets.append((build_network(space, arch, 10, 0), arch_seed(0, arch.uid)))
    return nets, batch


def test_params_and_flops_features_are_the_proxies_exactly(nb201_nets):
    nets, batch = nb201_nets
    for net, seed in nets:
        features = network_features(net, batch.x, 0)
        probe = Probe(net, batch, seed=seed)
        probe.run({"macs"})
        assert features["params"] == get_proxy("params").fn(probe)
        assert features["flops"] == get_proxy("flops").fn(probe)


def test_n_units_is_the_collectors_count_and_features_change_nothing(nb201_nets):
    nets, batch = nb201_nets
    net, _ = nets[0]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    stats = collect(net, batch, CollectorConfig(names=("pre_D",)))
    assert stats.features["n_units"] == len(stats.units) > 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()
               if "running" not in k and "num_batches" not in k)  # weights untouched (BN statistics move)
    assert net.training  # the eval-mode forward of the features restores the mode


def test_depth_counts_weighted_layers_on_the_longest_path():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 3, 3, padding=1)
            self.b = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))

        def forward(self, x):
            y = self.a(x)
            return self.head(y + self.b(y))  # the skip is shorter: depth = a, b's two convs, the linear

    out = Skip()(torch.randn(1, 3, 4, 4))
    assert graph_depth(out.grad_fn) == 4
    chain = nn.Sequential(*[nn.Conv2d(2, 2, 1) for _ in range(5)])
    assert graph_depth(chain(torch.randn(1, 2, 3, 3)).grad_fn) == 5
    assert network_features(chain, torch.randn(2, 2, 3, 3), 0)["depth"] == 5.0


def test_reg_swap_seed_is_the_formula(nb201_nets):
    """SWAP x exp(-(P - mu)^2 / sigma), P in thousands, mu = 1000, sigma = 1e6: with P in millions that is
    exp(-(params - 1)^2); by hand from the SWAP seed and the parameter count."""
    nets, batch = nb201_nets
    reg, swap = parse_program(SEEDS["reg_swap"]), parse_program(SEEDS["swap"])
    for net, _ in nets:
        stats = collect(net, batch, CollectorConfig(names=("pre_D",)))
        p_k = sum(p.numel() for p in net.parameters() if p.requires_grad) / 1e3
        assert reg.score(stats) == pytest.approx(swap.score(stats) * math.exp(-(p_k - 1000) ** 2 / 1e6), rel=1e-12)


def test_a_network_level_program_by_hand(nb201_nets):
    nets, batch = nb201_nets
    program = parse_program("net_sub(net_log(sum_units(corr_min_eig(pre_N))), net_scale(net_pow(params, 0.5), 2.0))")
    meco = parse_program(SEEDS["meco"])
    for net, _ in nets:
        stats = collect(net, batch, CollectorConfig(names=("pre_N",)))
        m = meco.score(stats)
        assert program.score(stats) == pytest.approx(math.log(abs(m)) - 2.0 * stats.features["params"] ** 0.5)
        values: dict = {}
        assert program.evaluate(stats, values)[0] == program.score(stats)
        assert values == {"sum_units(corr_min_eig(pre_N))": m}  # the aggregate's value is kept for reuse
        assert program.value(None, stats.features, values) == program.score(stats)  # no statistics needed now


def test_forward_only_passes_give_the_same_values(data_root):
    """Names without gradients skip the backward pass; the forward values are the same to the bit."""
    batch = BatchSource(data_root, "cifar10", 4, 0).batch()
    for name in ("NASBench201", "DARTS"):
        space = get_space(name)
        arch = sample_archs(space.load(space.default_benchmark(data_root, "cifar10"), "cifar10"), 1, 5)[0]
        got = {}
        for names in (NAMES, ("pre_N", "act_D", "inp_P", "weight")):
            torch.manual_seed(0)
            got[len(names)] = collect(space.build(arch.spec, 10).train(), batch, CollectorConfig(names=names))
        for full, part in zip(got[len(NAMES)].units, got[4].units):
            for key, t in part.tensors.items():
                assert torch.equal(full.tensors[key], t), (name, key)
