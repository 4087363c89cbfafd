"""NASBenchMacro: arch strings in the benchmark's form, the network against the table's params and FLOPs, the
table reader's errors, the collector's units and the evolve task."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn as nn

from eznas.errors import ArchError, DataError, EznasError
from eznas.spaces import get_space
from eznas.spaces.nbmacro import MacroNetwork, count_params, layer_plan, normal_form, parse_arch

SPACE = get_space("NASBenchMacro")


@pytest.fixture(scope="module")
def table(data_root) -> tuple[str, pd.DataFrame]:
    path = SPACE.default_benchmark(data_root, "cifar10")
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return str(path), pd.read_csv(path, dtype={"arch": str})


def test_the_table_is_read_with_its_leading_zeros(table):
    path, frame = table
    archs = SPACE.load(path, "cifar10")
    assert len(archs) == 600 and archs[0].spec == "00000120" == frame.arch[0]
    assert [a.uid for a in archs[:3]] == ["0", "1", "2"] and archs[0].accuracy == pytest.approx(80.7633)
    assert all(len(a.spec) == 8 for a in archs)
    assert SPACE.load(path, "cifar10", "test_acc_1")[0].accuracy == pytest.approx(80.73)


def test_params_equal_the_table_on_every_row(table, one_thread):
    """The count from the layer plan equals the table's ``params`` on all 600 rows; the built network has that
    many parameters (every 20th row built: building all 600 takes ~5 s and agreed when checked)."""
    _, frame = table
    for arch, params in zip(frame.arch, frame.params):
        assert count_params(parse_arch(arch), 10) == params, arch
    for arch, params in zip(frame.arch[::20], frame.params[::20]):
        assert sum(p.numel() for p in SPACE.build(arch, 10).parameters()) == params, arch
    assert count_params(parse_arch("22222222"), 100) == count_params(parse_arch("22222222"), 10) + 90 * 1281


def macs(net: nn.Module) -> int:
    """Conv2d and Linear multiply-accumulates for one 32x32 image (the authors' ``count_FLOPs``)."""
    total = 0

    def add(module: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * (module.weight[0].numel() if isinstance(module, nn.Conv2d) else module.in_features)

    hooks = [m.register_forward_hook(add) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    return total


def test_flops_equal_the_table(table, one_thread):
    """Strides, padding and kernel sizes as the authors': the multiply-accumulates equal the ``flops`` column."""
    _, frame = table
    for arch, flops in zip(frame.arch[::100], frame.flops[::100]):
        assert macs(SPACE.build(arch, 10)) == flops, arch


def test_layer_plan_and_blocks():
    plan = layer_plan(parse_arch("01100210"))
    assert [(l.c_in, l.c_out, l.stride) for l in plan] == [(32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1),
                                                            (128, 128, 1), (128, 256, 2), (256, 256, 1),
                                                            (256, 256, 1)]
    net = SPACE.build("01100210", 10)
    assert isinstance(net, MacroNetwork) and net.unit_rule == "conv_bn"
    # the identities at stride 1 (positions 3, 4, 7) are no modules; the one at stride 2 is conv1x1 + BN
    assert len(net.cells) == 5 and not any(isinstance(m, nn.Identity) for m in net.modules())
    first, block, residual = net.cells[0], net.cells[3], net.cells[4]
    assert [type(m) for m in first] == [nn.Conv2d, nn.BatchNorm2d] and first[0].stride == (2, 2)
    # k5 e6 from 128 to 256 at stride 2: 768 hidden channels (the expansion applies to the input), no shortcut
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.groups) for c in convs] == [
        (128, 768, (1, 1), (1, 1), (0, 0), 1), (768, 768, (5, 5), (2, 2), (2, 2), 768),
        (768, 256, (1, 1), (1, 1), (0, 0), 1)]
    assert not block.shortcut and residual.shortcut and all(c.bias is None for c in convs)
    assert [m.conv[3].kernel_size for m in (net.cells[1], residual)] == [(3, 3), (3, 3)]
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 1 + 2 * 4 + 1


@pytest.mark.parametrize("spec", ["00000000", "22222222", "00000120", "02100210", "10222100", "01210220"])
def test_good_archs_are_in_the_benchmark_form(spec):
    assert parse_arch(spec) == tuple(int(c) for c in spec) == normal_form(parse_arch(spec))


@pytest.mark.parametrize("spec, message", [
    ("0000012", r"'0000012': expected 8 characters \(0 identity, .*\), got 7 \(a number that lost its leading"),
    ("000001200", "expected 8 characters .* got 9$"),
    ("", "expected 8 characters .* got 0$"),
    ("0000x120", r"'0000x120': bad token 'x' at position 4 \(a layer is one of 0 identity, 1 inverted residual"),
    ("00000-12", "bad token '-' at position 5"),
    ("00001020", r"'00001020': layer '1' at position 4 follows an identity in the stage of positions 2-4: .*"
                 r"the benchmark's form of this network is '00010020'"),
    ("11200102", r"layer '2' at position 7 follows an identity in the stage of positions 5-7: .* is '11200120'"),
    ("10001000", "layer '1' at position 4 follows an identity"),
    (120, r"must be a string of 8 characters .* got int 120"),
])
def test_a_bad_arch_names_the_string_the_position_and_what_is_expected(spec, message):
    with pytest.raises(ArchError, match=message):
        SPACE.build(spec, 10)


def test_a_bad_arch_in_a_table_names_the_row(tmp_path):
    path = tmp_path / "macro.csv"
    path.write_text("arch,mean_acc\n00000120,80.1\n00001020,81.0\n")
    with pytest.raises(ArchError, match=r"macro.csv: row 1 \(file line 3\): NAS-Bench-Macro arch '00001020': layer"):
        SPACE.load(path, "cifar10")


def test_load_errors_name_the_file_the_column_and_the_dataset(tmp_path):
    with pytest.raises(DataError, match=r"benchmark file not found: .*nowhere.csv"):
        SPACE.load(tmp_path / "nowhere.csv", "cifar10")
    path = tmp_path / "macro.csv"
    path.write_text("arch,test_acc_0\n00000120,80.5\n")
    with pytest.raises(DataError, match="macro.csv: missing column 'mean_acc'"):
        SPACE.load(path, "cifar10")
    assert SPACE.load(path, "cifar10", "test_acc_0")[0].spec == "00000120"
    (tmp_path / "other.csv").write_text("genotype,mean_acc\nx,1\n")
    with pytest.raises(DataError, match="other.csv: missing column 'arch'"):
        SPACE.load(tmp_path / "other.csv", "cifar10")
    for dataset in ("cifar100", "ImageNet16-120"):
        with pytest.raises(DataError, match=f"CIFAR-10 only .* not '{dataset}'"):
            SPACE.load(path, dataset)
        with pytest.raises(DataError, match=f"CIFAR-10 only .* not '{dataset}'"):
            SPACE.default_benchmark(tmp_path, dataset)
    assert SPACE.default_benchmark(tmp_path, "cifar10") == tmp_path / "nbmacro" / "nbmacro_dev600_cifar10.csv"


def test_forward_units_and_az_nas_features(one_thread):
    """Logits for a 32x32 batch; every Conv -> BN pair is a collector unit with the conv's input as ``inp``
    (no ReLU inside a unit); AZ-NAS reads the stem and the 8 layers."""
    from eznas.data import Batch
    from eznas.proxies import Probe
    from eznas.proxies.aznas import components, feature_modules
    from eznas.stats import collect
    from eznas.stats.units import find_units

    torch.manual_seed(0)
    net = SPACE.build("01210220", 10)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert net(x).shape == (4, 10)
    convs = [name for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    assert sorted(u.name for u in find_units(net, x)) == sorted(convs) and len(convs) == 1 + 1 + 3 * 5 + 1
    stats = collect(net, Batch(x, torch.zeros(4, dtype=torch.long), 10))
    assert stats.units[0].name == "stem.0" and torch.equal(stats.units[0].tensors["inp_D"], x)
    assert all(torch.equal(u.tensors["inp_D"], u.tensors["pre_D"]) for u in stats.units)
    assert stats.features["n_units"] == len(convs)
    features = feature_modules(net)
    assert features[0] is net.stem and features[1:] == list(net.cells) and len(features) == 1 + 6
    c = components(Probe(net, Batch(x, torch.zeros(4, dtype=torch.long), 10), seed=1), 4)
    assert all(math.isfinite(v) for v in c.values()) and c["expressivity"] > 0


def test_the_evolve_task_is_accepted():
    from eznas.cli import check_tasks, default_tasks

    check_tasks(["NASBenchMacro:cifar10", "NASBench201:cifar10"], "--tasks")
    assert default_tasks()["NASBenchMacro"] == ("NASBenchMacro:cifar10",)
    with pytest.raises(EznasError, match="unknown dataset 'cifar100' for NASBenchMacro"):
        check_tasks(["NASBenchMacro:cifar100"], "--tasks")
