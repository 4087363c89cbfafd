"""The evolution engine on a tiny real sample: outputs, determinism, resume, workers, fuzzing, export."""
import dataclasses
import json
import math
import random

import pandas as pd
import pytest
import torch
from deap import gp

from eznas.cli import evolve_main, verify_main
from eznas.config import from_dict, load_toml
from eznas.data import Batch, BatchSource
from eznas.errors import DataError, EznasError
from eznas.gp.evolution import Evolution, EvolutionConfig, exported_program
from eznas.gp import fitness
from eznas.gp.fitness import FLOOR, FitnessConfig, FitnessData, Task, combine, evaluate_programs
from eznas.gp.program import parse_program
from eznas.gp.operators import gen_half_and_half
from eznas.gp.pset import make_pset
from eznas.gp.run import run_evolution
from eznas.parallel import ParallelConfig
from eznas.scoring import arch_seed
from eznas.spaces import get_space
from eznas.stats import CollectorConfig, StatsCache, collect
from tests.conftest import tiny

def test_two_generation_run_writes_the_run_folder(two_generations):
    out, result = two_generations
    for name in ("config.json", "logbook.csv", "hall_of_fame.json", "checkpoint.pkl", "evolution.png",
                 "best_proxy.py", "test_scores.csv"):
        assert (out / name).is_file(), name
    logbook = pd.read_csv(out / "logbook.csv")
    assert list(logbook.gen) == [0, 1, 2] and logbook["max"].is_monotonic_increasing
    hof = json.loads((out / "hall_of_fame.json").read_text())
    assert len(hof) == 5 and {"program", "exported", "fitness", "fitness_per_task", "height", "size"} <= set(hof[0])
    assert all(h["height"] <= 10 for h in hof)
    tests = pd.read_csv(out / "test_scores.csv")
    assert len(tests) == 3 and set(tests.task) == {"NASBench201:cifar10"} and (tests.n <= 8).all()
    assert json.loads((out / "config.json").read_text())["population"] == 8


def test_hall_of_fame_is_ranked_on_all_minisets_at_the_end(two_generations, data_root, cache_dir):
    from scipy import stats as sps

    out, result = two_generations
    hof = json.loads((out / "hall_of_fame.json").read_text())
    fits = [h["fitness"] for h in hof]
    assert fits == sorted(fits, reverse=True) and all("selection_fitness" in h for h in hof)
    assert [b["exported"] for b in result["best"]] == [h["exported"] for h in hof[:3]]
    cfg = tiny(data_root)
    data = FitnessData(cfg.fitness, cfg.terminals, StatsCache(cache_dir), data_root)
    task = "NASBench201:cifar10"
    archs = data.networks(task, None)
    assert len(archs) == 12  # both mini-sets of 6
    best = parse_program(hof[0]["exported"])  # by hand: Kendall tau over all 12 networks, oriented
    tau = sps.kendalltau([best.score(data.stats(Task.parse(task), a)) for a in archs],
                         [a.accuracy for a in archs]).statistic
    assert hof[0]["fitness"] == pytest.approx(tau) == pytest.approx(hof[0]["fitness_per_task"][task])


def test_seed_programs_start_in_the_population(data_root, cache_dir, tmp_path):
    evo = Evolution(tiny(data_root), tmp_path, FitnessData(tiny(data_root).fitness, tiny(data_root).terminals,
                                                           StatsCache(cache_dir), data_root))
    state = evo.initial_state()
    texts = [str(ind) for ind in state.population]
    assert texts[:4] == ["mean_units(fro(sigmoid(logdet(sign(inp_grad_D)))))", "swap_units(pre_D)",
                         "sum_units(count_in(weight_grad_D, 0.0001, 0.0005))", "sum_units(corr_min_eig(pre_N))"]
    assert len(set(texts)) == len(texts) == 8


def test_resume_gives_the_same_run(two_generations, data_root, cache_dir, tmp_path):
    straight = tmp_path / "straight"
    run_evolution(tiny(data_root, generations=4), straight, cache_dir=cache_dir, test_networks=4)
    split = tmp_path / "split"
    run_evolution(tiny(data_root), split, cache_dir=cache_dir, test_networks=4)
    run_evolution(tiny(data_root, generations=4), split, resume=True, cache_dir=cache_dir, test_networks=4)
    assert (straight / "hall_of_fame.json").read_text() == (split / "hall_of_fame.json").read_text()
    a, b = pd.read_csv(straight / "logbook.csv"), pd.read_csv(split / "logbook.csv")
    pd.testing.assert_frame_equal(a, b)


def test_workers_do_not_change_the_result(two_generations, data_root, cache_dir, tmp_path):
    out, _ = two_generations
    run_evolution(tiny(data_root, parallel=ParallelConfig("loky", workers=2)), tmp_path / "w2",
                  cache_dir=cache_dir, test_networks=8)
    assert (tmp_path / "w2" / "hall_of_fame.json").read_text() == (out / "hall_of_fame.json").read_text()


def test_a_corrupt_checkpoint_is_named_with_the_last_generation(two_generations, data_root, cache_dir, tmp_path):
    out, _ = two_generations
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "logbook.csv", "checkpoint.pkl"):
        (copy / name).write_bytes((out / name).read_bytes())
    (copy / "checkpoint.pkl").write_bytes((out / "checkpoint.pkl").read_bytes()[:200])
    with pytest.raises(DataError, match=r"checkpoint .*checkpoint.pkl is unreadable .*last generation in logbook.csv is 2"):
        run_evolution(tiny(data_root, generations=3), copy, resume=True, cache_dir=cache_dir)
    with pytest.raises(DataError, match="differs in: population"):
        (copy / "checkpoint.pkl").write_bytes((out / "checkpoint.pkl").read_bytes())
        run_evolution(tiny(data_root, population=9), copy, resume=True, cache_dir=cache_dir)


class FakeData:
    """Fitness data over a tiny ReLU-Conv-BN network family on real images (fast enough to fuzz)."""

    def __init__(self, n=6):
        self.config = FitnessConfig(tasks=("fake:cifar10",), minisets=1, networks=n)
        self.tasks = [Task("fake", "cifar10")]
        from tests.test_stats import RCB

        g = torch.Generator().manual_seed(0)
        batch = Batch(torch.randn(4, 3, 8, 8, generator=g), torch.tensor([0, 1, 2, 0]), 3)
        self._stats, archs = [], []
        for i in range(n):
            torch.manual_seed(i)
            self._stats.append(collect(RCB(), batch, CollectorConfig()))
            archs.append(type("A", (), {"accuracy": float(i), "uid": str(i)})())
        self.minisets = {"fake:cifar10": [archs]}
        self.handle = f"fake-{n}"  # what network tasks find it by (fitness.open_data)
        fitness._OPEN[self.handle] = self

    networks = FitnessData.networks

    def arch(self, task, uid):
        return self.minisets[task][0][int(uid)]

    def stats(self, task, arch):
        return self._stats[int(arch.uid)]


def test_fuzz_1000_random_programs_never_crash_or_give_non_finite_fitness():
    data, pset = FakeData(), make_pset()
    rng = random.Random(0)
    programs = [parse_program(str(gp.PrimitiveTree(gen_half_and_half(pset, 2, 6, rng)))) for _ in range(1000)]
    results = evaluate_programs(programs, data, {"fake:cifar10": 0})
    fits = [r.fitness for r in results]
    assert all(math.isfinite(f) and (f == FLOOR or -1.0 <= f <= 1.0) for f in fits)
    assert sum(f > FLOOR for f in fits) > 100  # most random programs are valid, not all floored


def test_anti_correlated_programs_are_exported_negated():
    data = FakeData()
    program = parse_program("mean_units(fro(weight))")
    ev = combine({"t": -0.6}, "min")
    assert ev.orientation == -1 and ev.fitness == pytest.approx(0.6)
    exported = parse_program(exported_program(str(program), -1))
    assert str(exported) == "-mean_units(fro(weight))"
    for s in data._stats:
        assert exported.score(s) == -program.score(s)
    assert combine({"a": 0.5, "b": -0.2}, "min").fitness == pytest.approx(-0.2)
    assert combine({"a": 0.5, "b": float("nan")}, "min").fitness == FLOOR


def test_verify_program_and_best_proxy_score_identically(two_generations, data_root, tmp_path, capsys):
    out, result = two_generations
    program = result["best"][0]["exported"]
    code = verify_main(["--data-root", str(data_root), "--n_samples", "4", "--seed", "0", "--quiet", "--bootstrap", "5",
                        "--program-file", str(out / "hall_of_fame.json"), "--program-top", "1",
                        "--out", str(tmp_path / "v"), "--results-csv", str(tmp_path / "t.csv")])
    assert code == 0, capsys.readouterr().err
    scores = pd.read_csv(tmp_path / "v" / "scores.csv")
    assert list(scores.columns[3:4]) == [program]
    import importlib.util

    spec = importlib.util.spec_from_file_location("best_proxy", out / "best_proxy.py")
    best = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(best)
    space, batch = get_space("NASBench201"), BatchSource(data_root, "cifar10", 16, 0).batch()
    for uid, arch, value in zip(scores.uid, scores.arch, scores[program]):
        torch.manual_seed(arch_seed(0, str(uid)))
        net = space.build(arch, 10)
        assert best.score(net, batch.x, batch.y) == pytest.approx(value, rel=1e-12, abs=1e-12) or \
            (math.isnan(value) and math.isnan(best.score(net, batch.x, batch.y)))


def test_toml_config_is_strict(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("population = 12\n[fitness]\ntasks = ['DARTS:cifar10']\nmetric = 'spearman'\n")
    cfg = load_toml(EvolutionConfig, path)
    assert cfg.population == 12 and cfg.fitness.tasks == ("DARTS:cifar10",) and cfg.fitness.metric == "spearman"
    path.write_text("populaton = 12\n")
    with pytest.raises(EznasError, match="unknown key 'populaton'"):
        load_toml(EvolutionConfig, path)
    with pytest.raises(EznasError, match=r"fitness.networks: expected int, got '20'"):
        from_dict(EvolutionConfig, {"fitness": {"networks": "20"}}, "cfg")


@pytest.mark.parametrize("args, message", [
    (["--resume", "/nonexistent/run"], "no config.json"),
    (["--config", "/nonexistent.toml"], "config file not found: /nonexistent.toml"),
    (["--generations", "0"], "--generations must be >= 1"),
    (["--backend", "spark"], "unknown backend 'spark'; valid: serial, loky, dask"),
    (["--workers", "0"], "workers must be >= 1, got 0"),
    (["--resume"], "bare --resume needs --out DIR"),
])
def test_evolve_bad_input_is_one_clear_line(args, message, capsys):
    assert evolve_main(["--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err


def test_evolve_refuses_to_overwrite_a_run(two_generations, capsys):
    out, _ = two_generations
    assert evolve_main(["--quiet", "--out", str(out)]) == 2
    assert "already holds a run; use --resume" in capsys.readouterr().err
