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


def test_all_proxies_together_give_the_same_scores_as_each_alone():
    """Sharing the pass, and proxies running their own passes on copies, must not change any score (the
    per-arch proxies of a cell-less net: AZ-NAS needs cells and its pool combination a pool, tested apart)."""
    names = [n for n in list_proxies() if not get_proxy(n).pool and not n.startswith("az_")]
    net, batch = make()
    probe = Probe(net, batch, seed=7)
    probe.run(frozenset().union(*(get_proxy(n).needs for n in names)))
    together = {n: get_proxy(n).fn(probe) for n in reversed(names)}
    for n in names:
        net, batch = make()
        alone = Probe(net, batch, seed=7)
        alone.run(get_proxy(n).needs)
        value = get_proxy(n).fn(alone)
        assert (math.isnan(value) and math.isnan(together[n])) or math.isclose(together[n], value, rel_tol=1e-6), n


def test_every_proxy_has_a_one_line_definition():
    for n in list_proxies():
        assert get_proxy(n).doc, n


def test_proxy_options_parse_and_errors():
    from eznas.errors import EznasError
    from eznas.proxies import parse_proxy

    call = parse_proxy("sweetimator:low=1e-5:high=5e-5")
    assert call.label == "sweetimator:low=1e-5:high=5e-5" and call.options == {"low": 1e-5, "high": 5e-5}
    assert parse_proxy("swap:repeats=4").options == {"repeats": 4}
    with pytest.raises(EznasError, match="bad option 'repats=4'.*repeats=32"):
        parse_proxy("swap:repats=4")
    with pytest.raises(EznasError, match="cannot read 'many' as int"):
        parse_proxy("swap:repeats=many")


@pytest.mark.parametrize("spec, batch_size, message", [
    ("sweetimator:low=-1", None, "low must be >= 0, got -1.0"),
    ("sweetimator:low=1e-3", None, "needs low < high, got low=0.001, high=0.0005"),
    ("sweetimator:high=inf", None, "high must be a finite number, got inf"),
    ("swap:repeats=0", None, "repeats must be >= 1, got 0"),
    ("reg_swap:repeats=-3", None, "repeats must be >= 1, got -3"),
    ("reg_swap:sigma=0", None, "sigma must be > 0, got 0.0"),
    ("reg_swap:mu=nan", None, "mu must be a finite number, got nan"),
    ("zico:splits=1", None, "splits must be >= 2, got 1"),
    ("zico:splits=9", 8, "needs splits <= --batch_size, got splits=9, batch_size=8"),
    ("meco:resolution=30", None, "resolution must be a multiple of 4, >= 8, got 30"),
    ("meco:resolution=4", None, "resolution must be a multiple of 4, >= 8, got 4"),
    ("jacov:k=0", None, "k must be > 0, got 0.0"),
])
def test_proxy_options_out_of_range_name_the_option(spec, batch_size, message):
    from eznas.errors import EznasError
    from eznas.proxies import parse_proxy

    with pytest.raises(EznasError) as err:
        parse_proxy(spec, batch_size)
    assert str(err.value) == f"proxy {spec!r}: {message}"


def test_proxy_options_at_the_edges_of_their_range_are_accepted():
    from eznas.proxies import parse_proxy

    for spec, batch_size in [("sweetimator:low=0:high=1e-9", None), ("swap:repeats=1", None), ("zico:splits=8", 8),
                             ("zico:splits=64", None), ("meco:resolution=8", None), ("jacov:k=1e-12", None)]:
        assert parse_proxy(spec, batch_size).label == spec


def test_meco_runs_at_every_valid_resolution_on_both_cell_spaces():
    from eznas.proxies import parse_proxy
    from eznas.spaces import get_space

    darts = "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2], " \
            "reduce=[('max_pool_3x3', 0), ('dil_conv_3x3', 1)], reduce_concat=[2])"
    nb201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    for space, spec in (("NASBench201", nb201), ("DARTS", darts)):
        torch.manual_seed(0)
        net = get_space(space).build(spec, 10)
        batch = Batch(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]), 10)
        for resolution in (8, 12, 20):
            assert math.isfinite(parse_proxy(f"meco:resolution={resolution}")(Probe(net, batch))), (space, resolution)


def test_registration_checks_its_own_declared_ranges():
    from eznas.proxies.base import register_proxy
    from eznas.registry import at_least

    def fn(probe, *, n: int = 0) -> float:
        return 0.0

    with pytest.raises(ValueError, match="unknown options \\['m'\\]"):
        register_proxy("test_typo", valid={"m": at_least(1)})(fn)
    from eznas.errors import EznasError

    with pytest.raises(EznasError, match="n must be >= 1, got 0"):  # its default is out of its own range
        register_proxy("test_bad_default", valid={"n": at_least(1)})(fn)
    assert "test_typo" not in list_proxies() and "test_bad_default" not in list_proxies()


def test_sweetimator_counts_gradients_in_the_interval():
    net, batch = make()
    loss = nn.functional.cross_entropy(net(batch.x), batch.y)
    grads = torch.autograd.grad(loss, [net.conv.weight, net.fc.weight])
    lo, hi = 1e-3, 5e-3
    expect = sum(((g.abs() >= lo) & (g.abs() < hi)).sum().item() for g in grads)
    probe = Probe(*make())
    probe.run({"backward"})
    assert get_proxy("sweetimator").fn(probe, low=lo, high=hi) == expect > 0


def test_count_patterns_and_swap_by_hand():
    from eznas.inits import gaussian_init_
    from eznas.proxies.swap import count_patterns, swap_patterns

    codes = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 0, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert count_patterns(codes) == 3  # columns 101, 001, 101, 101, 011
    wide = torch.rand(30, 500) > 0.5  # the int64 packing path (20 < samples <= 62)
    assert count_patterns(wide) == torch.unique(wide.T, dim=0).shape[0]
    net, batch = make()
    gen = torch.Generator().manual_seed(0)
    gaussian_init_(net, gen)
    assert net.conv.weight.std() > 0.5  # N(0, 1), not PyTorch's default scale
    by_hand = torch.unique((net.relu(net.conv(batch.x)) > 0).flatten(1).T, dim=0).shape[0]
    assert swap_patterns(net, batch.x) == by_hand


def test_swap_is_a_mean_over_seeded_reinits_and_reg_swap_scales_it():
    from eznas.inits import gaussian_init_
    from eznas.proxies.swap import swap_patterns

    net, batch = make()
    probe = Probe(net, batch, seed=3)
    got = get_proxy("swap").fn(probe, repeats=3)
    copy, gen = probe.copy(), probe.generator(salt=1)
    values = []
    for _ in range(3):
        gaussian_init_(copy, gen)
        values.append(swap_patterns(copy, batch.x))
    assert got == pytest.approx(sum(values) / 3)
    p = 118 / 1e3
    assert get_proxy("reg_swap").fn(probe, repeats=3, mu=0.1, sigma=0.5) == pytest.approx(
        got * math.exp(-((p - 0.1) ** 2) / 0.5))


class RCBNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 2, 3, padding=1, bias=False)
        self.block = nn.Sequential(nn.ReLU(), nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3))
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(self.block(self.stem(x)).mean((2, 3)))


def test_eznas_program_by_hand():
    torch.manual_seed(0)
    net = RCBNet()
    batch = Batch(torch.randn(2, 3, 4, 4), torch.tensor([0, 1]), 2)
    stem = net.stem(batch.x)
    stem.retain_grad()
    net(batch.x)  # (no effect; the by-hand pass follows)
    out = net.fc(net.block(stem).mean((2, 3)))
    out.sum().backward()
    g = stem.grad * (stem > 0)  # the gradient through the unit's ReLU
    logdet = torch.logdet(torch.sign(g).double())
    expect = torch.sigmoid(torch.nan_to_num(logdet, nan=0.0)).norm().item()
    assert get_proxy("eznas").fn(Probe(net, batch), kaiming=False) == pytest.approx(expect, rel=1e-9)


def test_zico_by_hand():
    net, batch = make()
    halves = [(batch.x[:3], batch.y[:3]), (batch.x[3:], batch.y[3:])]
    grads = []
    for x, y in halves:
        grads.append(torch.autograd.grad(nn.functional.cross_entropy(net(x), y), [net.conv.weight, net.fc.weight]))
    expect = 0.0
    for i in range(2):
        g = torch.stack([grads[0][i], grads[1][i]])
        std, m = g.std(0), g.abs().mean(0)
        expect += math.log((m[std != 0] / std[std != 0]).sum().item())
    assert score("zico", *make()) == pytest.approx(expect, rel=1e-5)


def test_meco_by_hand():
    net, batch = make()
    probe = Probe(net, batch, seed=4)
    x = torch.randn(1, 3, 10, 10, generator=probe.generator(salt=3))
    fea = net.conv(x)  # the only module with a 4-D output besides the ReLU (same map, rectified)
    expect = 0.0
    for f in (fea, net.relu(fea.clone())):
        corr = torch.nan_to_num(torch.corrcoef(f[0].detach().flatten(1).double()), nan=0.0)
        expect += torch.linalg.eigvalsh(corr).min().item()
    assert get_proxy("meco").fn(probe, resolution=10) == pytest.approx(expect, rel=1e-9)


def test_jacov_by_hand():
    net, batch = make()
    x = batch.x.clone().requires_grad_()
    net(x).sum().backward()
    v = torch.linalg.eigvalsh(torch.corrcoef(x.grad.flatten(1).double()))
    expect = -(torch.log(v + 1e-5) + 1 / (v + 1e-5)).sum().item()
    assert score("jacov", *make()) == pytest.approx(expect, rel=1e-9)


def test_grasp_is_minus_w_times_hessian_gradient():
    net, batch = make(bias=False)
    ws = [net.conv.weight, net.fc.weight]
    sizes = [w.numel() for w in ws]

    def loss_of(flat):
        a, b = flat.split(sizes)
        h = nn.functional.conv2d(batch.x, a.view_as(ws[0]), padding=1).relu().mean((2, 3))
        return nn.functional.cross_entropy(h @ b.view_as(ws[1]).T, batch.y)

    flat = torch.cat([w.detach().flatten() for w in ws])
    g = torch.autograd.functional.jacobian(loss_of, flat)
    _, hg = torch.autograd.functional.hvp(loss_of, flat, g)
    expect = (-flat * hg).sum().item()
    assert score("grasp", *make(bias=False)) == pytest.approx(expect, rel=1e-4, abs=1e-9)


def test_fisher_by_hand():
    net, batch = make()
    conv = net.conv(batch.x)
    conv.retain_grad()
    h = net.relu(conv).mean((2, 3))
    fc = net.fc(h)
    fc.retain_grad()
    nn.functional.cross_entropy(fc, batch.y).backward()
    per_channel_conv = (conv * conv.grad).flatten(2).sum(2).pow(2).mean(0).mul(0.5)
    per_channel_fc = (fc * fc.grad).pow(2).mean(0).mul(0.5)
    per_channel = per_channel_conv.sum().item() + per_channel_fc.sum().item()
    # zero-cost-nas broadcasts each channel's value to the channel's weights (3*3*3 per conv channel,
    # 4 per classifier output) before summing
    per_weight = per_channel_conv.sum().item() * 27 + per_channel_fc.sum().item() * 4
    probe = Probe(*make())
    assert get_proxy("fisher").fn(probe, per_weight=False) == pytest.approx(per_channel, rel=1e-5)
    assert score("fisher", *make()) == pytest.approx(per_weight, rel=1e-5)
