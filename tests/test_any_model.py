"""Models outside our builders: torchvision's classifiers (random weights, 32x32 inputs) and a model written
with functional activations. Every registered per-network proxy and seed program gives a finite score or one
clear error line (never a silent 0, -inf or NaN); eznas.score leaves the model exactly as it was."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import eznas
from eznas.data import Batch
from eznas.errors import EznasError
from eznas.gp.seeds import SEEDS
from eznas.proxies import get_proxy, list_proxies
from eznas.registry import UnknownNameError
from eznas.stats import CollectorConfig, collect
from eznas.stats.units import find_units

TORCHVISION = ("resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "regnet_x_400mf", "convnext_tiny")
# cheaper options where a proxy repeats its passes: the same code path, fewer repetitions
CHEAP = {"swap": "swap:repeats=2", "reg_swap": "reg_swap:repeats=2", "az_expressivity": "az_expressivity:batch=8",
         "az_progressivity": "az_progressivity:batch=8", "az_trainability": "az_trainability:batch=8"}
# what does not apply, and the words its one error line must contain
NOT_APPLICABLE = {("mobilenet_v3_small", "grasp"): "second derivatives",
                  ("convnext_tiny", "reg_swap:repeats=2"): "size prior"}  # 28M params: exp(-(27830-1000)^2/1e6) = 0


class Functional(nn.Module):
    """Convs and norms as modules, every activation a functional call (F.relu in place, F.gelu, x.relu_()),
    a residual sum, and a GroupNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.b2 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.GroupNorm(4, 16)
        self.c3, self.b3 = nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.c4 = nn.Conv2d(16, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.b1(self.c1(x)), inplace=True)
        x = F.gelu(self.b2(self.c2(x)))
        x = x + self.b3(self.c3(x)).relu_()
        x = self.c4(torch.relu(x))
        return self.fc(x.mean((2, 3)))


def images(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def per_network_proxies() -> list[str]:
    names = [n for n in list_proxies() if get_proxy(n).pool is None and not get_proxy(n).arch_only]
    return [CHEAP.get(n, n) for n in names]


def snapshot(model: nn.Module) -> dict:
    return {"state": {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()},
            "modes": [m.training for m in model.modules()],
            "requires_grad": [p.requires_grad for p in model.parameters()],
            "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()]}


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert before["state"].keys() == after["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), f"{k} changed"
    assert before["modes"] == after["modes"] and before["requires_grad"] == after["requires_grad"]
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(before["grads"], after["grads"]))


@pytest.mark.parametrize("name", [*TORCHVISION, "functional"])
def test_every_proxy_and_seed_program_scores_or_says_why(name, tv_models):
    torch.manual_seed(0)
    model = Functional() if name == "functional" else getattr(tv_models, name)(num_classes=10)
    model.eval()  # a user's model as it comes: eval mode, one layer frozen
    next(model.parameters()).requires_grad_(False)
    before = snapshot(model)
    x, y = images()
    for spec in [*per_network_proxies(), *SEEDS.values()]:
        is_program = spec in SEEDS.values()
        kwargs = {"programs": (spec,), "proxies": ()} if is_program else {"proxies": (spec,)}
        expected = NOT_APPLICABLE.get((name, spec))
        if expected:
            with pytest.raises(EznasError, match=expected) as err:
                eznas.score(model, x, y, **kwargs)
            assert "\n" not in str(err.value) and spec in str(err.value)
            continue
        value = eznas.score(model, x, y, **kwargs)[spec]
        assert math.isfinite(value), (name, spec, value)
        assert value != 0 or spec in ("params",), (name, spec)  # no silent zero
    assert_unchanged(model, before)


def test_units_and_activation_sites_of_functional_calls():
    """Under the ``layer`` rule (a model that declares none) every conv is a unit: ``pre`` its input, ``inp``
    the input of the activation it reads (else ``pre``), ``act`` the norm's output (else the conv's)."""
    torch.manual_seed(0)
    net = Functional()
    x, y = images(4)
    units = find_units(net, x)
    assert [u.name for u in units] == ["c1", "c2", "c3", "c4"]
    assert [u.activation for u in units] == [False, True, True, True]
    assert [type(u.norm).__name__ for u in units] == ["BatchNorm2d", "GroupNorm", "BatchNorm2d", "NoneType"]
    stats = collect(net, Batch(x, y, 10), CollectorConfig(names=("inp_D", "pre_D", "act_D", "inp_grad_D", "pre_grad_D")))
    c1, c2, c3, c4 = (u.tensors for u in stats.units)
    assert torch.equal(c1["inp_D"], x) and torch.equal(c1["pre_D"], x)
    assert torch.equal(c2["pre_D"], torch.relu(c2["inp_D"]))  # the in-place F.relu's input survived
    assert torch.equal(c3["pre_D"], F.gelu(c3["inp_D"]))
    with torch.no_grad():
        assert torch.allclose(c4["act_D"], net.c4(c4["pre_D"]))  # no norm: the conv's own output
        # the gradient reaching the activation's input is the ReLU's share of the conv's input gradient
    assert torch.equal(c4["inp_grad_D"], c4["pre_grad_D"] * (c4["inp_D"] > 0))


def test_swap_and_naswot_see_functional_activations_like_modules():
    """A functional ReLU and an nn.ReLU give the same SWAP and NASWOT."""
    class Modules(Functional):
        def __init__(self) -> None:
            super().__init__()
            self.relu, self.gelu = nn.ReLU(inplace=True), nn.GELU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.relu(self.b1(self.c1(x)))
            x = self.gelu(self.b2(self.c2(x)))
            x = x + self.relu(self.b3(self.c3(x)))
            x = self.c4(self.relu(x))
            return self.fc(x.mean((2, 3)))

    torch.manual_seed(0)
    functional = Functional()
    modules = Modules()
    modules.load_state_dict(functional.state_dict())
    x, y = images()
    a = eznas.score(functional, x, y, proxies=("swap:repeats=2", "naswot"))
    b = eznas.score(modules, x, y, proxies=("swap:repeats=2", "naswot"))
    assert a == b and a["swap:repeats=2"] > 1


def test_stage_features_for_aznas(tv_models):
    """Without cells, AZ-NAS's features are the stage outputs: one per resolution (of more than one pixel)."""
    from eznas.proxies.aznas import feature_maps

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    sizes = [tuple(f.shape[1:]) for f in feature_maps(tv_models.resnet18(num_classes=10), x)]
    assert sizes == [(64, 16, 16), (64, 8, 8), (128, 4, 4), (256, 2, 2)]  # bn1, layer1, layer2, layer3
    sizes = [tuple(f.shape[2:]) for f in feature_maps(tv_models.mobilenet_v3_small(num_classes=10), x)]
    assert sizes == [(16, 16), (8, 8), (4, 4), (2, 2)]


def test_bad_input_is_one_line():
    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3 * 32 * 32, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.flatten(1))

    x, y = images(4)
    for kwargs, words in (({"proxies": ("swap",)}, "SWAP needs activations"),
                          ({"proxies": ("naswot",)}, "NASWOT needs activations"),
                          ({"proxies": ("az_expressivity",)}, "AZ-NAS needs at least two stages"),
                          ({"proxies": (), "programs": ("sum_units(corr_min_eig(pre_N))",)}, "does not apply"),
                          ({"proxies": ("snip",), "labels": None}, "needs labels"),
                          ({"proxies": ("az_nas",)}, "score_pool")):
        labels = kwargs.pop("labels", y)
        with pytest.raises(EznasError, match=words) as err:
            eznas.score(MLP(), x, labels, **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(UnknownNameError, match="unknown proxy 'nosuch'.*valid: .*meco"):
        eznas.score(MLP(), x, y, proxies=("nosuch",))


def test_score_pool_ranks_models_and_matches_score(tv_models):
    torch.manual_seed(0)
    models = [Functional(), Functional(), tv_models.mobilenet_v3_small(num_classes=10)]
    x, y = images()
    pool = eznas.score_pool(models, x, y, proxies=("az_nas", "meco"))
    assert len(pool["az_nas"]) == 3 and all(math.isfinite(v) for v in pool["az_nas"])
    assert pool["meco"] == [eznas.score(m, x, y, proxies=("meco",))["meco"] for m in models]


WINNER = ("net_add(net_add(net_rank(net_add(net_add(net_log(sum_units(corr_min_eig(pre_N))), net_scale(net_log("
          "zc_synflow), 0.0325)), net_scale(net_log(zc_az_expressivity), 4.79))), net_scale(net_rank(net_sub(net_rank("
          "net_div(zc_synflow, zc_az_expressivity)), net_log(net_pow(zc_az_progressivity, 2.0)))), 1.0)), net_scale("
          "net_rank(net_sub(net_add(flops, swap_units(pre_grad_N)), meanlog_units(mul(std(sign(inp_grad_P)), "
          "heaviside(pre_grad_P))))), 0.5))")  # a default run's winner (GP seed 1): statistics and proxy terminals


def test_an_exported_winner_scores_torchvision_models_as_eznas_does(tv_models, tmp_path, monkeypatch):
    """The exported best_proxy.py of a pool program over statistics and AZ-NAS/synflow terminals gives finite
    scores on models outside our builders, the same as eznas.score_pool."""
    import importlib.util
    import sys

    from eznas.gp.export import export_source
    from eznas.gp.parse import parse_program

    path = tmp_path / "best_proxy.py"
    path.write_text(export_source(parse_program(WINNER), signal="logits_sum", noise_seed=0, perturbation=0.1,
                                  doc="test"))
    spec = importlib.util.spec_from_file_location("best_proxy_tv", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "best_proxy_tv", module)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    nets = [tv_models.mobilenet_v3_small(num_classes=10), tv_models.regnet_x_400mf(num_classes=10), Functional()]
    x, y = images(16)
    expected = eznas.score_pool(nets, x, y, programs=(WINNER,))[WINNER]
    exported = module.score_pool(nets, x, y)
    assert all(math.isfinite(v) for v in exported) and exported == pytest.approx(expected)
