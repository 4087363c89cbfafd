"""DARTS and NDS spaces: genotype parsing, the op table, the network, and the benchmark loaders."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from eznas.errors import ArchError, DataError, EznasError
from eznas.spaces import SpaceOptions, get_space
from eznas.spaces import ops
from eznas.spaces.darts_genotype import make_genotype, parse_genotype
from eznas.spaces.darts_network import Cell
from eznas.spaces.darts_ops import OPS

DARTS_CSV = Path("/work/shared/data/nds/darts_swap500_cifar10.csv")
needs_csv = pytest.mark.skipif(not DARTS_CSV.is_file(), reason=f"{DARTS_CSV} not present")

DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('max_pool_3x3', 1)], reduce_concat=range(2, 6))"
)


def param_count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def forward(net: torch.nn.Module, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(0)
    with torch.no_grad():
        return net.eval()(torch.randn(batch, 3, 32, 32))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny forwards run faster on one thread, and a busy shared 2-core box cannot stall OpenMP barriers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def real_archs():
    return get_space("DARTS").load(DARTS_CSV, "cifar10")


# --- genotype strings -------------------------------------------------------------------------------


def test_parse_darts_v2_with_range_concat():
    g = parse_genotype(DARTS_V2)
    assert len(g.normal) == 8 and g.normal[7] == ("dil_conv_3x3", 2)
    assert g.normal_concat == (2, 3, 4, 5) and g.reduce_concat == (2, 3, 4, 5)
    assert parse_genotype(str(g)) == g  # str() writes the DARTS form back


def test_parse_accepts_positional_fields_and_module_prefix():
    g = parse_genotype(DARTS_V2)
    positional = f"genotypes.Genotype({list(g.normal)!r}, [2, 3, 4, 5], {list(g.reduce)!r}, [2, 3, 4, 5])"
    assert parse_genotype(positional) == g


@pytest.mark.parametrize(
    "spec, token",
    [
        (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_9x9', 2)"), "'dil_conv_9x9'"),
        (DARTS_V2.replace("('sep_conv_3x3', 1), ('sep_conv_3x3', 0)", "('sep_conv_3x3', 2), ('sep_conv_3x3', 0)", 1),
         "bad input index 2"),
        (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 6)"), "bad input index 6"),
        (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', -1)"), "bad input index -1"),
        (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4, 9]"), "bad index 9"),
        (DARTS_V2.replace(", ('dil_conv_3x3', 2)]", "]"), "7 edges"),
        (DARTS_V2.replace("reduce_concat=range(2, 6)", "reduce_concat=__import__('os')"), "__import__('os')"),
        (DARTS_V2.replace("normal_concat", "nromal_concat"), "'nromal_concat'"),
        (DARTS_V2.replace(", reduce_concat=range(2, 6)", ""), "'reduce_concat'"),
        ("hello world", "'world'"),
        ("Genotype(normal=[('sep_conv_3x3', 0),, ])", "','"),
        ("print('hi')", "expected Genotype"),
        ("", "not a Genotype"),
    ],
)
def test_bad_genotype_names_the_bad_token(spec, token):
    with pytest.raises(ArchError) as info:
        parse_genotype(spec)
    message = str(info.value)
    assert token in message and "\n" not in message


def test_make_genotype_from_json_lists():
    g = make_genotype([["conv_7x1_1x7", 0], ["skip_connect", 1]], [2], [["avg_pool_3x3", 0], ["none", 1]], [2],
                      where="test")
    assert g.normal == (("conv_7x1_1x7", 0), ("skip_connect", 1)) and g.reduce_concat == (2,)
    with pytest.raises(ArchError, match=r"test: bad op 'conv_2x2'"):
        make_genotype([["conv_2x2", 0], ["skip_connect", 1]], [2], [["none", 0], ["none", 1]], [2], where="test")


# --- ops and cells ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_keeps_shape_at_stride_1_and_halves_at_stride_2(name):
    x = torch.randn(2, 6, 8, 8)
    assert OPS[name](6, 1)(x).shape == (2, 6, 8, 8)
    assert OPS[name](6, 2)(x).shape == (2, 6, 4, 4)


def test_reduction_cell_halves_resolution_and_normal_cell_keeps_it():
    g = parse_genotype(DARTS_V2)
    s0, s1 = torch.randn(2, 12, 16, 16), torch.randn(2, 20, 16, 16)
    reduce = Cell(g.reduce, g.reduce_concat, 12, 20, 8, reduction=True, reduction_prev=False)
    assert reduce(s0, s1).shape == (2, 4 * 8, 8, 8)
    normal = Cell(g.normal, g.normal_concat, 12, 20, 8, reduction=False, reduction_prev=False)
    assert normal(s0, s1).shape == (2, 4 * 8, 16, 16)
    after_reduce = Cell(g.normal, g.normal_concat, 12, 20, 8, reduction=False, reduction_prev=True)
    assert after_reduce(torch.randn(2, 12, 32, 32), s1).shape == (2, 32, 16, 16)


# --- DARTS space on the real CSV --------------------------------------------------------------------


@needs_csv
def test_all_real_genotypes_parse(real_archs):
    assert len(real_archs) == 500
    assert [a.uid for a in real_archs[:3]] == ["0", "1", "2"]
    assert all(10.0 <= a.accuracy <= 87.0 for a in real_archs)
    genotypes = [parse_genotype(a.spec) for a in real_archs]
    assert all(len(g.normal) == 8 and g.reduce == g.normal for g in genotypes)  # per PROVENANCE.md
    assert {op for g in genotypes for op, _ in g.normal} >= {"none", "sep_conv_5x5", "dil_conv_5x5", "max_pool_3x3"}


@needs_csv
@pytest.mark.parametrize("probe", ["swap", "none"])
def test_real_sample_builds_and_gives_finite_logits(real_archs, probe):
    space = get_space("DARTS", SpaceOptions(probe=probe))
    for arch in real_archs[::50]:
        logits = forward(space.build(arch.spec, num_classes=10))
        assert logits.shape == (2, 10) and torch.isfinite(logits).all(), arch.uid


def test_default_benchmark_and_other_datasets(tmp_path):
    space = get_space("DARTS")
    assert space.default_benchmark(tmp_path, "cifar10") == tmp_path / "nds" / "darts_swap500_cifar10.csv"
    with pytest.raises(DataError, match="CIFAR-10 only"):
        space.default_benchmark(tmp_path, "cifar100")
    assert forward(space.build(DARTS_V2, num_classes=100)).shape == (2, 100)


def test_csv_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "archs.csv"
    path.write_text(f'genotype,acc\n"{DARTS_V2}",90.5\n')
    with pytest.raises(DataError) as info:
        get_space("DARTS").load(path, "cifar10")
    assert str(path) in str(info.value) and "'valid_acc'" in str(info.value)
    archs = get_space("DARTS").load(path, "cifar10", accuracy_key="acc")
    assert archs[0].uid == "0" and archs[0].accuracy == 90.5


def test_csv_uid_column_keeps_a_subsets_uids_and_bad_ones_name_the_row(tmp_path):
    """A subset of a row-numbered table (a benchmark's test archs) keeps its archs' uids, so their seeds."""
    path = tmp_path / "subset.csv"
    path.write_text(f'genotype,valid_acc,uid\n"{DARTS_V2}",90.5,182\n"{DARTS_V2}",,7\n"{DARTS_V2}",91.0,426\n')
    assert [a.uid for a in get_space("DARTS").load(path, "cifar10")] == ["182", "426"]
    for bad, says in (("182", "'182' repeats an earlier"), ("-3", "'-3' is not a whole"), ("x", "'x' is not a whole")):
        path.write_text(f'genotype,valid_acc,uid\n"{DARTS_V2}",90.5,182\n"{DARTS_V2}",91.0,{bad}\n')
        with pytest.raises(DataError, match=rf"row 1 \(file line 3\): uid {says}"):
            get_space("DARTS").load(path, "cifar10")


def test_csv_bad_genotype_names_the_row(tmp_path):
    path = tmp_path / "archs.csv"
    bad = DARTS_V2.replace("max_pool_3x3", "max_pool_4x4", 1)
    path.write_text(f'genotype,valid_acc\n"{DARTS_V2}",90.5\n"{bad}",80.0\n')
    with pytest.raises(ArchError, match=r"row 1 .*'max_pool_4x4'"):
        get_space("DARTS").load(path, "cifar10")


def test_width_and_cells_options_change_the_network():
    default = param_count(get_space("DARTS").build(DARTS_V2, 10))
    wider = param_count(get_space("DARTS", SpaceOptions(width=24)).build(DARTS_V2, 10))
    deeper = get_space("DARTS", SpaceOptions(cells=11)).build(DARTS_V2, 10)
    assert wider > default and param_count(deeper) > default
    assert len(deeper.cells) == 11 and [c.reduction for c in deeper.cells].count(True) == 2
    with pytest.raises(ArchError, match="width"):
        get_space("DARTS", SpaceOptions(width=0)).build(DARTS_V2, 10)


def test_swap_probe_network_is_one_stemless_reduction_cell_of_width_3():
    """SWAP's correlation.py: Network(3, 10, 1, genotype) -- the image goes straight into one cell."""
    space = get_space("DARTS", SpaceOptions(probe="swap"))
    net = space.build(DARTS_V2, 10)
    assert isinstance(net.stem, torch.nn.Identity) and len(net.cells) == 1 and net.cells[0].reduction
    first = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][0]
    assert first.in_channels == 3 and first.out_channels == 6  # width 3, doubled by the reduction
    assert 300 <= param_count(net) <= 2700 and forward(net).shape == (2, 10)
    assert space.tag == "DARTS-probe-swap" and get_space("DARTS").tag == "DARTS-probe-swap"  # the default
    assert param_count(get_space("DARTS").build(DARTS_V2, 10)) == param_count(net)
    wider = get_space("DARTS", SpaceOptions(probe="swap", width=8)).build(DARTS_V2, 10)
    assert isinstance(wider.stem, torch.nn.Identity) and param_count(wider) > param_count(net)
    standard = get_space("DARTS", SpaceOptions(probe="none"))
    assert standard.tag == "DARTS" and len(standard.build(DARTS_V2, 10).cells) == 8
    with pytest.raises(EznasError, match="unknown probe network 'tiny'; valid: swap, none"):
        get_space("DARTS", SpaceOptions(probe="tiny"))


@needs_csv
def test_swap_probe_networks_of_the_csv_are_small():
    space = get_space("DARTS", SpaceOptions(probe="swap"))
    counts = [param_count(space.build(a.spec, 10)) for a in space.load(DARTS_CSV, "cifar10")[:40]]
    assert 300 <= min(counts) < max(counts) <= 2700


# --- NDS --------------------------------------------------------------------------------------------

PNAS_LIKE = {  # 5 nodes, every node output concatenated
    "normal": [["sep_conv_5x5", 0], ["max_pool_3x3", 0], ["sep_conv_7x7", 1], ["max_pool_3x3", 1],
               ["sep_conv_5x5", 1], ["sep_conv_3x3", 1], ["sep_conv_3x3", 4], ["max_pool_3x3", 1],
               ["conv_7x1_1x7", 0], ["skip_connect", 1]],
    "normal_concat": [2, 3, 4, 5, 6],
    "reduce": [["sep_conv_5x5", 0], ["max_pool_3x3", 0], ["sep_conv_7x7", 1], ["max_pool_3x3", 1],
               ["dil_conv_3x3", 1], ["sep_conv_3x3", 1], ["sep_conv_3x3", 4], ["max_pool_3x3", 1],
               ["sep_conv_3x3", 0], ["skip_connect", 1]],
    "reduce_concat": [2, 3, 4, 5, 6],
}
AMOEBA_LIKE = {  # 5 nodes, only the loose ends concatenated
    "normal": [["avg_pool_3x3", 0], ["conv_7x1_1x7", 1], ["sep_conv_3x3", 2], ["sep_conv_5x5", 0],
               ["dil_sep_conv_3x3", 2], ["dil_sep_conv_3x3", 2], ["skip_connect", 4], ["dil_sep_conv_3x3", 4],
               ["conv_7x1_1x7", 2], ["sep_conv_3x3", 4]],
    "normal_concat": [3, 5, 6],
    "reduce": [["avg_pool_3x3", 0], ["dil_sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 0],
               ["skip_connect", 2], ["sep_conv_7x7", 0], ["conv_7x1_1x7", 4], ["skip_connect", 4],
               ["conv_7x1_1x7", 0], ["conv_7x1_1x7", 5]],
    "reduce_concat": [3, 6],
}
NASNET_LIKE = {
    "normal": [["conv_3x1_1x3", 0], ["conv_1x1", 1], ["max_pool_5x5", 1], ["conv_3x3", 0],
               ["max_pool_7x7", 2], ["avg_pool_3x3", 3], ["sep_conv_7x7", 1], ["dil_conv_3x3", 4],
               ["skip_connect", 5], ["conv_7x1_1x7", 0]],
    "normal_concat": [6],
    "reduce": [["conv_3x1_1x3", 0], ["conv_1x1", 1], ["max_pool_5x5", 1], ["conv_3x3", 0],
               ["max_pool_7x7", 2], ["avg_pool_3x3", 3], ["sep_conv_7x7", 1], ["dil_conv_3x3", 4],
               ["skip_connect", 5], ["max_pool_3x3", 0]],
    "reduce_concat": [6],
}
DARTS_LIKE = {  # 4 nodes
    "normal": [["sep_conv_3x3", 1], ["dil_conv_5x5", 0], ["skip_connect", 0], ["sep_conv_5x5", 2],
               ["avg_pool_3x3", 3], ["max_pool_3x3", 1], ["dil_conv_3x3", 4], ["sep_conv_3x3", 2]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["max_pool_3x3", 0], ["sep_conv_5x5", 1], ["skip_connect", 2], ["dil_conv_3x3", 0],
               ["avg_pool_3x3", 1], ["sep_conv_3x3", 3], ["sep_conv_3x3", 4], ["skip_connect", 1]],
    "reduce_concat": [2, 3, 4, 5],
}


def nds_record(genotype: dict, width: int, depth: int, errors: list[float]) -> dict:
    """One record in the official NDS layout (extra fields as in the released files)."""
    net = {"genotype": json.loads(json.dumps(genotype)), "width": width, "depth": depth, "aux": False, "drop_prob": 0.0}
    return {"net": net, "test_ep_top1": errors, "min_test_top1": min(errors), "params": 0.0}


def write_nds(root: Path, file: str, data) -> Path:
    path = root / "nds" / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def nds_root(tmp_path):
    write_nds(tmp_path, "PNAS.json", [nds_record(PNAS_LIKE, 8, 5, [60.0, 12.5, 8.25]),
                                      nds_record(AMOEBA_LIKE, 6, 4, [50.0, 9.0])])
    wrapped = {"top": [nds_record(DARTS_LIKE, 8, 5, [40.0, 5.5])],
               "mid": [nds_record(DARTS_LIKE, 6, 3, [30.0, 7.0]), nds_record(NASNET_LIKE, 4, 3, [20.0])]}
    write_nds(tmp_path, "DARTS.json", wrapped)
    return tmp_path


def test_nds_round_trip_load_build_forward(nds_root):
    space = get_space("NDS", SpaceOptions(nds_space="PNAS"))
    archs = space.load(space.default_benchmark(nds_root, "cifar10"), "cifar10")
    assert [a.uid for a in archs] == ["0", "1"]
    assert [a.accuracy for a in archs] == [pytest.approx(91.75), pytest.approx(91.0)]
    for arch, channels in zip(archs, (5 * 4 * 8, 3 * 4 * 6)):  # last (normal) cell: concat length x 4C
        net = space.build(arch.spec, num_classes=10)
        assert net.classifier.in_features == channels
        logits = forward(net)
        assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    assert json.loads(archs[1].spec)["genotype"]["reduce_concat"] == [3, 6]


def test_nds_wrapped_top_mid_layout_and_nds_prefixed_name(nds_root):
    space = get_space("NDS", SpaceOptions(nds_space="nds_darts"))
    assert space.tag == "NDS-DARTS"
    path = space.default_benchmark(nds_root, "cifar10")
    assert path == nds_root / "nds" / "DARTS.json"
    archs = space.load(path, "cifar10")
    assert [a.accuracy for a in archs] == [pytest.approx(94.5), pytest.approx(93.0), pytest.approx(80.0)]
    assert [len(space.build(a.spec, 10).cells) for a in archs] == [5, 3, 3]
    min_err = space.load(path, "cifar10", accuracy_key="min_test_top1")
    assert min_err[0].accuracy == pytest.approx(94.5)


def test_nds_width_and_cells_options_override_the_record(nds_root):
    spec = get_space("NDS", SpaceOptions(nds_space="darts")).load(nds_root / "nds" / "DARTS.json", "cifar10")[0].spec
    net = get_space("NDS", SpaceOptions(nds_space="darts", width=4, cells=4)).build(spec, 10)
    assert len(net.cells) == 4 and net.classifier.in_features == 4 * 4 * 4
    assert forward(net).shape == (2, 10)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.pop("test_ep_top1"), "'test_ep_top1'"),
        (lambda r: r.pop("net"), "'net'"),
        (lambda r: r["net"].pop("genotype"), "'net.genotype'"),
        (lambda r: r["net"]["genotype"].pop("reduce"), "'net.genotype.reduce'"),
        (lambda r: r["net"].pop("depth"), "'net.depth'"),
    ],
)
def test_nds_missing_field_names_file_record_and_field(tmp_path, mutate, field):
    records = [nds_record(DARTS_LIKE, 8, 5, [10.0]), nds_record(DARTS_LIKE, 8, 5, [10.0])]
    mutate(records[1])
    path = write_nds(tmp_path, "ENAS.json", records)
    with pytest.raises(DataError) as info:
        get_space("NDS", SpaceOptions(nds_space="enas")).load(path, "cifar10")
    message = str(info.value)
    assert str(path) in message and "record 1" in message and field in message


def test_nds_bad_op_in_record_is_an_arch_error_naming_the_record(tmp_path):
    record = nds_record(DARTS_LIKE, 8, 5, [10.0])
    record["net"]["genotype"]["reduce"][3] = ["conv_5x5", 0]
    path = write_nds(tmp_path, "NASNet.json", [record])
    with pytest.raises(ArchError, match=r"record 0: bad op 'conv_5x5' in reduce edge 3"):
        get_space("NDS", SpaceOptions(nds_space="NASNet")).load(path, "cifar10")


def test_nds_unknown_or_missing_space_lists_valid_names(tmp_path):
    with pytest.raises(EznasError) as info:
        get_space("NDS", SpaceOptions(nds_space="resnext-a"))
    assert "'resnext-a'" in str(info.value)
    assert all(name in str(info.value) for name in ("amoeba", "darts", "enas", "nasnet", "pnas"))
    with pytest.raises(EznasError, match="amoeba, darts, enas, nasnet, pnas"):
        get_space("NDS").default_benchmark(tmp_path, "cifar10")


def test_nds_missing_file_and_bad_spec(tmp_path):
    space = get_space("NDS", SpaceOptions(nds_space="amoeba"))
    with pytest.raises(DataError, match="Amoeba.json"):
        space.load(space.default_benchmark(tmp_path, "cifar10"), "cifar10")
    with pytest.raises(ArchError, match="not JSON"):
        space.build(DARTS_V2, 10)
    with pytest.raises(ArchError, match="missing field 'depth'"):
        space.build(json.dumps({"genotype": DARTS_LIKE, "width": 8}), 10)


@pytest.mark.parametrize("ours, theirs", [
    (lambda: ops.AvgPool2d(3, 1, 1, count_include_pad=False), lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False)),
    (lambda: ops.AvgPool2d(2, 2), lambda: nn.AvgPool2d(2, 2)),
    (lambda: ops.MaxPool2d(3, 2, 1), lambda: nn.MaxPool2d(3, 2, 1)),
])
def test_channels_last_pools_give_the_same_bits_forward_and_backward(ours, theirs):
    torch.manual_seed(0)
    x = torch.randn(4, 6, 12, 12)
    conv = nn.Conv2d(6, 6, 3, padding=1)
    grads, outs, layouts = [], [], []
    for pool in (ours(), theirs()):
        conv.zero_grad()
        xi = x.clone().requires_grad_(True)
        h = conv(xi)
        h.register_hook(lambda g: layouts.append(g.is_contiguous()))  # what the layers before receive
        out = pool(h)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append(out)
        grads.append((xi.grad, conv.weight.grad.clone()))
        assert out.is_contiguous() and layouts[-1], "the gradient must go back in the usual layout"
    assert isinstance(ours(), type(theirs()))  # hooks and isinstance checks see the nn pool
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
