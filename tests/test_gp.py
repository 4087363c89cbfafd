"""The primitive language and programs: generation, parsing, purity, and the seeds against the
hand-written proxies on real NB-201 networks."""
import itertools
import math
import random

import pytest
import torch
from deap import gp
from scipy import stats as sps

from eznas.data import Batch, BatchSource
from eznas.gp.parse import parse_program
from eznas.gp.program import ProgramError
from eznas.gp.operators import gen_half_and_half
from eznas.gp.pset import make_pset
from eznas.gp.seeds import SEEDS
from eznas.inits import kaiming_init_
from eznas.proxies import Probe, get_proxy
from eznas.networks import arch_seed, build_network
from eznas.scoring import sample_archs
from eznas.spaces import get_space
from eznas.stats import CollectorConfig, collect
from eznas.gp.pset import EXPONENTS
from eznas.primitives import PRIMITIVES, Exponent, Factor, Net, Scalar, Tensor, list_primitives
from eznas.primitives.network import PoolOp, log_ranks


def test_registry_has_every_family():
    names = set(list_primitives())
    assert {"log", "abslog", "exp", "reciprocal", "zscore", "softmax_channel", "div", "lt", "mean", "fro", "std",
            "logdet", "eig_ratio", "corr_min_eig", "numel", "swap_count", "count_in", "hamming", "cosine", "kl",
            "mean_units", "sum_units", "meanlog_units"} <= names


def test_generation_never_dead_ends_and_round_trips():
    pset = make_pset()
    rng = random.Random(1)
    for _ in range(400):
        tree = gp.PrimitiveTree(gen_half_and_half(pset, 2, 7, rng))
        assert str(parse_program(str(tree))) == str(tree)
    constants = [node for _ in range(300) for node in gen_half_and_half(pset, 2, 6, rng)
                 if isinstance(node, gp.Terminal) and isinstance(node.value, float)]
    by_kind = {kind: [c.value for c in constants if c.ret is kind] for kind in (Scalar, Factor, Exponent)}
    assert all(by_kind.values())
    assert all(1e-8 <= c <= 1 for c in by_kind[Scalar])
    assert all(1e-3 <= abs(c) <= 1e3 for c in by_kind[Factor]) and set(by_kind[Exponent]) <= set(EXPONENTS)
    for _ in range(300):  # full trees pick primitives down to the leaves: the classic dead-end trap
        gp.PrimitiveTree(gen_half_and_half(pset, 4, 4, rng))
    a, b = random.Random(7), random.Random(7)
    assert [str(gp.PrimitiveTree(gen_half_and_half(pset, 2, 6, a))) for _ in range(20)] == \
        [str(gp.PrimitiveTree(gen_half_and_half(pset, 2, 6, b))) for _ in range(20)]


def test_join_puts_two_whole_programs_under_a_network_operation():
    from eznas.gp.operators import Individual, cx_join, limit_height

    pset, rng = make_pset(), random.Random(3)
    meco, swap = SEEDS["meco"], SEEDS["swap"]
    ops = set()
    for _ in range(40):
        a, b = (Individual(parse_program(t, pset).tree) for t in (meco, swap))
        joined, other = cx_join(a, b, pset, rng)
        op = joined[0].name
        ops.add(op)
        assert str(joined) == f"{op}({meco}, {swap})" and str(other) == swap
        assert parse_program(str(joined)).aggregates() == parse_program(meco).aggregates() + parse_program(swap).aggregates()
    assert ops == {"net_add", "net_sub", "net_mul", "net_div"}
    tall = Individual(parse_program(SEEDS["reg_swap"], pset).tree)
    kept = limit_height(lambda x, y: cx_join(x, y, pset, rng), tall.height, rng)(tall, tall)
    assert all(str(k) == SEEDS["reg_swap"] for k in kept)  # over the height limit: a parent instead


@pytest.mark.parametrize("text, message", [
    ("mean_units(fro(foo))", "unknown name 'foo'"),
    ("fro(pre_D)", "'fro' gives a Scalar where a Net is needed"),
    ("net_add(sum_units(pre_D))", "incomplete: 1 argument(s) missing"),
    ("sum_units(params)", "'params' gives a Net where a Tensor is needed"),
    ("net_pow(params, pre_D)", "'pre_D' gives a Tensor where a Exponent is needed"),
    ("net_scale(params, const)", "'const' is not a value"),
    ("const", "'const' is not a value"),
    ("sum_units(count_in(pre_D, inf, 0.1))", "constant 'inf' is not a finite number"),
    ("0.5", "a number (0.5) cannot stand where a Net is needed"),
    ("", "is empty"),
    ("mean_units(count_in(pre_D, 0.1))", "incomplete: 1 argument(s) missing"),
    ("mean_units(pre_D) pre_N", "unexpected 'pre_N' after a complete program"),
    ("mean_units(count_in(pre_D, pre_D, 0.1))", "'pre_D' gives a Tensor where a Scalar is needed"),
])
def test_bad_programs_name_the_problem(text, message):
    with pytest.raises(ProgramError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_program(text)


def test_primitives_are_pure_on_random_inputs():
    torch.manual_seed(0)
    a, b = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    for name in list_primitives():
        spec = PRIMITIVES.get(name)
        if spec.ret is Net:  # aggregators and network-level ops: tested below
            continue
        args = [a if i == 0 else (b if t is Tensor else torch.tensor(0.5)) for i, t in enumerate(spec.args)]
        before = [x.clone() for x in args]
        out = spec.fn(*args)
        assert isinstance(out, torch.Tensor), name
        assert all(torch.equal(x, y) for x, y in zip(args, before)), f"{name} modified its input"
        if spec.ret is Scalar:
            assert out.dim() == 0, name


def test_network_ops_never_raise_and_are_finite_or_nan():
    """Every network-level op on extreme finite floats: a float, finite or NaN, never an exception."""
    values = [0.0, -0.0, 1e-300, -1e-300, 1.0, -2.5, 1e300, -1e300, 1.7e308]
    for name in list_primitives("net_*"):
        spec = PRIMITIVES.get(name)
        if isinstance(spec.fn, PoolOp):  # one value per network of a pool: test_log_ranks
            continue
        pools = [values if t is Net else ([-2.0, 0.5, 3.0] if t is Exponent else [-1e3, 1e-3, 1e3]) for t in spec.args]
        for args in itertools.product(*pools):
            out = spec.fn(*args)
            assert isinstance(out, float), (name, args)
    assert PRIMITIVES.get("net_div").fn(1.0, 0.0) == 0.0 and PRIMITIVES.get("net_log").fn(0.0) == 0.0
    assert PRIMITIVES.get("net_pow").fn(-4.0, 0.5) == -2.0 and PRIMITIVES.get("net_pow").fn(0.0, -1.0) == 0.0
    assert math.isnan(PRIMITIVES.get("net_pow").fn(1e300, 3.0))


def test_log_ranks_rank_the_finite_values_of_a_pool():
    """net_rank: log(rank / m) among the m finite values, ties sharing their average rank, NaN elsewhere."""
    out = log_ranks([3.0, math.nan, 1.0, 3.0, -math.inf, 1e300])
    assert math.isnan(out[1]) and math.isnan(out[4])
    assert out[5] == 0.0  # the largest of m = 4 finite values
    assert out[2] == pytest.approx(math.log(1 / 4))
    assert out[0] == out[3] == pytest.approx(math.log(2.5 / 4))  # ranks 2 and 3 shared
    assert log_ranks([]) == [] and log_ranks([7.0]) == [0.0]
    assert isinstance(PRIMITIVES.get("net_rank").fn, PoolOp)


def test_safe_forms():
    from eznas.primitives import elementwise as E

    x = torch.tensor([-2.0, 0.0, 3.0])
    assert E.log(x).tolist() == [0.0, 0.0, pytest.approx(math.log(3))]
    assert E.abslog(x).tolist() == [pytest.approx(math.log(2)), 0.0, pytest.approx(math.log(3))]
    assert E.reciprocal(x).tolist() == [-0.5, 0.0, pytest.approx(1 / 3)]
    assert E.div(x, torch.tensor([2.0, 0.0, 0.0])).tolist() == [-1.0, 0.0, 0.0]
    assert torch.isfinite(E.exp(torch.tensor([1e4]))).all()
    assert E.zscore(torch.ones(5)).tolist() == [0.0] * 5


def test_corr_min_eig_by_hand():
    from eznas.primitives.reduce import corr_min_eig

    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    b = torch.tensor([1.0, 3.0, 2.0, 4.0])  # Pearson r(a, b) = 0.8: eigenvalues 1 - 0.8 and 1 + 0.8
    x = torch.stack([torch.stack([a, b]), torch.randn(2, 4)]).reshape(2, 2, 2, 2)  # only sample 0 counts
    assert corr_min_eig(x).item() == pytest.approx(0.2, abs=1e-6)
    assert corr_min_eig(torch.stack([a, -a]).reshape(1, 2, 2, 2)).item() == pytest.approx(0.0, abs=1e-6)
    constant = torch.stack([a, torch.ones(4)]).reshape(1, 2, 2, 2)  # undefined correlation counts as 0
    assert corr_min_eig(constant).item() == pytest.approx(0.0, abs=1e-6)
    assert corr_min_eig(torch.ones(1, 3, 1, 1)).item() == 0.0
    with pytest.raises(ValueError, match="corr_min_eig needs"):
        corr_min_eig(torch.ones(3, 4))


@pytest.fixture(scope="module")
def nb201_sample(data_root):
    space = get_space("NASBench201")
    archs = sample_archs(space.load(space.default_benchmark(data_root, "cifar10"), "cifar10"), 100, 0)
    return space, archs, BatchSource(data_root, "cifar10", 16, 0).batch()


def _net(space, arch):
    return build_network(space, arch, 10, 0), arch_seed(0, arch.uid)


def test_eznas_seed_reproduces_the_proxy_exactly(nb201_sample):
    space, archs, batch = nb201_sample
    program = parse_program(SEEDS["eznas"])
    for arch in archs[:5]:
        net, seed = _net(space, arch)
        probe = Probe(net, batch, seed=seed)
        copy = probe.copy()
        kaiming_init_(copy, probe.generator(salt=2))
        stats = collect(copy, batch, CollectorConfig(names=("inp_grad_D",), signal="logits_sum"))
        assert program.score(stats) == get_proxy("eznas").fn(probe), arch.spec


def test_sweetimator_seed_is_its_count_over_the_units_exactly(nb201_sample):
    """The tree counts over the units' convs; the proxy over every Conv/Linear (stem, shortcuts and the
    classifier too). Over the units both are the same count, exactly."""
    space, archs, batch = nb201_sample
    program = parse_program(SEEDS["sweetimator"])
    for arch in archs[:5]:
        net, seed = _net(space, arch)
        stats = collect(net, batch, CollectorConfig(names=("weight_grad_D",), signal="ce"))
        probe = Probe(net, batch, seed=seed)
        probe.run({"backward"})
        unit_convs = {name for name in (u.name for u in stats.units)}
        by_hand = sum(((g.abs() >= 1e-4) & (g.abs() < 5e-4)).sum().item()
                      for name, m in net.named_modules() if name in unit_convs
                      for g in [probe.weight_grads[m]])
        assert program.score(stats) == by_hand
        assert by_hand <= get_proxy("sweetimator").fn(probe)


def test_swap_seed_ranks_like_the_network_wide_count(nb201_sample):
    """SWAP counts distinct patterns over all ReLUs at once; the tree sums per-unit counts. Not equal,
    but rank-equivalent on 100 real NB-201 networks (same weights, one initialisation)."""
    space, archs, batch = nb201_sample
    program = parse_program(SEEDS["swap"])
    tree, hand = [], []
    for arch in archs:
        net, seed = _net(space, arch)
        tree.append(program.score(collect(net, batch, CollectorConfig(names=("pre_D",)))))
        hand.append(get_proxy("swap").fn(Probe(net, batch, seed=seed), reinit=False))
    rho = sps.spearmanr(tree, hand).statistic
    assert rho >= 0.99, rho


def test_meco_seed_ranks_like_the_proxy(nb201_sample):
    """MeCo sums its term over every module with a 4-D output on one 64x64 noise image; the tree over
    the units' conv inputs on the noise pass. Not equal, but rank-close on 50 real NB-201 networks."""
    space, archs, batch = nb201_sample
    program = parse_program(SEEDS["meco"])
    tree, hand = [], []
    for arch in archs[:50]:
        net, seed = _net(space, arch)
        tree.append(program.score(collect(net, batch, CollectorConfig(names=("pre_N",)))))
        hand.append(get_proxy("meco").fn(Probe(net, batch, seed=seed)))
    rho = sps.spearmanr(tree, hand).statistic
    assert rho >= 0.9, rho


LAYOUT_PROGRAMS = ("sum_units(corr_min_eig(pre_N))", "sum_units(fro(sigmoid(logdet(sign(inp_P)))))",
                   "sum_units(corr_min_eig(zscore(square(inp_P))))", "mean_units(fro(act_grad_N))")


def test_program_scores_do_not_depend_on_how_statistics_are_stored(data_root):
    """Statistics held channels-last (as a channels-last batch used to leave them) and a
    contiguous copy give the same score, to the last bit: a program reads every statistic in one layout
    (before, a fresh DARTS network's corr_min_eig(pre_N) differed in the last digit). Batches themselves
    are now contiguous (a oneDNN bug with channels-last inputs: eznas.data.normalise)."""
    from eznas.stats.collector import NetworkStats, Unit

    def channels_last(stats: NetworkStats) -> NetworkStats:
        return NetworkStats([Unit(u.name, {k: t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t
                                           for k, t in u.tensors.items()}) for u in stats.units], stats.features)

    programs = [parse_program(p) for p in LAYOUT_PROGRAMS]
    batch = BatchSource(data_root, "cifar10", 4, 0).batch()
    assert batch.x.is_contiguous()
    for name in ("NASBench201", "DARTS"):
        space = get_space(name)
        arch = sample_archs(space.load(space.default_benchmark(data_root, "cifar10"), "cifar10"), 1, 0)[0]
        torch.manual_seed(0)
        held = channels_last(collect(space.build(arch.spec, 10).train(), batch, CollectorConfig(dtype="float16")))
        stored = NetworkStats([Unit(u.name, {k: t.contiguous() for k, t in u.tensors.items()}) for u in held.units])
        assert any(not t.is_contiguous() for u in held.units for t in u.tensors.values())
        for program in programs:
            assert program.score(held) == program.score(stored), (name, str(program))


def test_a_channels_last_batch_is_collected_in_the_standard_layout(data_root):
    """oneDNN's 1x1 stride-2 conv backward on a channels-last input with < 8 channels corrupts memory
    (FactorizedReduce in SWAP's probe network); the collector runs every pass on a contiguous copy, so
    a channels-last batch gives the statistics, to the bit, of the contiguous one."""
    space = get_space("DARTS")
    arch = space.load(space.default_benchmark(data_root, "cifar10"), "cifar10")[0]
    batch = BatchSource(data_root, "cifar10", 8, 0).batch()
    last = Batch(batch.x.contiguous(memory_format=torch.channels_last), batch.y, batch.num_classes)
    runs = []
    for b in (batch, last):
        torch.manual_seed(0)
        runs.append(collect(space.build(arch.spec, 10).train(), b, CollectorConfig(names=("weight_grad_D", "pre_D"))))
    for a, b in zip(*(r.units for r in runs)):
        assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
