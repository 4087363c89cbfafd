"""Exported proxies (best_proxy.py) run with PyTorch alone and score exactly as eznas does (raising ProxyError
where eznas has no value)."""
import json
import math
import random
import subprocess
import sys

import pytest
import torch
from deap import gp

from eznas.data import Batch
from eznas.errors import EznasError
from eznas.gp.export import export_source
from eznas.gp.expression import program_expression
from eznas.gp.operators import gen_half_and_half
from eznas.gp.parse import parse_program
from eznas.gp.pset import make_pset
from eznas.gp.seeds import SEEDS
from eznas.parallel import torch_threads
from eznas.stats import CollectorConfig, collect
from eznas.primitives import PRIMITIVES, Exponent, Net, Scalar

# A plain post-activation net with an in-place ReLU: two ReLU -> Conv -> BN units (the stem is none).
NET = """
import torch
import torch.nn as nn

def make_net_and_batch(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6),
        nn.ReLU(inplace=True), nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6),
        nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    x = torch.randn(6, 3, 8, 8)
    y = torch.randint(0, 10, (6,))
    return net, x, y
"""

STANDALONE = """
import json, sys, importlib.util
for blocked in ("eznas", "primitives", "deap"):
    sys.modules[blocked] = None  # any import of them now fails
import torch
torch.set_num_threads(1)
exec(sys.argv[1])
out = []
for path in sys.argv[2:]:
    spec = importlib.util.spec_from_file_location("best_proxy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nets = [make_net_and_batch(seed)[0] for seed in range(3)]  # a pool of three, scored on one batch
    _, x, y = make_net_and_batch()
    try:
        pool = module.score_pool(nets, x, y)
    except module.ProxyError as exc:  # not defined on some network: one line, never NaN
        assert len(str(exc).splitlines()) == 1, str(exc)
        pool = None
    else:
        if not module.POOL:  # a per-network program scores each network alone as in the pool
            assert [module.score(net, x, y) for net in nets] == pool
    out.append(pool)
print(json.dumps(out))
"""


def _covering_programs() -> list[str]:
    """The seeds, one program per primitive (so every primitive's source is exported once), and random
    trees; some negated, and both backward signals."""
    programs = [*SEEDS.values(), "-mean_units(mean(act_P))", "meanlog_units(weight)", "depth", "n_units",
                "net_div(flops, net_sub(params, params))", "net_mul(net_scale(sum_units(numel(pre_D)), 1e300), "
                "net_scale(params, 1e300))", "net_add(sum_units(hamming(pre_D, weight)), params)"]
    for name in PRIMITIVES:
        spec = PRIMITIVES.get(name)
        if spec.ret is Net:
            if Net in spec.args:  # network-level arithmetic over an aggregate and a feature
                args = ["sum_units(std(act_D))", "net_log(params)"][:spec.args.count(Net)]
                args += ["2.0" if a is Exponent else "-0.5" for a in spec.args if a is not Net]
                programs.append(f"{name}({', '.join(args)})")
            else:
                programs.append(f"{name}(pre_D)")
            continue
        args = ["act_D" if i == 0 else "act_N" for i in range(len(spec.args))]
        args = ["0.0001" if a is Scalar and i else arg for i, (a, arg) in enumerate(zip(spec.args, args))]
        args = ["0.01" if arg == "0.0001" and i == 2 else arg for i, arg in enumerate(args)]
        programs.append(f"mean_units(mean_abs({name}({', '.join(args)})))")
    rng, pset = random.Random(3), make_pset()
    programs += [str(gp.PrimitiveTree(gen_half_and_half(pset, 2, 5, rng))) for _ in range(25)]
    return programs


def test_exported_files_need_only_torch_and_score_exactly_as_eznas(tmp_path):
    programs = _covering_programs()
    used = {n.name for p in programs for n in parse_program(p).tree if isinstance(n, gp.Primitive)}
    assert used == set(PRIMITIVES), "every primitive is exported by some program"
    paths, expected = [], []
    namespace: dict = {}
    exec(NET, namespace)
    assert any(parse_program(p).is_pool for p in programs)
    for k, text in enumerate(programs):
        program = parse_program(text)
        signal = "ce" if k % 3 == 1 else "logits_sum"
        path = tmp_path / f"p{k}.py"
        path.write_text(export_source(program, signal=signal, noise_seed=5, perturbation=0.1, doc=f"p{k}"))
        paths.append(str(path))
        _, x, y = namespace["make_net_and_batch"]()
        config = CollectorConfig(names=tuple(sorted(program.terminals)), signal=signal, noise_seed=5)
        with torch_threads(1):
            stats = [collect(namespace["make_net_and_batch"](seed)[0], Batch(x, y, 0), config) for seed in range(3)]
        pool = [math.nan if isinstance(v, str) else v
                for v in program.pool_scores([program.network_values(s.units, s.features) for s in stats])]
        if not program.is_pool:  # the pool path is the per-network one
            assert pool == [program.score(s) for s in stats] or all(math.isnan(v) for v in pool), text
        expected.append(pool)
    run = subprocess.run([sys.executable, "-c", STANDALONE, NET, *paths], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout)
    assert sum(math.isfinite(v[0]) for v in expected) >= len(programs) // 2
    for text, want, have in zip(programs, expected, got):  # where eznas has no value, the file raises
        assert have is None if any(math.isnan(w) for w in want) else have == want, text


def test_expression_binds_terminals_by_name_and_constants_as_tensors():
    program = parse_program("-sum_units(count_in(weight_grad_D, 0.0001, 0.0005))")
    assert program_expression(program) == \
        "aggregate_units(units, lambda i, t: count_in(statistic(t['weight_grad_D']), torch.tensor(0.0001), " \
        "torch.tensor(0.0005)), unit_mean, combine_sum, 'sum_units')"
    assert program_expression(parse_program("net_pow(net_log(params), 0.5)")) == \
        "checked(net_pow(checked(net_log(features['params']), 'net_log'), 0.5), 'net_pow')"
    source = export_source(program, signal="ce", noise_seed=3, perturbation=0.1, doc="x")
    assert "SIGN = -1" in source and "SIGNAL = 'ce'" in source and "@primitive" not in source
    assert "def statistic(" in source
    assert "import eznas" not in source and "from eznas" not in source and "from primitives" not in source
    compile(source, "best_proxy.py", "exec")


def test_an_unexportable_name_is_an_error_at_export(monkeypatch):
    import eznas.primitives.reduce as reduce_module

    monkeypatch.setattr(reduce_module, "torch", object())  # neither a module nor a function of ours
    with pytest.raises(EznasError, match="cannot export: 'torch'"):
        export_source(parse_program("mean_units(fro(pre_D))"), signal="ce", noise_seed=0, perturbation=0.1,
                      doc="x")


def test_export_refuses_source_that_changed_after_import(tmp_path, monkeypatch):
    """inspect reads the source from disk: if the package changed since this process imported it, the
    file would carry code that never ran. The export checks the source against the running code."""
    import importlib.util

    from eznas.gp.closure import closure

    path = tmp_path / "stale_mod.py"
    path.write_text("def f(x):\n    return x + 1\n")
    spec = importlib.util.spec_from_file_location("stale_mod", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "stale_mod", module)
    spec.loader.exec_module(module)
    _, defs = closure([module.f])
    assert defs == ["def f(x):\n    return x + 1"]
    path.write_text("def f(x):\n    return x + 1000\n")
    with pytest.raises(EznasError, match="stale_mod.f on disk is not the code this process runs"):
        closure([module.f])
