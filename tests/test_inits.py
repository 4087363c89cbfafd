"""The one registry of weight initialisations (eznas.inits, issue 40): each recipe's distribution, its draws
pinned (cached values depend on them: VALUES_VERSION), and every call site using the registry's functions."""
import pytest
import torch
import torch.nn as nn

from eznas.inits import INITS, gaussian_init_, get_init, kaiming_fan_in_, kaiming_init_, list_inits
from eznas.registry import UnknownNameError

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def tiny() -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(4, 3))


def state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_registered_names():
    assert list_inits() == ["default", "gaussian", "kaiming", "kaiming_fan_in"]
    for name in list_inits():
        assert get_init(name).__doc__.strip(), name


@pytest.mark.parametrize("name", list_inits())
def test_each_init_is_deterministic_given_a_generator(name):
    a, b = tiny(), tiny()
    get_init(name)(a, torch.Generator().manual_seed(3))
    get_init(name)(b, torch.Generator().manual_seed(3))
    assert same(state(a), state(b))
    c = tiny()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        get_init(name)(c, None)
        d = tiny()
        torch.manual_seed(5)
        get_init(name)(d, None)
    assert same(state(c), state(d))
    assert same(state(a), state(tiny())) == (name == "default")  # only PyTorch's default leaves the net as built


# the draws before issue 40 (the functions then in proxies/evolved.py, networks.py, proxies/swap.py and
# proxies/aznas.py, on tiny()): conv weight[0, 0, 0] and linear weight[0]
PINNED = {
    ("kaiming", "generator"): ([-0.26536300778388977, -0.2716138958930969, -0.059061937034130096],
                               [0.01892910525202751, 0.03111044131219387, -0.0045839580707252026, -0.0033598807640373707]),
    ("kaiming", "global"): ([-0.3595864176750183, -0.17683133482933044, -0.1541447788476944],
                            [0.005009211599826813, 0.005437674932181835, -0.004057423677295446, 0.01134051475673914]),
    ("gaussian", "generator"): ([-1.1258398294448853, -1.152360200881958, -0.2505785822868347],
                                [1.8929104804992676, 3.11104416847229, -0.4583958089351654, -0.3359880745410919]),
    ("kaiming_fan_in", "generator"): ([-0.3911433219909668, 0.0436735562980175, 0.8152533769607544],
                                      [-0.4978959858417511, 0.5989106297492981, 1.4788589477539062, 0.2756322920322418]),
    ("kaiming_fan_in", "global"): ([-0.4152146279811859, -0.20418724417686462, -0.17799106240272522],
                                   [0.3542047441005707, 0.3845016658306122, -0.2869032025337219, 0.8018954992294312]),
}


@pytest.mark.parametrize("name, path", sorted(PINNED))
def test_the_draws_are_those_cached_values_were_made_with(name, path):
    net = tiny()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        get_init(name)(net, torch.Generator().manual_seed(0) if path == "generator" else None)
    assert (net[0].weight[0, 0, 0].tolist(), net[5].weight[0].tolist()) == PINNED[name, path]


@pytest.mark.parametrize("generator", [None, torch.Generator().manual_seed(0)], ids=["global", "generator"])
def test_kaiming_is_eznas_fan_out_recipe(generator):
    net = nn.Sequential(nn.Conv2d(64, 256, 3), nn.BatchNorm2d(256), nn.Linear(512, 1000))
    kaiming_init_(net, generator)
    w = net[0].weight
    assert w.std().item() == pytest.approx((2.0 / (256 * 9)) ** 0.5, rel=0.02)
    assert abs(w.mean().item()) < 1e-3
    assert net[2].weight.std().item() == pytest.approx(0.01, rel=0.02) and not net[2].bias.any()
    assert torch.equal(net[1].weight, torch.ones(256)) and not net[1].bias.any()


def test_kaiming_fan_in_is_az_nas_recipe():
    net = nn.Sequential(nn.Conv2d(256, 64, 3), nn.GroupNorm(4, 64), nn.Linear(1000, 512))
    kaiming_fan_in_(net, torch.Generator().manual_seed(0))
    assert net[0].weight.std().item() == pytest.approx((2.0 / (256 * 9)) ** 0.5, rel=0.02)
    assert net[2].weight.std().item() == pytest.approx((2.0 / 1000) ** 0.5, rel=0.02)
    assert not net[0].bias.any() and not net[2].bias.any()
    assert torch.equal(net[1].weight, torch.ones(64)) and not net[1].bias.any()


def test_gaussian_is_swaps_standard_normal():
    net = nn.Sequential(nn.Conv2d(64, 256, 3), nn.BatchNorm2d(256), nn.Linear(512, 1000))
    with torch.no_grad():
        net[1].weight.fill_(3.0), net[1].bias.fill_(2.0)
    gaussian_init_(net, torch.Generator().manual_seed(0))
    for layer in (net[0], net[2]):
        assert layer.weight.std().item() == pytest.approx(1.0, rel=0.02)
        assert abs(layer.weight.mean().item()) < 0.01 and not layer.bias.any()
    assert torch.equal(net[1].weight, torch.ones(256)) and not net[1].bias.any()


def test_an_unknown_name_errors_listing_the_valid_ones():
    with pytest.raises(UnknownNameError) as err:
        get_init("kaiming_normal")
    assert str(err.value).startswith("unknown init 'kaiming_normal'")
    assert "valid: default, gaussian, kaiming, kaiming_fan_in" in str(err.value)

    from eznas.networks import build_network
    from eznas.spaces import get_space
    from eznas.spaces.base import Arch
    with pytest.raises(UnknownNameError, match="unknown init 'xavier'"):
        build_network(get_space("NASBench201"), Arch("a", NB201, 0.0), 10, 0, "xavier")


def test_the_call_sites_use_the_registry(monkeypatch):
    from eznas.cli.verify import verify_parser
    from eznas.networks import arch_seed, build_network
    from eznas.proxies import aznas, evolved, swap
    from eznas.spaces import get_space
    from eznas.spaces.base import Arch

    assert evolved.kaiming_init_ is get_init("kaiming")  # the eznas proxy
    assert swap.gaussian_init_ is get_init("gaussian")  # swap, reg_swap
    assert aznas.kaiming_fan_in_ is get_init("kaiming_fan_in")  # az_*
    seen = []
    monkeypatch.setitem(INITS._items, "test_marker", lambda net, generator: seen.append((type(net), generator)))
    (init,) = [a for a in verify_parser()._actions if a.dest == "init"]
    assert list(init.choices) == list_inits() and "test_marker" in init.choices and init.default == "default"
    space, arch = get_space("NASBench201"), Arch("a", NB201, 0.0)
    build_network(space, arch, 10, 0, "test_marker")
    assert len(seen) == 1 and seen[0][1] is None  # build_network draws on the global RNG it seeds
    net = build_network(space, arch, 10, 4, "kaiming")
    torch.manual_seed(arch_seed(4, arch.uid))
    ref = space.build(arch.spec, 10)
    kaiming_init_(ref, None)
    assert same(state(net), state(ref))


def test_the_portable_export_carries_the_init_without_its_registration():
    from eznas.gp.closure import closure

    _, defs = closure([kaiming_fan_in_])
    (source,) = defs
    assert source.startswith("def kaiming_fan_in_(") and "register_init" not in source
    namespace = {"torch": torch, "nn": nn}
    exec(source, namespace)
    a, b = tiny(), tiny()
    namespace["kaiming_fan_in_"](a, torch.Generator().manual_seed(0))
    kaiming_fan_in_(b, torch.Generator().manual_seed(0))
    assert same(state(a), state(b))


def test_verify_checks_the_init_name():
    from eznas.errors import EznasError
    from eznas.verify.config import VerifyConfig, check_config

    with pytest.raises(EznasError, match="--init 'xavier' is not an initialisation; valid: default, gaussian, kaiming"):
        check_config(VerifyConfig(init="xavier"))  # what --set init=xavier makes
    check_config(VerifyConfig(init="gaussian"))
