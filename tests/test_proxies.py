"""Each proxy's value on a tiny hand-checkable network, and the shared pass."""
import math

import pytest
import torch
import torch.nn as nn

from eznas.data import Batch
from eznas.proxies import Probe, get_proxy, list_proxies


class Tiny(nn.Module):
    def __init__(self, inplace: bool = True, bias: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=inplace)
        self.fc = nn.Linear(4, 2, bias=bias)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).mean((2, 3)))


def make(inplace=True, bias=True, seed=0):
    torch.manual_seed(seed)
    net = Tiny(inplace, bias)
    batch = Batch(torch.randn(5, 3, 8, 8), torch.tensor([0, 1, 0, 1, 1]), 2)
    return net, batch


def score(name, net, batch):
    probe = Probe(net, batch)
    proxy = get_proxy(name)
    probe.run(proxy.needs)
    return proxy.fn(probe)


def test_params_and_flops_by_hand():
    net, batch = make()
    assert score("params", net, batch) == pytest.approx((3 * 4 * 9 + 4 * 2 + 2) / 1e6)
    assert score("flops", net, batch) == pytest.approx((4 * 8 * 8 * 27 + 4 * 2) / 1e6)


def test_grad_norm_and_snip_by_hand():
    net, batch = make()
    loss = nn.functional.cross_entropy(net(batch.x), batch.y)
    gc, gf = torch.autograd.grad(loss, [net.conv.weight, net.fc.weight])
    expect_norm = gc.norm().item() + gf.norm().item()
    expect_snip = (net.conv.weight * gc).abs().sum().item() + (net.fc.weight * gf).abs().sum().item()
    assert score("grad_norm", *make()) == pytest.approx(expect_norm, rel=1e-5)
    assert score("snip", *make()) == pytest.approx(expect_snip, rel=1e-5)


def test_naswot_by_hand_and_with_inplace_relu():
    net, batch = make(inplace=False)
    codes = (net.conv(batch.x) > 0).flatten(1).double()
    k = codes @ codes.T + (1 - codes) @ (1 - codes).T
    expect = torch.linalg.slogdet(k).logabsdet.item()
    assert score("naswot", net, batch) == pytest.approx(expect, rel=1e-9)
    assert score("naswot", *make(inplace=True)) == pytest.approx(expect, rel=1e-9)
    # K's diagonal is the number of ReLU units per sample
    assert k[0, 0].item() == 4 * 8 * 8


def test_synflow_obeys_its_conservation_law():
    """Bias-free linear path, positive input: each layer's sum of theta*dR/dtheta equals R, so synflow = 2R."""
    net, batch = make(bias=False)
    with torch.no_grad():
        x = torch.ones(1, 3, 8, 8, dtype=torch.float64)
        w1, w2 = net.conv.weight.double().abs(), net.fc.weight.double().abs()
        r = (nn.functional.conv2d(x, w1, padding=1).mean((2, 3)) @ w2.T).sum().item()
    assert score("synflow", net, batch) == pytest.approx(2 * r, rel=1e-9)
    assert not net.conv.weight.requires_grad or net.conv.weight.grad is None  # the net is untouched


def test_shared_pass_gives_the_same_scores_as_separate_runs():
    names = list_proxies()
    net, batch = make()
    probe = Probe(net, batch)
    probe.run(frozenset().union(*(get_proxy(n).needs for n in names)))
    together = {n: get_proxy(n).fn(probe) for n in names}
    for n in names:
        alone = score(n, *make())
        assert math.isclose(together[n], alone, rel_tol=1e-6), n


def test_every_proxy_has_a_one_line_definition():
    for n in list_proxies():
        assert get_proxy(n).doc, n
