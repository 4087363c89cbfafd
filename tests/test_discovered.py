"""eznas's discovered proxies, shipped by name (issue 39): registered through the plugin entry point, with
their provenance, chosen by validation fitness, usable wherever a proxy is."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

import bench_discovery
import eznas
from eznas.errors import DataError, EznasError
from eznas.gp import discovered
from eznas.proxies import get_proxy, list_proxies
from eznas.registry import Registry


def test_the_shipped_proxies_are_registered_with_their_provenance():
    names = discovered.names()
    assert names[0] == "discovered" and {"discovered_s0", "discovered_s1", "discovered_s2"} <= set(names)
    assert set(names) <= set(list_proxies()) and not set(names) & set(discovered.hand_made())
    default = discovered.provenance("discovered")
    seeds = [discovered.provenance(n) for n in names[1:]]
    assert default["default_of"] == max(seeds, key=lambda e: e["validation_fitness"])["name"]  # never by test
    assert default["program"] == discovered.provenance(default["default_of"])["program"]
    proxy = get_proxy("discovered")
    assert proxy.pool is not None and f"GP seed {default['gp_seed']}" in proxy.doc and "provenance" in proxy.doc
    with pytest.raises(KeyError, match="shipped: discovered"):
        discovered.provenance("discoverd")


def conv_net(width: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Conv2d(width, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


def test_a_discovered_proxy_scores_as_its_program_does():
    torch.manual_seed(0)
    models, images = [conv_net(w) for w in (4, 8, 12)], torch.randn(8, 3, 16, 16)
    text = discovered.provenance("discovered_s0")["program"]
    by_name = eznas.score_pool(models, images, proxies=("discovered_s0",))["discovered_s0"]
    by_text = eznas.score_pool(models, images, programs=(text,))[text]
    assert by_name == pytest.approx(by_text, rel=1e-12)


def results(validations: dict[int, float], tests: dict[int, float]) -> dict:
    seeds = {str(s): {"run": f"r{s}", "hall_of_fame": [{
        "exported": f"net_scale(params, {s + 1}.0)", "fitness": 0.5, "fitness_per_task": {"NASBench201:cifar10": 0.5},
        "validation_fitness": v, "validation_per_task": {"NASBench201:cifar10": v}}]} for s, v in validations.items()}
    test = {"t": {"task": "NASBench201:cifar10", "batch_size": 16, "n_archs": 9, "proxies": {
        f"net_scale(params, {s + 1}.0)": {"spearman": r, "kendall": r, "ci95": {}, "n": 9} for s, r in tests.items()}}}
    return {"seeds": seeds, "test": test}


def test_ship_picks_the_default_by_validation_never_by_test(tmp_path):
    out = tmp_path / "discovered.json"
    shipped = bench_discovery.ship(results({0: 0.7, 1: 0.6}, {0: 0.80, 1: 0.95}), out)
    assert [e["name"] for e in shipped] == ["discovered", "discovered_s0", "discovered_s1"]
    assert shipped[0]["default_of"] == "discovered_s0" and shipped[0]["gp_seed"] == 0  # the better validation
    assert shipped[1]["test"]["NASBench201:cifar10 b16 (n=9)"]["spearman"] == 0.80
    assert shipped[1]["config_recorded"] is False and shipped[1]["signal"] == "logits_sum"
    assert [e["name"] for e in discovered.shipped(out)] == ["discovered", "discovered_s0", "discovered_s1"]


def test_a_bad_shipped_file_names_the_field(tmp_path):
    bad = tmp_path / "discovered.json"
    bad.write_text(json.dumps({"proxies": [{"name": "x", "program": "params"}]}))
    with pytest.raises(DataError, match=r"proxies\[0\]\.gp_seed is missing"):
        discovered.shipped(bad)
    bad.write_text("{")
    with pytest.raises(DataError, match="no readable list 'proxies'"):
        discovered.shipped(bad)


def test_a_registry_loads_its_plugins_once_on_first_use(monkeypatch):
    calls = []
    registry: Registry[int] = Registry("thing", plugins="eznas.test-things")

    def register() -> None:
        calls.append(1)
        registry.register("plugged")(2)
        assert "plugged" in registry  # a plugin sees the registry as it is while loading

    points = {"eznas.test-things": [SimpleNamespace(name="mine", value="m:register", load=lambda: register)]}
    monkeypatch.setattr("eznas.registry.entry_points", lambda group: points.get(group, []))
    registry.register("own")(1)
    assert calls == [] and registry.names() == ["own", "plugged"] and registry.get("plugged") == 2
    assert len(registry) == 2 and calls == [1]

    def broken() -> None:
        raise ImportError("no module named mypackage")

    points["eznas.test-things"] = [SimpleNamespace(name="bad", value="mypackage:register", load=broken)]
    with pytest.raises(EznasError, match="thing plugin bad .mypackage:register, entry-point group eznas.test-things. "
                                         "failed to load: ImportError: no module named mypackage"):
        Registry("thing", plugins="eznas.test-things").names()
