"""The statistics collector: which units, which names and shapes, the gradients' meaning, determinism,
in-place ReLUs, storage options and the cache key."""
import torch
import torch.nn as nn
import torch.nn.functional as F
import pytest

from eznas.data import Batch
from eznas.spaces import get_space
from eznas.stats.collector import NAMES, COLLECTOR_VERSION, CollectorConfig, collect, stats_key
from eznas.stats.units import find_units

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


class RCB(nn.Module):
    """Two pre-activation ReLU-Conv-BN blocks after a stem, like NB-201's ops; ReLUs in place."""

    unit_rule = "relu_conv_bn"

    def __init__(self, inplace: bool = True):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.block1 = nn.Sequential(nn.ReLU(inplace=inplace), nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.block2 = nn.Sequential(nn.ReLU(inplace=inplace), nn.Conv2d(4, 6, 1, bias=False), nn.BatchNorm2d(6))
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.block2(self.block1(self.stem(x))).mean((2, 3)))


class PostAct(nn.Module):
    """A plain Conv-BN-ReLU net: each conv after the first forms a unit with the previous ReLU."""

    unit_rule = "relu_conv_bn"

    def __init__(self):
        super().__init__()
        layers = []
        for c_in, c_out in ((3, 4), (4, 4), (4, 5)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc(self.body(x).mean((2, 3)))


def batch(n=4, res=8, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, 3, res, res, generator=g), torch.randint(0, classes, (n,), generator=g), classes)


def make_rcb(inplace=True):
    torch.manual_seed(0)
    return RCB(inplace)


def test_names_are_22_and_named():
    assert len(NAMES) == 22 == len(set(NAMES))
    assert NAMES[0] == "weight" and "inp_grad_D" in NAMES and "act_P" in NAMES


def test_units_on_a_pre_activation_net_skip_the_stem():
    assert [u.name for u in find_units(make_rcb(), batch().x)] == ["block1.1", "block2.1"]


def test_units_on_a_post_activation_net():
    torch.manual_seed(0)
    assert [u.name for u in find_units(PostAct(), batch().x)] == ["body.3", "body.6"]


def test_units_on_nb201_in_execution_order():
    net = get_space("NASBench201").build(CELL, 10)
    units = find_units(net, torch.randn(2, 3, 32, 32))
    # 3 conv edges in each of 15 cells + 2 convs in each of the 2 residual reduction blocks
    assert len(units) == 15 * 3 + 2 * 2
    assert units[0].name == "cells.0.edges.0.0.1" and units[15].name == "cells.5.conv_a.1" and units[16].name == "cells.5.conv_b.1"
    positions = [list(dict(net.named_modules())).index(u.name) for u in units]
    assert positions == sorted(positions)


def test_units_on_darts_chain_separable_convs():
    genotype = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('max_pool_3x3', 0), ('dil_conv_3x3', 2), "
                "('none', 0), ('avg_pool_3x3', 1), ('skip_connect', 0), ('skip_connect', 1)], normal_concat=[2, 3, 4, 5], "
                "reduce=[('sep_conv_3x3', 0), ('skip_connect', 1), ('max_pool_3x3', 0), ('dil_conv_3x3', 2), "
                "('none', 0), ('avg_pool_3x3', 1), ('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2, 3, 4, 5])")
    from eznas.spaces import SpaceOptions
    net = get_space("DARTS", SpaceOptions(width=4, cells=3)).build(genotype, 10)
    units = find_units(net, torch.randn(2, 3, 32, 32))
    first = [u.name for u in units if u.name.startswith("cells.0.")]
    # preprocess0 and preprocess1 (ReLU-Conv-BN 1x1), sep_conv (two ReLU-dw-pw-BN halves), dil_conv (one);
    # a unit is named by its first conv, the depthwise one
    assert first == ["cells.0.preprocess0.1", "cells.0.preprocess1.1", "cells.0.ops.0.1", "cells.0.ops.0.5",
                     "cells.0.ops.3.1"], first


def test_shapes_and_requested_names_only():
    b = batch()
    stats = collect(make_rcb(), b, CollectorConfig(names=("weight", "inp_D", "act_grad_N", "weight_grad_P")))
    u = stats.units[0]
    assert set(u.tensors) == {"weight", "inp_D", "act_grad_N", "weight_grad_P"}
    assert u.tensors["weight"].shape == (4, 4, 3, 3) and u.tensors["weight_grad_P"].shape == (4, 4, 3, 3)
    assert u.tensors["inp_D"].shape == (4, 4, 8, 8) and stats.units[1].tensors["act_grad_N"].shape == (4, 6, 8, 8)


def test_values_and_gradients_match_autograd_by_hand():
    net, b = make_rcb(inplace=False), batch()
    stats = collect(net, b, CollectorConfig(names=NAMES))
    # by hand: the block-1 tensors and the gradient of the summed logits
    stem = net.stem(b.x)
    stem.retain_grad()
    pre = net.block1[0](stem)
    pre.retain_grad()
    act = net.block1[2](net.block1[1](pre))
    act.retain_grad()
    net.zero_grad()
    net.fc(net.block2(act).mean((2, 3))).sum().backward()
    u = stats.units[0].tensors
    assert torch.allclose(u["inp_D"], stem) and torch.allclose(u["pre_D"], pre) and torch.allclose(u["act_D"], act)
    assert torch.allclose(u["act_grad_D"], act.grad, atol=1e-6)
    assert torch.allclose(u["pre_grad_D"], pre.grad, atol=1e-6)
    # the gradient through this unit's ReLU (all of stem's gradient here, as the stem feeds only block 1)
    assert torch.allclose(u["inp_grad_D"], stem.grad, atol=1e-6)
    assert torch.allclose(u["weight_grad_D"], net.block1[1].weight.grad, atol=1e-6)
    assert net.block1[1].weight.grad is not None  # (ours, above) - collect itself leaves no gradients:
    net.zero_grad(set_to_none=True)
    collect(net, b)
    assert all(p.grad is None for p in net.parameters())


def test_cross_entropy_signal():
    net, b = make_rcb(inplace=False), batch()
    stats = collect(net, b, CollectorConfig(names=("weight_grad_D",), signal="ce"))
    net.zero_grad()
    F.cross_entropy(net(b.x), b.y).backward()
    assert torch.allclose(stats.units[1].tensors["weight_grad_D"], net.block2[1].weight.grad, atol=1e-6)


def test_in_place_relus_give_the_same_statistics():
    b = batch()
    a = collect(make_rcb(inplace=True), b)
    c = collect(make_rcb(inplace=False), b)
    for ua, uc in zip(a.units, c.units):
        for name in NAMES:
            assert torch.equal(ua.tensors[name], uc.tensors[name]), name


class SharedReLU(nn.Module):
    """torchvision's BasicBlock habit: one in-place nn.ReLU module called three times."""

    unit_rule = "relu_conv_bn"

    def __init__(self, c=4):
        super().__init__()
        self.conv0, self.bn0 = nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu, self.fc = nn.ReLU(inplace=True), nn.Linear(c, 3)

    def forward(self, x):
        x = self.relu(self.bn0(self.conv0(x)))
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.fc(self.relu(out + x).mean((2, 3)))


def test_a_relu_module_called_several_times_gives_each_unit_its_own_input():
    torch.manual_seed(0)
    net, b = SharedReLU(), batch()
    stats = collect(net, b)
    assert [u.name for u in stats.units] == ["conv1", "conv2"]
    x0 = net.bn0(net.conv0(b.x))  # by hand: the block inputs before the (shared) ReLU
    x1 = net.bn1(net.conv1(torch.relu(x0)))
    for t in (x0, x1):
        t.retain_grad()
    out = net.bn2(net.conv2(torch.relu(x1)))
    net.fc(torch.relu(out + torch.relu(x0)).mean((2, 3))).sum().backward()
    for u, inp in zip(stats.units, (x0, x1)):
        assert torch.allclose(u.tensors["inp_D"], inp, atol=1e-6)
        assert torch.equal(u.tensors["pre_D"], torch.relu(u.tensors["inp_D"]))
        assert torch.allclose(u.tensors["inp_grad_D"], inp.grad, atol=1e-6)  # all of the ReLU's backward
    conv1, conv2 = stats.units
    # relu(x0) feeds conv1 and the residual: pre_grad is conv1's share only, inp_grad is not
    assert not torch.allclose(conv1.tensors["inp_grad_D"], conv1.tensors["pre_grad_D"] * (conv1.tensors["inp_D"] > 0))
    assert torch.equal(conv2.tensors["inp_grad_D"], conv2.tensors["pre_grad_D"] * (conv2.tensors["inp_D"] > 0))


def test_deterministic_bit_identical_on_cpu():
    net = get_space("NASBench201").build(CELL, 10)
    b = batch(n=2, res=32, classes=10)
    first, second = collect(net, b), collect(net, b)
    for u1, u2 in zip(first.units, second.units):
        assert all(torch.equal(u1.tensors[n], u2.tensors[n]) for n in NAMES)


def test_noise_and_perturbation_passes():
    b = batch(seed=5)  # not seed 0: the noise pass draws from a generator seeded with noise_seed=0
    none = collect(make_rcb(), b, CollectorConfig(names=("inp_P", "inp_N", "inp_D"), perturbation=0.0))
    u = none.units[0].tensors
    assert torch.count_nonzero(u["inp_P"]) == 0  # P is stored as P - D
    assert not torch.allclose(u["inp_N"], u["inp_D"])
    other_noise = collect(make_rcb(), b, CollectorConfig(names=("inp_N",), noise_seed=1))
    assert not torch.equal(other_noise.units[0].tensors["inp_N"], u["inp_N"])


def test_storage_dtype_and_sample_cap():
    stats = collect(make_rcb(), batch(n=4), CollectorConfig(names=("weight", "act_D", "weight_grad_D"),
                                                            dtype="float16", max_samples=2))
    u = stats.units[0].tensors
    assert u["act_D"].dtype == torch.float16 and u["act_D"].shape[0] == 2
    assert u["weight_grad_D"].shape == (4, 4, 3, 3)
    full = collect(make_rcb(), batch(n=4), CollectorConfig(names=("weight", "act_D", "weight_grad_D")))
    assert stats.nbytes() < full.nbytes() / 2


@pytest.mark.parametrize("bad", [dict(names=("act_X",)), dict(signal="mse"), dict(dtype="int8")])
def test_bad_config_names_the_value(bad):
    with pytest.raises(ValueError, match="valid"):
        CollectorConfig(**bad)


def test_the_cache_key_covers_every_field_and_the_collector_version(monkeypatch):
    key = stats_key(space="test", arch="a", batch_seed=0)
    assert key == stats_key(batch_seed=0, arch="a", space="test")  # the fields, not their order
    assert key != stats_key(space="test", arch="a", batch_seed=1)
    monkeypatch.setattr("eznas.stats.collector.COLLECTOR_VERSION", COLLECTOR_VERSION + 1)
    assert key != stats_key(space="test", arch="a", batch_seed=0)


def test_float16_storage_saturates_instead_of_overflowing():
    from eznas.stats.collector import rounded
    t = torch.tensor([1.0e6, -7.0e4, 3.0, float("inf"), float("nan")])
    r = rounded(t, torch.float16)
    assert r.dtype == torch.float16
    assert r[0].item() == 65504.0 and r[1].item() == -65504.0 and r[2].item() == 3.0
    assert r[3].item() == float("inf") and torch.isnan(r[4])  # a value that was not finite stays so
    assert rounded(t, torch.float32) is t  # same dtype, no copy asked: the tensor itself
