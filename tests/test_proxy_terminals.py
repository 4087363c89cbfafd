"""Proxy terminals (``zc_<proxy>``): registered proxies' scores as network-level terminals of programs,
computed once per network by fitness, by verify_scores.py --program, and carried by the export."""
import importlib.util
import json
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from eznas.cli import evolve_main, verify_main
from eznas.data import BatchSource
from eznas.errors import EznasError
from eznas.features import FEATURES
from eznas.gp.config import EvolutionConfig
from eznas.gp.evolution import Evolution
from eznas.gp.operators import Individual
from eznas.gp.export import export_source
from eznas.gp.config import FitnessConfig, Task
from eznas.gp.values import FitnessData, ValueCache
from eznas.gp.parse import parse_program
from eznas.gp.program import ProgramError
from eznas.gp.pset import language, make_pset
from eznas.networks import arch_seed, build_network
from eznas.proxies import Probe, parse_proxy
from eznas.spaces import Arch, get_space
from eznas.primitives.aggregate import ProgramFailure
from tests.conftest import tiny

HYBRID = "net_add(net_log(zc_synflow), net_scale(zc_naswot, 0.01))"


def test_proxy_terminals_parse_and_belong_to_a_run_that_names_them():
    program = parse_program("net_add(zc_meco, net_log(params))")
    assert program.proxies == ("zc_meco",) and program.values() == ["zc_meco"]
    assert str(parse_program(str(program))) == str(program)
    with pytest.raises(ProgramError, match="unknown name 'zc_az_nas'"):  # pool-level: never a terminal
        parse_program("zc_az_nas")
    with pytest.raises(ProgramError, match="unknown name 'zc_meco'"):  # the default language has none
        parse_program("net_mul(zc_meco, depth)", make_pset())
    pset = make_pset(features=FEATURES + ("zc_meco",))
    assert parse_program("net_mul(zc_meco, depth)", pset).proxies == ("zc_meco",)
    assert "zc_meco:Net" in language(pset)["terminals"]  # recorded in the checkpoint's language
    with pytest.raises(EznasError, match="unknown network terminal 'zc_nope'"):
        EvolutionConfig(features=FEATURES + ("zc_nope",))
    with pytest.raises(EznasError, match="proxy terminal zc_eznas: cannot export"):  # a TOML's features too
        EvolutionConfig(features=FEATURES + ("zc_eznas",))


def test_a_failed_proxy_terminal_makes_the_program_undefined_with_its_reason():
    program = parse_program("net_add(zc_meco, params)")
    assert program.value(None, {"params": 1.0, "zc_meco": 2.0}) == 3.0
    with pytest.raises(ProgramFailure, match="RuntimeError in zc_meco"):
        program.value(None, {"params": 1.0, "zc_meco": "RuntimeError in zc_meco"})


def test_fitness_computes_proxy_terminals_as_the_registered_proxies_score(data_root, one_thread):
    data = FitnessData(FitnessConfig(tasks=("NASBench201:cifar10",), selection=4, validation=2, screen=2,
                                     batch_size=4), None, data_root)
    task = Task.parse("NASBench201:cifar10")
    arch = data.networks(str(task))[0]
    meco = "sum_units(corr_min_eig(pre_N))"
    values = data.compute(task, arch, ["zc_synflow", "zc_naswot", meco], True)
    assert set(FEATURES) <= set(values)
    alone = data.compute(task, arch, [meco], False)
    assert values[meco] == alone[meco]  # the proxies ran first and changed nothing the statistics see
    net = build_network(get_space("NASBench201"), arch, 10, 0)
    probe = Probe(net, BatchSource(data_root, "cifar10", 4, 0).batch(), seed=arch_seed(0, arch.uid), arch=arch)
    probe.run({"relu_kernel"})
    assert values["zc_synflow"] == pytest.approx(parse_proxy("synflow")(probe), rel=1e-9)
    assert values["zc_naswot"] == pytest.approx(parse_proxy("naswot")(probe), rel=1e-9)


def test_a_run_with_proxy_terminals_seeds_each_of_them(data_root, cache_dir, tmp_path):
    cfg = tiny(data_root, features=FEATURES + ("zc_synflow",), population=8)
    evo = Evolution(cfg, tmp_path, FitnessData(cfg.fitness, ValueCache(cache_dir), data_root))
    state = evo.initial_state()
    texts = [str(ind) for ind in state.population]
    assert "zc_synflow" in texts
    assert state.memo["zc_synflow"].fitness > 0.2  # synflow ranks NB-201 CIFAR-10 cells (rho ~0.8 on 1000)
    # measured on every selection network up front: it and programs over it and the features are never screened
    assert "zc_synflow" in state.known and state.memo["zc_synflow"].stage == "full"
    hybrid = Individual(parse_program("net_mul(zc_synflow, depth)", evo.pset).tree)
    evo.evaluate_invalid([hybrid], state)
    assert state.memo["net_mul(zc_synflow, depth)"].stage == "full"
    assert state.memo["net_mul(zc_synflow, depth)"].networks == cfg.fitness.selection


def test_the_default_run_blends_with_its_proxy_terminals(data_root, cache_dir, tmp_path):
    """The default language and blends (the discovery benchmark's winner) on a tiny run: every output file,
    the terminals measured up front, blends of them among the programs evaluated in full."""
    from eznas.gp.config import PROXY_TERMINALS
    from eznas.gp.winner import NOVEL_MARGIN
    from eznas.gp.run import run_evolution

    default = EvolutionConfig()
    assert default.features == FEATURES + PROXY_TERMINALS and default.blend_parts == 6 and default.winner == "novel"
    assert default.novel_elites == 5
    cfg = tiny(data_root, features=default.features, blend_parts=default.blend_parts, winner=default.winner,
               novel_elites=default.novel_elites, population=10)  # 9 seeds
    out = tmp_path / "run"
    run_evolution(cfg, out, cache_dir=cache_dir, test_networks=2)
    for name in ("config.json", "logbook.csv", "hall_of_fame.json", "references.json", "checkpoint.pkl",
                 "best_proxy.py", "test_scores.csv"):
        assert (out / name).is_file(), name
    memo = pickle.loads((out / "checkpoint.pkl").read_bytes())["memo"]
    assert all(memo[t]["stage"] == "full" for t in PROXY_TERMINALS)
    blends = [t for t, e in memo.items() if t.startswith("net_add(net_log(") and e["stage"] == "full"]
    assert blends and any(any(z in t for z in PROXY_TERMINALS) for t in blends)
    hall = json.loads((out / "hall_of_fame.json").read_text())  # the winner: new where a new program is near the best
    top = max(r["validation_fitness"] for r in hall)
    assert hall[0]["novel"] == any(r["novel"] and r["validation_fitness"] >= top - NOVEL_MARGIN for r in hall)


@pytest.mark.parametrize("names, message", [
    ("meco,az_nas", "--proxy_terminals: unknown proxy 'az_nas'"),
    ("eznas", "--proxy_terminals: proxy terminal zc_eznas: cannot export"),  # its code cannot travel in the file
])
def test_evolve_flag_names_a_bad_proxy_terminal(names, message, capsys):
    assert evolve_main(["--quiet", "--proxy_terminals", names]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err


def test_verify_and_the_exported_file_score_a_hybrid_program_identically(data_root, tmp_path, capsys):
    code = verify_main(["--data-root", str(data_root), "--n_samples", "3", "--seed", "0", "--quiet",
                        "--bootstrap", "5", "--program", HYBRID, "--out", str(tmp_path / "v"),
                        "--results-csv", str(tmp_path / "t.csv")])
    assert code == 0, capsys.readouterr().err
    scores = pd.read_csv(tmp_path / "v" / "scores.csv")
    path = tmp_path / "best_proxy.py"
    path.write_text(export_source(parse_program(HYBRID), signal="logits_sum", noise_seed=0, perturbation=1e-3,
                                  doc="a hybrid program"))
    spec = importlib.util.spec_from_file_location("hybrid_proxy", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["hybrid_proxy"] = module  # importlib's recipe: the file's dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        batch = BatchSource(data_root, "cifar10", 16, 0).batch()
        for uid, arch, acc, value in zip(scores.uid, scores.arch, scores.accuracy, scores[HYBRID]):
            net = build_network(get_space("NASBench201"), Arch(str(uid), arch, acc), 10, 0)
            assert module.score(net, batch.x, batch.y, seed=arch_seed(0, str(uid))) == pytest.approx(value, rel=1e-9)
    finally:
        del sys.modules["hybrid_proxy"]
    # torch only: the proxies and their Probe travel in the file
    script = ("import sys, importlib.util, json, torch\n"
              "for b in ('eznas', 'primitives', 'deap'): sys.modules[b] = None\n"
              f"spec = importlib.util.spec_from_file_location('bp', {str(path)!r})\n"
              "m = importlib.util.module_from_spec(spec); sys.modules['bp'] = m; spec.loader.exec_module(m)\n"
              "torch.manual_seed(0)\n"
              "net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),\n"
              "    torch.nn.Conv2d(4, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(),\n"
              "    torch.nn.LazyLinear(10))\n"
              "net(torch.randn(2, 3, 8, 8))\n"
              "print(json.dumps(m.score(net, torch.randn(4, 3, 8, 8), seed=1)))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert isinstance(json.loads(out.stdout), float)


POOL = "net_add(net_rank(zc_synflow), net_add(net_scale(net_rank(params), 0.5), net_rank(sum_units(corr_min_eig(pre_N)))))"


def test_verify_and_the_exported_file_score_a_pool_program_identically(data_root, tmp_path, capsys):
    """verify_scores.py --program scores a pool program's parts per arch, then ranks them in the pool: its
    column is the weighted sum of the parts' log ranks (the feature part ``params`` under its own column,
    beside the registered proxy of that name), as best_proxy.score_pool computes it on the same networks."""
    code = verify_main(["--data-root", str(data_root), "--n_samples", "5", "--seed", "0", "--quiet",
                        "--bootstrap", "5", "--program", POOL, "--proxy", "params", "--out", str(tmp_path / "v"),
                        "--results-csv", str(tmp_path / "t.csv")])
    assert code == 0, capsys.readouterr().err
    scores = pd.read_csv(tmp_path / "v" / "scores.csv")
    meco = "sum_units(corr_min_eig(pre_N))"
    assert {"zc_synflow", "part:params", meco, "params"} <= set(scores.columns)
    n = len(scores)
    want = (np.log(sps.rankdata(scores.zc_synflow) / n) + 0.5 * np.log(sps.rankdata(scores["part:params"]) / n)
            + np.log(sps.rankdata(scores[meco]) / n))
    assert list(scores[POOL]) == pytest.approx(list(want))
    path = tmp_path / "best_proxy.py"
    path.write_text(export_source(parse_program(POOL), signal="logits_sum", noise_seed=0, perturbation=1e-3,
                                  doc="a pool program"))
    spec = importlib.util.spec_from_file_location("pool_proxy", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["pool_proxy"] = module
    try:
        spec.loader.exec_module(module)
        batch = BatchSource(data_root, "cifar10", 16, 0).batch()
        nets = [build_network(get_space("NASBench201"), Arch(str(u), a, acc), 10, 0)
                for u, a, acc in zip(scores.uid, scores.arch, scores.accuracy)]
        got = module.score_pool(nets, batch.x, batch.y, seeds=[arch_seed(0, str(u)) for u in scores.uid])
        assert got == pytest.approx(list(scores[POOL]), rel=1e-9)
        with pytest.raises(ValueError, match="use score_pool"):
            module.score(nets[0], batch.x, batch.y)
    finally:
        del sys.modules["pool_proxy"]


def test_programs_scored_together_compute_a_shared_aggregate_and_terminal_once(data_root, one_thread, monkeypatch):
    from eznas.gp import as_proxy
    from eznas.gp.program import Program

    texts = ["net_add(sum_units(corr_min_eig(pre_N)), net_log(zc_synflow))",
             "net_mul(sum_units(corr_min_eig(pre_N)), zc_synflow)", "sum_units(corr_min_eig(pre_N))"]
    names = as_proxy.program_names(texts)
    arch = Arch("5", "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|", 90.0)

    def probe() -> Probe:
        p = Probe(build_network(get_space("NASBench201"), arch, 10, 0), BatchSource(data_root, "cifar10", 4, 0).batch(),
                  seed=arch_seed(0, arch.uid), arch=arch)
        p.run({"relu_kernel"})
        return p

    alone = [as_proxy.program_call(t)(probe()) for t in texts]  # each on its own probe, nothing shared
    aggregates, terminals = [], []
    real_aggregate, real_values = Program.aggregate, as_proxy.proxy_values
    monkeypatch.setattr(Program, "aggregate", lambda self, i, *a, **k: aggregates.append(self.key(i)) or real_aggregate(self, i, *a, **k))
    monkeypatch.setattr(as_proxy, "proxy_values", lambda pr, ts, *a, **k: terminals.extend(ts) or real_values(pr, ts, *a, **k))
    together = probe()
    assert [as_proxy.program_call(t, shared=names)(together) for t in texts] == alone  # the very same numbers
    assert aggregates == ["sum_units(corr_min_eig(pre_N))"] and terminals == ["zc_synflow"]  # each once
