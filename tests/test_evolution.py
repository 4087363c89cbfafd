"""The evolution engine on a tiny real sample: outputs, determinism, resume, workers, fuzzing, export."""
import dataclasses
import json
import math
import pickle
import random

import numpy as np
import pandas as pd
import pytest
import torch
from deap import gp
from scipy import stats as sps

from eznas.cli import evolve_main, verify_main
from eznas.config import from_dict, load_toml, override
from eznas.data import Batch, BatchSource
from eznas.errors import DataError, EznasError
from eznas.gp.checkpoint import distinct, exported_program, hall_of_fame
from eznas.gp.config import EvolutionConfig
from eznas.gp.evolution import Evolution
from eznas.gp.winner import blend_parts, log_spread
from eznas.gp.operators import Individual, var_blend
from eznas.gp import objective, values
from eznas.gp.config import FitnessConfig, Task
from eznas.gp.objective import FLOOR, combine, evaluate_programs
from eznas.gp.profile import Profile
from eznas.gp.values import FitnessData, ValueCache
from eznas.gp.parse import parse_program
from eznas.gp.program import ProgramError
from eznas.gp.operators import gen_half_and_half
from eznas.gp.pset import make_pset
from eznas.gp.seeds import SEEDS
from eznas.gp.run import run_evolution
from eznas.parallel import ParallelConfig
from eznas.networks import arch_seed, build_network
from eznas.spaces import Arch, get_space
from eznas.stats import CollectorConfig, collect
from tests.conftest import tiny

def test_two_generation_run_writes_the_run_folder(two_generations):
    out, result = two_generations
    for name in ("config.json", "logbook.csv", "hall_of_fame.json", "checkpoint.pkl", "evolution.png",
                 "best_proxy.py", "test_scores.csv"):
        assert (out / name).is_file(), name
    logbook = pd.read_csv(out / "logbook.csv")
    assert list(logbook.gen) == [0, 1, 2] and {"full", "invalid"} <= set(logbook.columns)
    hof = json.loads((out / "hall_of_fame.json").read_text())
    assert len(hof) == 5 and {"program", "exported", "fitness", "fitness_per_task", "validation_fitness",
                              "validation_per_task", "stage", "networks", "height", "size"} <= set(hof[0])
    assert all(h["height"] <= 10 and h["stage"] == "full" and h["networks"] == 12 for h in hof)
    tests = pd.read_csv(out / "test_scores.csv")
    assert len(tests) == 3 and set(tests.task) == {"NASBench201:cifar10"} and (tests.n <= 8).all()
    assert json.loads((out / "config.json").read_text())["population"] == 8


def test_splits_are_disjoint_and_do_not_depend_on_the_gp_seed(data_root, tmp_path):
    cfg = tiny(data_root)
    a = FitnessData(cfg.fitness, ValueCache(tmp_path), data_root)
    b = FitnessData(tiny(data_root, seed=7).fitness, ValueCache(tmp_path), data_root)
    uids = {s: {x.uid for x in a.networks("NASBench201:cifar10", s)} for s in values.SPLITS}
    assert len(uids["selection"]) == 12 and len(uids["validation"]) == 6 and len(uids["test"]) == 15625 - 18
    assert not (uids["selection"] & uids["validation"]) and not (uids["test"] & (uids["selection"] | uids["validation"]))
    assert [x.uid for x in b.networks("NASBench201:cifar10")] == [x.uid for x in a.networks("NASBench201:cifar10")]
    other = FitnessData(dataclasses.replace(cfg.fitness, pool_seed=1), ValueCache(tmp_path), data_root)
    assert [x.uid for x in other.networks("NASBench201:cifar10")] != [x.uid for x in a.networks("NASBench201:cifar10")]


def test_winner_is_chosen_on_the_validation_networks(two_generations, data_root):
    """By hand: each program's Kendall tau over the 6 validation networks, from statistics collected afresh."""
    from scipy import stats as sps

    out, result = two_generations
    hof = json.loads((out / "hall_of_fame.json").read_text())
    valid = [h["validation_fitness"] for h in hof]
    assert valid == sorted(valid, reverse=True)
    assert [b["exported"] for b in result["best"]] == [h["exported"] for h in hof[:3]]
    cfg = tiny(data_root)
    data = FitnessData(cfg.fitness, None, data_root)
    task = Task.parse("NASBench201:cifar10")
    archs = data.networks(str(task), "validation")
    space = get_space("NASBench201")
    batch = BatchSource(data_root, "cifar10", 4, cfg.fitness.pool_seed).batch()
    best = parse_program(hof[0]["exported"])
    scores = []
    for arch in archs:
        net = build_network(space, arch, 10, cfg.fitness.pool_seed)
        stats = collect(net, batch, CollectorConfig(names=tuple(best.terminals), dtype="float16",
                                                    noise_seed=cfg.fitness.pool_seed))
        scores.append(best.score(stats))
    tau = sps.kendalltau(scores, [a.accuracy for a in archs]).statistic
    assert hof[0]["validation_fitness"] == pytest.approx(tau) == pytest.approx(hof[0]["validation_per_task"][str(task)])


def test_validation_tasks_alone_choose_the_winner_and_selection_never_reads_them(two_generations, data_root,
                                                                                  cache_dir, tmp_path):
    """fitness.validation_tasks: the hall of fame of the reference run validated on NB-201 CIFAR-100's validation
    networks alone (the run selected on CIFAR-10): each row's validation fitness is its Kendall tau there, in the
    orientation selection chose, and the winner is the best there."""
    out, _ = two_generations
    cfg = tiny(data_root, fitness=dataclasses.replace(tiny(data_root).fitness,
                                                      validation_tasks=("NASBench201:cifar100",)))
    data = FitnessData(cfg.fitness, ValueCache(cache_dir), data_root)
    assert list(data.split("selection")) == list(data.split("test")) == ["NASBench201:cifar10"]
    assert list(data.split("validation")) == ["NASBench201:cifar100"]
    state = Evolution(tiny(data_root), out, FitnessData(tiny(data_root).fitness, ValueCache(cache_dir), data_root)).load()
    rows = Evolution(cfg, tmp_path, data).validate(state)
    assert {t for r in rows for t in r["validation_per_task"]} == {"NASBench201:cifar100"}
    assert [r["validation_fitness"] for r in rows] == sorted((r["validation_fitness"] for r in rows), reverse=True)
    networks = data.split("validation")
    archs = networks["NASBench201:cifar100"]
    for row in rows[:3]:
        (scores, _), = objective.program_scores([parse_program(row["program"])], data, networks)
        tau = sps.kendalltau(scores["NASBench201:cifar100"], [a.accuracy for a in archs]).statistic
        assert row["validation_fitness"] == pytest.approx(state.memo[row["program"]].orientation * tau)
        assert row["fitness"] == state.memo[row["program"]].fitness  # the selection fitness, on CIFAR-10
    with pytest.raises(EznasError, match="validation_tasks"):
        FitnessConfig(tasks=("NASBench201:cifar10",), validation_tasks=("NASBench201:cifar10",))


def test_fitness_by_margin_measures_each_task_against_its_best_reference(data_root, cache_dir, tmp_path):
    """combine = "margin": a program's fitness is its worst task's correlation minus the best reference's there
    (the seeds and the network terminals that are proxies, each in its orientation, on the same networks): the
    best reference in generation 0 scores 0, every other program its distance to it."""
    cfg = tiny(data_root, fitness=dataclasses.replace(tiny(data_root).fitness, combine="margin"))
    data = FitnessData(cfg.fitness, ValueCache(cache_dir), data_root)
    evo = Evolution(cfg, tmp_path, data)
    state = evo.initial_state()
    task = "NASBench201:cifar10"
    networks = data.split("selection")
    refs = [parse_program(t) for t in data.references]
    assert set(data.references) >= set(SEEDS.values()) | {"params", "flops"}
    acc = [a.accuracy for a in networks[task]]
    taus = []
    for scores, _ in objective.program_scores(refs, data, networks):
        tau = sps.kendalltau(scores[task], acc).statistic
        taus.append(abs(tau) if np.isfinite(tau) else -math.inf)  # one task: each reference oriented by its sign
    mark = max(taus)
    full = {t: ev for t, ev in state.memo.items() if ev.stage == "full" and ev.fitness > FLOOR}
    assert full and all(ev.fitness == pytest.approx(max(objective.MARGIN_FLOOR, ev.per_task[task] - mark))
                        for ev in full.values())
    assert max(state.memo[t].fitness for t in SEEDS.values()) <= 1e-12
    rows = evo.validate(state)  # the winner by margin on the validation networks, against the references there
    refs_there = json.loads((tmp_path / "references.json").read_text())
    assert max(r["validation_fitness"] for r in refs_there) == pytest.approx(0.0)
    assert [r["validation_fitness"] for r in rows] == sorted((r["validation_fitness"] for r in rows), reverse=True)
    two = objective.combine({"a": 0.5, "b": 0.3}, "margin", marks={"a": 0.6, "b": 0.1})
    assert two.fitness == pytest.approx(-0.1) and objective.combine({"a": 0.5, "b": 0.3}, "min").fitness == 0.3
    assert objective.combine({"a": 0.9, "b": -0.5}, "margin", marks={"b": 0.9}).fitness == objective.MARGIN_FLOOR > FLOOR
    with pytest.raises(EznasError, match="combine must be min or mean or margin"):
        FitnessConfig(combine="max")


def test_seed_programs_start_in_the_population(data_root, cache_dir, tmp_path):
    cfg = tiny(data_root)
    evo = Evolution(cfg, tmp_path, FitnessData(cfg.fitness, ValueCache(cache_dir), data_root))
    state = evo.initial_state()
    texts = [str(ind) for ind in state.population]
    assert texts[:len(SEEDS)] == list(SEEDS.values())
    assert len(set(texts)) == len(texts) == 8
    # evaluated in full at once, never screened (a 20-network screen dropped the MeCo seed)
    assert all(state.memo[t].stage == "full" and state.memo[t].networks == 12 for t in SEEDS.values())
    assert {v for t in SEEDS.values() for v in parse_program(t).values()} <= state.known


def test_resume_gives_the_same_run(two_generations, data_root, cache_dir, tmp_path):
    straight = tmp_path / "straight"
    run_evolution(tiny(data_root, generations=4), straight, cache_dir=cache_dir, test_networks=4)
    split = tmp_path / "split"
    run_evolution(tiny(data_root), split, cache_dir=cache_dir, test_networks=4)
    run_evolution(tiny(data_root, generations=4), split, resume=True, cache_dir=cache_dir, test_networks=4)
    assert (straight / "hall_of_fame.json").read_text() == (split / "hall_of_fame.json").read_text()
    a, b = pd.read_csv(straight / "logbook.csv"), pd.read_csv(split / "logbook.csv")
    pd.testing.assert_frame_equal(a, b)
    before = {f.name: f.read_bytes() for f in split.iterdir()}
    run_evolution(tiny(data_root, generations=4), split, resume=True, cache_dir=cache_dir, test_networks=4)
    assert {f.name: f.read_bytes() for f in split.iterdir()} == before  # a finished run is left as it is


def test_a_finished_run_resumed_with_another_winner_chooses_it_again(two_generations, data_root, cache_dir,
                                                                     tmp_path, capsys, monkeypatch):
    """--resume DIR --winner novel on a finished run: the same evolution (checkpoint and logbook untouched),
    the winner chosen again among the new programs, and config.json saying so; resumed again, nothing moves."""
    monkeypatch.setattr("eznas.gp.winner.NOVEL_MARGIN", 2.0)  # any new program may win (tiny runs' are poor)
    out, _ = two_generations
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in out.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    argv = ["--quiet", "--resume", str(copy), "--cache_dir", str(cache_dir), "--test_networks", "8", "--workers", "1"]
    assert evolve_main([*argv, "--winner", "novel"]) == 0, capsys.readouterr().err
    assert (copy / "logbook.csv").read_bytes() == (out / "logbook.csv").read_bytes()
    was, now = (pickle.loads((d / "checkpoint.pkl").read_bytes()) for d in (out, copy))
    assert now.pop("config")["winner"] == "novel" and was.pop("config")["winner"] == "best"
    assert now.keys() == was.keys() and all(repr(now[k]) == repr(was[k]) for k in now)  # repr: NaN != NaN
    best, novel = (json.loads((d / "hall_of_fame.json").read_text()) for d in (out, copy))
    assert json.loads((out / "config.json").read_text())["winner"] == "best"
    assert json.loads((copy / "config.json").read_text())["winner"] == "novel"
    assert best[0]["validation_fitness"] == max(r["validation_fitness"] for r in best)
    assert novel[0]["novel"] and novel[0]["exported"] in (copy / "best_proxy.py").read_text()
    assert set(pd.read_csv(copy / "test_scores.csv").program) == {r["exported"] for r in novel[:3]}
    before = {f.name: f.read_bytes() for f in copy.iterdir()}
    assert evolve_main(argv) == 0  # the run's own winner setting now: a finished run, left as it is
    assert {f.name: f.read_bytes() for f in copy.iterdir()} == before
    assert evolve_main([*argv, "--winner", "best"]) == 0  # and back
    assert (copy / "hall_of_fame.json").read_text() == (out / "hall_of_fame.json").read_text()
    # a bare --resume with --out (a requeued job) keeps the run's winner unless --winner is given
    import eznas.cli.evolve as cli

    saved = from_dict(EvolutionConfig, json.loads((copy / "config.json").read_text()), "config")
    monkeypatch.setattr(cli, "new_run_config", lambda args: dataclasses.replace(saved, winner="novel"))
    for flags, winner in (([], "best"), (["--winner", "novel"], "novel")):
        cfg, run_dir, resumed = cli.evolve_setup(cli.evolve_parser().parse_args(["--out", str(copy), "--resume", *flags]))
        assert (cfg.winner, run_dir, resumed) == (winner, copy, True)


def test_a_warm_value_cache_does_not_change_the_result(two_generations, data_root, cache_dir, tmp_path):
    out, _ = two_generations  # the cache now holds every value that run computed
    run_evolution(tiny(data_root), tmp_path / "warm", cache_dir=cache_dir, test_networks=8)
    assert (tmp_path / "warm" / "hall_of_fame.json").read_text() == (out / "hall_of_fame.json").read_text()


def test_workers_do_not_change_the_result(two_generations, data_root, tmp_path):
    out, _ = two_generations  # a fresh value cache: the workers compute every value themselves
    run_evolution(tiny(data_root, parallel=ParallelConfig("loky", workers=2)), tmp_path / "w2",
                  cache_dir=tmp_path / "cache", test_networks=8)
    assert (tmp_path / "w2" / "hall_of_fame.json").read_text() == (out / "hall_of_fame.json").read_text()
    profile = json.loads((tmp_path / "w2" / "profile.json").read_text())  # the workers' timings came back
    assert profile["workers"] == 2 and profile["networks"]["computed"] > 0
    assert profile["idle"]["worker_busy_seconds"] > 0 and "statistics" in profile["worker_phases"]


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
    blob = pickle.loads((out / "checkpoint.pkl").read_bytes())
    blob["language"]["primitives"] = blob["language"]["primitives"][1:]  # as if made with another language
    (copy / "checkpoint.pkl").write_bytes(pickle.dumps(blob))
    with pytest.raises(DataError, match="made with another primitive language"):
        run_evolution(tiny(data_root, generations=3), copy, resume=True, cache_dir=cache_dir)


def old_style_pickle(obj) -> bytes:
    """``obj`` pickled as when the language was the top-level package ``primitives`` (before eznas.primitives)."""
    data = pickle.dumps(obj, protocol=2)  # protocol 2 names a class as text: c<module>\n<name>\n
    assert b"ceznas.primitives." in data
    return data.replace(b"ceznas.primitives.", b"cprimitives.")


def test_a_checkpoint_naming_the_old_primitives_package_resumes(two_generations, data_root, cache_dir, tmp_path):
    """A checkpoint whose pickle names ``primitives.*`` (the package's name before it moved into eznas) is
    read with those names as ``eznas.primitives.*``: the finished run resumes as it is."""
    from eznas.io import read_pickle
    from eznas.primitives.aggregate import ProgramFailure

    with pytest.raises(ModuleNotFoundError, match="'primitives'"):
        pickle.loads(old_style_pickle(ProgramFailure("x")))  # what plain pickle makes of it
    out, result = two_generations
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in out.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    blob = pickle.loads((out / "checkpoint.pkl").read_bytes())
    (copy / "checkpoint.pkl").write_bytes(old_style_pickle({**blob, "failure": ProgramFailure("x")}))
    with open(copy / "checkpoint.pkl", "rb") as f:
        assert type(read_pickle(f)["failure"]) is ProgramFailure
    resumed = run_evolution(tiny(data_root), copy, resume=True, cache_dir=cache_dir, test_networks=8)
    assert [r["program"] for r in resumed["best"]] == [r["program"] for r in result["best"]]
    for name in ("logbook.csv", "hall_of_fame.json"):  # finished: nothing to do
        assert (copy / name).read_bytes() == (out / name).read_bytes(), name


def test_a_run_from_before_blends_resumes_as_it_ran(two_generations, data_root, cache_dir, tmp_path, capsys):
    """A checkpoint and config.json without blend_parts, winner and pool_ops (made before they existed)
    resume with no blends, the best winner and no pool ops (the language they ran with), not today's
    defaults; a nested setting newer than the run (fitness.dtype) is filled key by key with what it used."""
    out, _ = two_generations
    old = tmp_path / "old"
    old.mkdir()
    for name in ("logbook.csv", "hall_of_fame.json"):
        (old / name).write_bytes((out / name).read_bytes())
    blob = pickle.loads((out / "checkpoint.pkl").read_bytes())
    config = json.loads((out / "config.json").read_text())
    for d in (blob["config"], config):
        del d["blend_parts"], d["winner"], d["pool_ops"], d["fitness"]["dtype"]
    (old / "checkpoint.pkl").write_bytes(pickle.dumps(blob))
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="differs in: blend_parts"):
        run_evolution(tiny(data_root, generations=3, blend_parts=6), old, resume=True, cache_dir=cache_dir)
    assert evolve_main(["--quiet", "--resume", str(old), "--generations", "3", "--cache_dir", str(cache_dir),
                        "--test_networks", "2", "--workers", "1"]) == 0, capsys.readouterr().err
    assert list(pd.read_csv(old / "logbook.csv").gen) == [0, 1, 2, 3]


class FakeData(FitnessData):
    """Fitness data over a tiny ReLU-Conv-BN network family on random images (fast enough to fuzz)."""

    def __init__(self, folder, n=6, **config):
        self.config = FitnessConfig(tasks=("fake:cifar10",), selection=n, validation=2, **config)
        self.cache, self.tasks = ValueCache(folder), [Task("fake", "cifar10")]
        from tests.test_stats import RCB

        g = torch.Generator().manual_seed(0)
        batch = Batch(torch.randn(4, 3, 8, 8, generator=g), torch.tensor([0, 1, 2, 0]), 3)
        self._stats, archs = [], []
        for i in range(n):
            torch.manual_seed(i)
            self._stats.append(collect(RCB(), batch, CollectorConfig()))
            archs.append(type("A", (), {"accuracy": float(i), "uid": str(i), "spec": str(i)})())
        self.splits = {"fake:cifar10": {"selection": archs, "validation": [], "test": []}}
        self._by_uid = {("fake:cifar10", a.uid): a for a in archs}
        self.handle = f"fake-{n}-{folder}"  # what network tasks find it by (values.open_data)
        self.computed = 0
        self.profile = Profile()
        values._OPEN[self.handle] = self

    def key(self, task, arch):
        return f"fake{arch.uid}"

    def compute(self, task, arch, aggregates, features, timings=None):
        self.computed += 1
        return values.values_of(self._stats[int(arch.uid)], aggregates, features)


def test_fuzz_1000_random_programs_never_crash_or_give_non_finite_fitness(tmp_path):
    data, pset = FakeData(tmp_path, screen=3, promote=1000), make_pset()
    rng = random.Random(0)
    programs = [parse_program(str(gp.PrimitiveTree(gen_half_and_half(pset, 2, 6, rng)))) for _ in range(1000)]
    results = evaluate_programs(programs, data)
    fits = [r.fitness for r in results]
    assert all(math.isfinite(f) and (f == FLOOR or -1.0 <= f <= 1.0) for f in fits)
    assert sum(f > FLOOR for f in fits) > 100  # most random programs are valid, not all floored
    assert sum(bool(r.failures) for r in results) > 10  # and the invalid ones say why


EXTREME = {  # hand-built programs at the edges, and the reason each must give
    "sum_units(hamming(pre_D, weight))": "ValueError in hamming",
    "sum_units(square(square(square(exp(numel(pre_D))))))": "not finite at unit 0 (sum_units)",
    "net_pow(net_pow(net_pow(net_exp(net_shift(params, 100.0)), 3.0), 3.0), 3.0)": "not finite in net_pow",
    "net_mul(net_scale(sum_units(numel(pre_D)), 1e300), net_scale(params, 1e300))": "not finite in net_mul",
    "swap_units(heaviside(weight_grad_D))": None,  # defined: a weight tensor's rows are its "samples"
    "net_div(params, net_sub(params, params))": None,  # safe division: 0
}


@pytest.mark.parametrize("text, reason", list(EXTREME.items()))
def test_extreme_programs_are_contained_with_their_reason(text, reason, tmp_path):
    data = FakeData(tmp_path, screen=3, promote=1)
    program = parse_program(text)
    value, why = program.evaluate(data._stats[0])
    if reason is None:
        assert why is None and math.isfinite(value)
    else:
        assert math.isnan(value) and why == reason
        (ev,) = evaluate_programs([program], data)
        n = 3 if program.aggregates() else 6  # screened on 3 networks, not promoted; or all known at once
        assert ev.fitness == FLOOR and ev.failures == {reason: n}


def test_a_sum_that_overflows_is_a_reason_not_a_crash():
    from eznas.primitives.aggregate import ProgramFailure, aggregate_units, combine_sum, unit_mean

    with pytest.raises(ProgramFailure, match="OverflowError in sum_units"):
        aggregate_units([1, 2, 3], lambda i, u: torch.tensor(1.7e308, dtype=torch.float64), unit_mean, combine_sum,
                        "sum_units")


def test_racing_screens_new_programs_and_promotes_the_best(tmp_path):
    data = FakeData(tmp_path, n=8, screen=3, promote=2)
    texts = ["sum_units(mean(weight))", "sum_units(std(pre_D))", "sum_units(fro(act_N))", "mean_units(mean(inp_D))"]
    known: set[str] = set()
    results = evaluate_programs([parse_program(t) for t in texts], data, known=known)
    stages = [r.stage for r in results]
    valid = [r for r in results if r.fitness > FLOOR]
    assert stages.count("full") <= 2 and all(r.networks == (8 if r.stage == "full" else 3) for r in valid)
    full = [t for t, r in zip(texts, results) if r.stage == "full"]
    assert known == {t for t in full}  # the promoted programs' aggregates
    computed = data.computed
    again = evaluate_programs([parse_program(f"net_add({full[0]}, params)")], data, known=known)[0]
    assert again.stage == "full" and data.computed == computed  # its aggregate is known: no screening, no work
    fresh = evaluate_programs([parse_program(full[0])], data)[0]  # a new run knows nothing: it races again
    assert fresh == results[texts.index(full[0])]  # (screened, promoted) and ends the same, cache or not
    ranks = sorted(results, key=lambda r: r.rank, reverse=True)
    assert all(r.stage == "full" for r in ranks[:len(full)])  # a full evaluation ranks above any screened one


def test_programs_that_rank_alike_are_one_behaviour_and_the_smallest_is_kept(tmp_path):
    data = FakeData(tmp_path, screen=3, promote=10)
    texts = ["net_scale(sum_units(mean(weight)), 2.0)", "sum_units(mean(weight))", "net_neg(sum_units(mean(weight)))",
             "sum_units(std(pre_D))"]
    evals = dict(zip(texts, evaluate_programs([parse_program(t) for t in texts], data)))
    assert len({evals[t].behaviour for t in texts[:3]}) == 1 and evals[texts[3]].behaviour != evals[texts[0]].behaviour
    individuals = [Individual(parse_program(t.lstrip("-")).tree) for t in texts]
    kept = [str(ind) for ind in distinct(individuals, evals)]
    assert kept == ["sum_units(mean(weight))", "sum_units(std(pre_D))"]


def test_value_cache_round_trips_and_a_corrupt_file_is_named(tmp_path):
    cache = ValueCache(tmp_path)
    cache.update("ab12", {"sum_units(x)": 1.5, "mean_units(y)": "not finite at unit 2 (mean_units)"})
    cache.flush()
    assert ValueCache(tmp_path).get("ab12") == {"sum_units(x)": 1.5, "mean_units(y)": "not finite at unit 2 (mean_units)"}
    other = ValueCache(tmp_path)  # another run merges into the same file instead of overwriting it
    other.update("ab12", {"params": 0.3})
    other.flush()
    assert ValueCache(tmp_path).get("ab12")["sum_units(x)"] == 1.5
    cache.path("ab12").write_text('{"key": "ab12", "values": ')
    with pytest.raises(DataError, match=r"value cache file .*ab12.json is unreadable"):
        ValueCache(tmp_path).get("ab12")


def test_anti_correlated_programs_are_exported_negated(tmp_path):
    data = FakeData(tmp_path, screen=3)
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
    for uid, spec, acc, value in zip(scores.uid, scores.arch, scores.accuracy, scores[program]):
        net = build_network(space, Arch(str(uid), spec, acc), 10, 0)
        if math.isnan(value):  # not defined there: the file says so in one line, never NaN
            with pytest.raises(best.ProxyError):
                best.score(net, batch.x, batch.y)
        else:
            assert best.score(net, batch.x, batch.y) == pytest.approx(value, rel=1e-12, abs=1e-12)


def test_toml_config_is_strict(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("population = 12\n[fitness]\ntasks = ['DARTS:cifar10']\nmetric = 'spearman'\n")
    cfg = load_toml(EvolutionConfig, path)
    assert cfg.population == 12 and cfg.fitness.tasks == ("DARTS:cifar10",) and cfg.fitness.metric == "spearman"
    path.write_text("populaton = 12\n")
    with pytest.raises(EznasError, match="unknown key 'populaton'"):
        load_toml(EvolutionConfig, path)
    with pytest.raises(EznasError, match=r"fitness.selection: expected int, got '20'"):
        from_dict(EvolutionConfig, {"fitness": {"selection": "20"}}, "cfg")


@pytest.mark.parametrize("args, message", [
    (["--resume", "/nonexistent/run"], "no config.json"),
    (["--config", "/nonexistent.toml"], "config file not found: /nonexistent.toml"),
    (["--generations", "0"], "--generations must be >= 1"),
    (["--backend", "spark"], "unknown backend 'spark'; valid: serial, loky, dask"),
    (["--workers", "0"], "workers must be >= 1, got 0"),
    (["--resume"], "bare --resume needs --out DIR"),
    (["--tasks", "NASBench201:cifar10", "--validation_tasks", "NASBench201:cifar10"],
     "--validation_tasks: fitness.validation_tasks must be tasks not among fitness.tasks"),
    (["--validation_tasks", "Foo:cifar10"], "--validation_tasks: unknown space 'Foo'"),
    (["--set", "blend_weights=0"], "blend_weights must be one or more finite numbers > 0"),
    (["--set", "features=zc_synflow"], "seed 'reg_swap' reads 'params', which features leaves out"),
    (["--set", "seed_programs=swap,foo"], "seed_programs: unknown seed 'foo'; valid: eznas, swap"),
])
def test_evolve_bad_input_is_one_clear_line(args, message, capsys):
    assert evolve_main(["--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err


def test_evolve_refuses_to_overwrite_a_run(two_generations, capsys):
    out, _ = two_generations
    assert evolve_main(["--quiet", "--out", str(out)]) == 2
    assert "already holds a run (checkpoint.pkl): continue it with --resume" in capsys.readouterr().err


def test_var_blend_sums_the_logs_of_2_and_3_programs_with_their_orientations():
    parts = [("sum_units(mean(weight))", 1), ("params", -1), ("depth", 1)]
    blends = var_blend(parts, weights=(0.5, 2.0))
    assert len(blends) == 3 * 2 + 1 * 4  # pairs x weights + the triple x weights^2
    assert blends[0] == "net_add(net_log(sum_units(mean(weight))), net_scale(net_log(params), -0.5))"
    assert "net_add(net_add(net_log(sum_units(mean(weight))), net_scale(net_log(params), -2)), " \
           "net_scale(net_log(depth), 0.5))" in blends
    program = parse_program(blends[0])  # log|w| - 0.5 log|params|, computed on the parts' cached values
    assert program.value(None, {"params": 4.0}, {"sum_units(mean(weight))": 3.0}) == pytest.approx(math.log(3) - math.log(2))
    # weights are relative to the first part's orientation: params (-1) then depth (+1) -> depth weighs -1
    assert var_blend(parts, size=2, weights=(1.0,))[2] == "net_add(net_log(params), net_scale(net_log(depth), -1))"
    # and, with spreads, to the parts' spreads of log|x|: w x spread(first) / spread(part)
    scaled = var_blend(parts, size=2, weights=(0.5,), spreads=(3.0, 0.2, 1.5))
    assert scaled == ["net_add(net_log(sum_units(mean(weight))), net_scale(net_log(params), -7.5))",
                      "net_add(net_log(sum_units(mean(weight))), net_scale(net_log(depth), 1))",
                      "net_add(net_log(params), net_scale(net_log(depth), -0.0667))"]
    with pytest.raises(ValueError, match="2 spreads for 3 parts"):
        var_blend(parts, spreads=(1.0, 2.0))


def test_rank_blends_sum_the_log_ranks_of_the_parts_each_ranked_in_its_orientation():
    parts = [("sum_units(mean(weight))", 1), ("params", -1), ("depth", 1)]
    blends = var_blend(parts, weights=(0.5, 2.0), spreads=(3.0, 0.2, 1.5), rank=True)  # ranks need no spreads
    assert len(blends) == 3 * 2 + 1 * 4
    assert blends[0] == "net_add(net_rank(sum_units(mean(weight))), net_scale(net_rank(net_neg(params)), 0.5))"
    assert "net_add(net_add(net_rank(sum_units(mean(weight))), net_scale(net_rank(net_neg(params)), 2)), " \
           "net_scale(net_rank(depth), 0.5))" in blends
    program = parse_program(blends[0])
    assert program.is_pool and program.frontier() == ["sum_units(mean(weight))", "net_neg(params)"]
    weights, params = [3.0, 1.0, 2.0, 5.0], [4.0, 3.0, 2.0, 1.0]
    rows = [program.network_values(None, {"params": p}, {"sum_units(mean(weight))": w}) for w, p in zip(weights, params)]
    want = np.log(sps.rankdata(weights) / 4) + 0.5 * np.log(sps.rankdata(-np.array(params)) / 4)
    assert program.pool_scores(rows) == pytest.approx(list(want))


def test_table_scores_a_column_at_a_time_equal_the_scores_network_by_network():
    """Fitness scores rows of cached values a column at a time (``table_scores``), sharing the columns of
    subtrees between programs: the same numbers and the same reasons as ``pool_scores`` of each row's
    ``network_values``, for per-network and pool programs, failing and non-finite values included."""
    rows = [{"params": 3.0, "depth": 2.0, "zc_synflow": 5.0, "sum_units(mean(weight))": 0.5},
            {"params": 1.0, "depth": 0.0, "zc_synflow": "ValueError in synflow", "sum_units(mean(weight))": 2.0},
            {"params": 2.0, "depth": 4.0, "zc_synflow": 1.0, "sum_units(mean(weight))": math.inf},
            {"params": 4.0, "depth": 1.0, "zc_synflow": 2.0, "sum_units(mean(weight))": "RuntimeError in mean"},
            {"params": 0.5, "depth": 3.0, "zc_synflow": 3e300, "sum_units(mean(weight))": 1.5}]
    texts = ["net_add(net_log(params), net_scale(net_log(zc_synflow), 0.5))",
             "net_mul(zc_synflow, net_mul(zc_synflow, net_exp(depth)))",  # overflows on the last network
             "sum_units(mean(weight))",  # not finite on the third network
             "net_div(sum_units(mean(weight)), depth)",
             "net_add(net_rank(net_log(params)), net_scale(net_rank(net_neg(zc_synflow)), 0.5))",
             "net_sub(net_rank(sum_units(mean(weight))), net_rank(net_mul(depth, net_log(params))))"]
    programs = [parse_program(t) for t in texts] + [parse_program(texts[0]).negated()]
    want = [p.pool_scores([p.network_values(None, row, row) for row in rows]) for p in programs]
    assert any(isinstance(v, str) for w in want for v in w) and any(isinstance(v, float) for w in want for v in w)
    assert [p.table_scores(rows) for p in programs] == want
    shared = dict.fromkeys(["net_log(params)", "zc_synflow", "sum_units(mean(weight))"], None)
    assert [p.table_scores(rows, shared) for p in programs] == want and all(shared.values())
    assert [p.table_scores(rows, shared) for p in programs] == want  # from the shared columns
    with pytest.raises(KeyError, match="network terminal 'flops' was not computed"):
        parse_program("net_log(flops)").table_scores(rows)


def test_blend_parts_are_each_tasks_best_then_the_fittest_of_distinct_behaviour():
    from eznas.gp.objective import Evaluation

    def ev(a: float, b: float, behaviour: str, stage: str = "full") -> Evaluation:
        return Evaluation(min(a, b), 1, {"A": a, "B": b}, stage=stage, behaviour=behaviour)

    memo = {"p1": ev(0.7, 0.6, "x"), "p1_twin": ev(0.7, 0.6, "x"), "p2": ev(0.65, 0.55, "y"),
            "p3": ev(0.5, 0.5, "z"), "b_star": ev(0.1, 0.9, "w"), "screened": ev(0.9, 0.9, "s", "screen"),
            "bad": Evaluation(FLOOR, 1, {"A": math.nan, "B": math.nan})}
    # B's best (b_star, min 0.1) is a part although three programs are fitter; twins count once
    assert blend_parts(memo, 3) == ["p1_twin", "p2", "b_star"]
    assert blend_parts(memo, 5) == ["p1_twin", "p2", "p3", "b_star"]  # every distinct behaviour there is
    assert blend_parts({}, 3) == []
    # programs in `always` (the proxy terminals) join beyond n when valid and of a behaviour not chosen yet
    memo["zc_synflow"] = ev(0.2, 0.3, "v")
    assert blend_parts(memo, 3, always=("zc_synflow", "zc_meco", "p2")) == ["p1_twin", "p2", "zc_synflow", "b_star"]


def test_log_spread_is_the_mean_std_of_log_abs_over_tasks():
    scores = {"a": [1.0, math.e, -math.e ** 2, math.nan], "b": [5.0, 5.0 * math.e]}
    assert log_spread(scores) == pytest.approx((np.std([0.0, 1.0, 2.0]) + 0.5) / 2)
    assert log_spread({"a": [2.0, 2.0, -2.0]}) == 1.0 and log_spread({"a": [0.0, math.nan]}) == 1.0


def test_blends_of_the_best_programs_join_the_offspring_evaluated_in_full(data_root, cache_dir, tmp_path):
    cfg = tiny(data_root, blend_parts=3, blend_keep=2, pool_ops=True)
    evo = Evolution(cfg, tmp_path, FitnessData(cfg.fitness, ValueCache(cache_dir), data_root))
    state = evo.initial_state()
    known, before = set(state.known), set(state.memo)
    evo.generation = 2  # a promotion generation
    blends, n = evo.blends(state)
    assert 0 < len(blends) <= 2 and n > 0 and state.known == known  # no new aggregate measured: no promotion
    made = [t for t in state.memo if t not in before]
    kinds = ("net_add(net_log(", "net_add(net_add(net_log(", "net_add(net_rank(", "net_add(net_add(net_rank(")
    assert all(t.startswith(kinds) for t in made)
    assert any("net_rank" in t for t in made) and any("net_rank" not in t for t in made)  # log and rank blends
    assert len(made) == n and all(state.memo[t].stage == "full" for t in made)
    assert [str(b) for b in blends] == sorted(made, key=lambda t: state.memo[t].rank, reverse=True)[:len(blends)]
    again, _ = evo.blends(state)  # the best blends are parts now: blends of blends, within the height limit
    assert all(b.height <= cfg.max_height for b in again)
    with pytest.raises(EznasError, match="blend_parts must be 0"):
        EvolutionConfig(blend_parts=1)


def test_equal_weight_blends_fit_no_weight(data_root, cache_dir, tmp_path):
    """blend_weights = (1,): each rank blend is an equal-weight sum of its parts' log ranks (the hand-made rank
    ensembles' form), and fewer blends are tried than with the default's four weights."""
    def rank_weights(text: str) -> set[float]:  # the weight of each net_scale(net_rank(...), w) in the program
        tree = parse_program(text).tree
        out = set()
        for i, node in enumerate(tree):
            if node.name == "net_scale" and tree[i + 1].name == "net_rank":
                out.add(float(tree[tree.searchSubtree(i + 1).stop].value))
        return out

    counts = {}
    for weights in ((1.0,), EvolutionConfig().blend_weights):
        cfg = tiny(data_root, blend_parts=3, blend_keep=2, pool_ops=True, blend_weights=weights)
        evo = Evolution(cfg, tmp_path / str(len(weights)), FitnessData(cfg.fitness, ValueCache(cache_dir), data_root))
        state = evo.initial_state()
        before = set(state.memo)
        evo.generation = 2
        _, counts[weights] = evo.blends(state)
        made = [t for t in state.memo if t not in before]
        if weights == (1.0,):
            ranks = [t for t in made if t.startswith(("net_add(net_rank(", "net_add(net_add(net_rank("))]
            assert ranks and all(rank_weights(t) == {1.0} for t in ranks)
    assert 0 < counts[(1.0,)] < counts[EvolutionConfig().blend_weights]
    with pytest.raises(EznasError, match="blend_weights must be"):
        EvolutionConfig(blend_weights=(0.0,))
    assert override(EvolutionConfig(), "blend_weights=1,2").blend_weights == (1.0, 2.0)
    assert from_dict(EvolutionConfig, {"blend_weights": [1]}, "cfg").blend_weights == (1.0,)
    with pytest.raises(EznasError, match="blend_weights: expected a list of numbers"):
        from_dict(EvolutionConfig, {"blend_weights": ["1"]}, "cfg")


def test_variation_rates_are_checked():
    from eznas.errors import EznasError

    with pytest.raises(EznasError, match=r"sum <= 1, got cxpb=0.4, mutpb=0.4, joinpb=0.5"):
        EvolutionConfig(joinpb=0.5)
    assert EvolutionConfig(cxpb=0.5, mutpb=0.5, joinpb=0.0).joinpb == 0.0


def test_a_cell_in_two_tasks_of_one_space_has_a_value_key_per_task(data_root):
    from eznas.gp.config import Task
    from eznas.gp.values import FitnessData

    tasks = ("NASBench201:cifar10", "NASBench201:cifar100")
    data = FitnessData(FitnessConfig(tasks=tasks, selection=4, validation=2, screen=2), None, data_root)
    c10, c100 = (Task.parse(t) for t in tasks)
    arch = data.networks(tasks[0])[0]
    same_cell = data.arch(tasks[1], arch.uid)  # every cell is in each dataset's table
    first = data.key(c10, arch)  # memoised first: it must not answer for the other dataset
    assert data.key(c100, same_cell) != first and data.key(c10, arch) == first


def test_a_task_can_size_its_own_networks_without_changing_its_archs(data_root):
    from eznas.errors import EznasError
    from eznas.gp.config import Task
    from eznas.gp.values import FitnessData

    assert str(Task.parse("NASBench101:cifar10@width=32")) == "NASBench101:cifar10@width=32"
    assert Task.parse("NASBench101@cells=2@width=8") == Task("NASBench101", "cifar10", width=8, cells=2)
    for bad in ("NASBench101:cifar10@width=0", "NASBench101:cifar10@width", "NASBench101:cifar10@width=8@width=9"):
        with pytest.raises(EznasError, match="bad option"):
            Task.parse(bad)
    small = FitnessData(FitnessConfig(tasks=("NASBench101:cifar10@width=8", "DARTS:cifar10"), selection=4,
                                      validation=2, screen=2), None, data_root)
    plain = FitnessData(FitnessConfig(tasks=("NASBench101:cifar10", "DARTS:cifar10"), selection=4, validation=2,
                                      screen=2), None, data_root)
    nb101, darts = Task.parse("NASBench101:cifar10@width=8"), Task.parse("DARTS:cifar10")
    arch = small.networks(str(nb101))[0]
    assert [a.uid for a in small.networks(str(nb101))] == [a.uid for a in plain.networks("NASBench101:cifar10")]
    assert small.size(nb101) == (8, None) and small.size(darts) == (None, None)  # DARTS keeps its probe's width
    first = small._space(nb101).build(arch.spec, 10)
    assert first.stem[0].out_channels == 8  # NB-101's stem at the task's width
    assert small.key(nb101, arch) != plain.key(Task.parse("NASBench101:cifar10"), arch)
    assert small.key(darts, small.networks("DARTS:cifar10")[0]) == plain.key(darts, plain.networks("DARTS:cifar10")[0])


def test_fitness_scores_darts_genotypes_on_the_probe_network_and_keys_values_by_it(data_root):
    from eznas.gp.config import Task
    from eznas.gp.values import FitnessData

    tasks = ("DARTS:cifar10", "NASBench301:cifar10")
    default = FitnessData(FitnessConfig(tasks=tasks, selection=4, validation=2, screen=2), None, data_root)
    probe = FitnessData(FitnessConfig(tasks=tasks, selection=4, validation=2, screen=2, probe="swap"), None, data_root)
    standard = FitnessData(FitnessConfig(tasks=tasks, selection=4, validation=2, screen=2, probe="none"), None, data_root)
    darts, nb301 = (Task.parse(t) for t in tasks)  # by default each space's network: DARTS the probe, NB-301 its own
    assert default._space(darts).tag == "DARTS-probe-swap" and default._space(nb301).tag == "NASBench301"
    for text in tasks:
        task = Task.parse(text)
        arch = probe.networks(text)[0]
        assert probe._space(task).tag == f"{task.space}-probe-swap" and standard._space(task).tag == task.space
        assert len(probe._space(task).build(arch.spec, 10).cells) == 1
        assert probe.key(task, arch) != standard.key(task, arch)  # cached values of one never serve the other
    with pytest.raises(EznasError, match="fitness.probe must be one of: swap, none"):
        FitnessConfig(probe="tiny")


def test_nb101_is_a_fitness_task_whose_programs_see_every_conv(data_root, one_thread):
    from eznas.gp.config import Task
    from eznas.gp.values import FitnessData

    data = FitnessData(FitnessConfig(tasks=("NASBench101:cifar10",), selection=4, validation=2, screen=2, width=8),
                       None, data_root)
    task, arch = Task.parse("NASBench101:cifar10"), data.networks("NASBench101:cifar10")[0]
    net = data._space(task).build(arch.spec, 10)
    assert net.layers[0][0].out_channels == 8  # fitness.width is NB-101's stem
    values = data.compute(task, arch, ["sum_units(corr_min_eig(pre_N))", "mean_units(fro(inp_D))"], True)
    assert values["n_units"] == sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    assert all(isinstance(values[a], float) and math.isfinite(values[a])
               for a in ("sum_units(corr_min_eig(pre_N))", "mean_units(fro(inp_D))"))


def test_hall_of_fame_records_the_most_similar_reference_and_winner_novel_exports_a_new_program(data_root, cache_dir,
                                                                                               tmp_path, monkeypatch):
    from eznas.gp.winner import NEW_IN_RUN, NOVEL, NOVEL_MARGIN, most_similar, references

    assert most_similar({"t": [1.0, 2.0, 3.0, 4.0]}, {"a": {"t": [4.0, 3.0, 2.0, 1.0]}, "b": {"t": [1, 3, 2, 4]}}) == \
        {"reference": "a", "spearman": 1.0, "task": "t"}  # a reversed ranking is the same ranking
    assert most_similar({"t": [1.0, 1.0, 1.0]}, {"a": {"t": [1.0, 2.0, 3.0]}}) is None  # constant: undefined
    cfg = tiny(data_root, generations=0, winner="novel")
    evo = Evolution(cfg, tmp_path / "run", FitnessData(cfg.fitness, ValueCache(cache_dir), data_root))
    state = evo.run()
    rows = evo.validate(state)  # a new program wins only within NOVEL_MARGIN of the best fitness, else the best
    top = max(r["validation_fitness"] for r in rows)
    near = [r for r in rows if r["novel"] and r["validation_fitness"] >= top - NOVEL_MARGIN]
    assert rows[0] == (max(near, key=lambda r: r["validation_fitness"]) if near else
                       next(r for r in rows if r["validation_fitness"] == top))
    assert any(r["novel"] and r["validation_fitness"] < top - NOVEL_MARGIN for r in rows)  # here: the best exported
    monkeypatch.setattr("eznas.gp.winner.NOVEL_MARGIN", 2.0)  # fitness in [-1, 1]: any new program may win
    rows = evo.validate(state)
    assert all(("most_similar" in r and r["novel"] == (r["most_similar"] is None
                                                     or r["most_similar"]["spearman"] < NOVEL)) for r in rows)
    seeds = [r for r in rows if r["program"] in {SEEDS[n] for n in cfg.seed_programs}]
    assert seeds and all(r["most_similar"]["spearman"] == pytest.approx(1.0) and not r["novel"] for r in seeds)
    # the references: the seed programs, then the network terminals that are registered proxies, each alone
    refs = references(dataclasses.replace(cfg, features=("params", "flops", "depth", "zc_synflow")))
    assert refs == {**{n: SEEDS[n] for n in cfg.seed_programs}, **({} if "params" in cfg.seed_programs else
                    {"params": "params"}), "flops": "flops", "zc_synflow": "zc_synflow"}
    novel = [r["novel"] for r in rows]
    assert any(novel) and novel == sorted(novel, reverse=True)  # the new programs first, the winner among them
    # references.json: each reference on the validation networks, as a program row would measure it there
    saved = {r["reference"]: r for r in json.loads((tmp_path / "run" / "references.json").read_text())}
    assert list(saved) == list(references(cfg))
    vnets = {str(t): evo.data.networks(str(t), "validation") for t in evo.data.tasks}
    for name, ev in zip(saved, objective.evaluate_on([parse_program(r["program"]) for r in saved.values()], evo.data,
                                                    vnets)):
        assert saved[name]["validation_fitness"] == pytest.approx(ev.fitness)
        assert saved[name]["validation_per_task"] == pytest.approx(ev.per_task, nan_ok=True)
    # beside the hall of fame (here of 2): the run's fittest programs new on the selection networks, validated too
    evo = Evolution(dataclasses.replace(cfg, hall_of_fame=2), tmp_path / "run", evo.data)
    more = [Individual(parse_program(t).tree) for t in ("sum_units(mean(weight))", "mean_units(std(act_N))", "depth")]
    evo.evaluate_invalid(more, state, always=frozenset(str(i) for i in more))  # full evaluations outside the hall
    state.hall_of_fame = hall_of_fame(state.memo, evo.pset, evo.cfg.hall_of_fame)
    rows = evo.validate(state)
    assert sum(r["hall_of_fame"] for r in rows) == 2 and rows[0]["novel"]
    extra = evo.judge.novel_programs(state, {str(h) for h in state.hall_of_fame})
    assert {r["program"] for r in rows if not r["hall_of_fame"]} == {str(i) for i in extra}
    assert 0 < len(extra) <= 2 and not {str(i) for i in extra} & {str(h) for h in state.hall_of_fame}
    networks = {str(t): evo.data.networks(str(t), "selection") for t in evo.data.tasks}
    refs = references(cfg)
    ref_scores = {n: sc for n, (sc, _) in zip(refs, objective.program_scores(
        [parse_program(t) for t in refs.values()], evo.data, networks))}
    for ind, (sc, _) in zip(extra, objective.program_scores([parse_program(str(i)) for i in extra], evo.data, networks)):
        assert state.memo[str(ind)].stage == "full" and (most_similar(sc, ref_scores) or {"spearman": 0})["spearman"] < NOVEL
    # with novel elites, also the 2 fittest below NEW_IN_RUN (new with room, the bar they are kept by)
    with_elites = Evolution(dataclasses.replace(cfg, hall_of_fame=2, novel_elites=1), tmp_path / "run", evo.data)
    both = with_elites.judge.novel_programs(state, {str(h) for h in state.hall_of_fame})
    outside = sorted((t for t, e in state.memo.items() if e.rank[0] and t not in {str(h) for h in state.hall_of_fame}),
                     key=lambda t: state.memo[t].rank, reverse=True)
    sims = {t: (most_similar(sc, ref_scores) or {"spearman": 0.0})["spearman"] for t, (sc, _) in
            zip(outside, objective.program_scores([parse_program(t) for t in outside], evo.data, networks))}
    room = [t for t in outside if sims[t] < NEW_IN_RUN]
    behaviours = {state.memo[t].behaviour for t in room}
    assert room and {state.memo[str(i)].behaviour for i in both if sims[str(i)] < NEW_IN_RUN} <= behaviours
    assert {str(i) for i in extra} <= {str(i) for i in both} and len(both) <= 4
    assert max(state.memo[str(i)].fitness for i in both if sims[str(i)] < NEW_IN_RUN) == state.memo[room[0]].fitness
    assert [i.fitness.values for i in both] == sorted((i.fitness.values for i in both), reverse=True)
    with pytest.raises(EznasError, match="winner must be one of best, novel"):
        tiny(data_root, winner="newest")


def test_fitness_ranks_a_pool_program_among_each_tasks_networks(data_root, cache_dir):
    """A pool program's score of a network is the sum of its parts' log ranks among the networks scored
    together: each task's selection networks in fitness, the screening ones when screened."""
    cfg = tiny(data_root)
    data = FitnessData(cfg.fitness, ValueCache(cache_dir), data_root)
    pool = parse_program("net_add(net_rank(sum_units(corr_min_eig(pre_N))), net_scale(net_rank(params), 0.5))")
    parts = [parse_program("sum_units(corr_min_eig(pre_N))"), parse_program("params")]
    for n in (None, cfg.fitness.screen):
        networks = {str(t): data.networks(str(t), "selection", n) for t in data.tasks}
        (meco, _), (params, _), (scores, failures) = objective.program_scores([*parts, pool], data, networks)
        for task, archs in networks.items():
            want = np.log(sps.rankdata(meco[task]) / len(archs)) + 0.5 * np.log(sps.rankdata(params[task]) / len(archs))
            assert scores[task] == pytest.approx(list(want)) and not failures
    with pytest.raises(ProgramError, match="is pool-level"):
        pool.value(None, {"params": 1.0}, {"sum_units(corr_min_eig(pre_N))": 2.0})
    assert "net_rank" in make_pset().mapping and "net_rank" not in make_pset(pool=False).mapping
    assert "net_rank" not in Evolution(cfg, data_root, data).pset.mapping  # tiny: pool_ops off
    assert "net_rank" in Evolution(dataclasses.replace(cfg, pool_ops=True), data_root, data).pset.mapping


def test_novel_elites_keep_the_fittest_new_programs_beside_the_elites_and_survive_a_resume(data_root, cache_dir,
                                                                                           tmp_path):
    """novel_elites = 2: after each generation the population holds the elites and then the 2 fittest full
    programs (outside the elites) that are new on the selection networks; their similarities are checkpointed."""
    from eznas.gp.winner import NEW_IN_RUN, most_similar, references

    cfg = tiny(data_root, generations=2, novel_elites=2)
    data = FitnessData(cfg.fitness, ValueCache(cache_dir), data_root)
    evo = Evolution(cfg, tmp_path / "run", data)
    state = evo.initial_state()
    evo.step(state)
    pop = state.population
    elites, kept = pop[:cfg.elites], pop[cfg.elites:cfg.elites + 2]
    networks = {str(t): data.networks(str(t), "selection") for t in data.tasks}
    refs = references(cfg)
    ref_scores = {n: sc for n, (sc, _) in zip(refs, objective.program_scores(
        [parse_program(t) for t in refs.values()], data, networks))}

    def similarity(ind) -> float:
        (scores, _), = objective.program_scores([parse_program(str(ind))], data, networks)
        return (most_similar(scores, ref_scores) or {"spearman": 0.0})["spearman"]

    assert len(kept) == 2 and all(state.memo[str(i)].rank[0] and similarity(i) < NEW_IN_RUN for i in kept)
    assert all(state.similarity[str(i)] == pytest.approx(similarity(i)) for i in kept)
    # no full new program outside the elites is fitter than the ones kept
    full_new = [t for t, s in state.similarity.items() if s < NEW_IN_RUN and t not in {str(e) for e in elites}]
    assert max(state.memo[t].fitness for t in full_new) == max(state.memo[str(i)].fitness for i in kept)
    assert all(state.similarity[t] == pytest.approx(similarity(parse_program(t))) for t in list(state.similarity)[:5])
    evo.save(state)
    again = Evolution(cfg, tmp_path / "run", data).load()
    assert again.similarity == state.similarity
    assert Evolution(dataclasses.replace(cfg, novel_elites=0), tmp_path / "off", data).judge.new_programs(pop, state, 0) == []
    with pytest.raises(EznasError, match="novel_elites must be >= 0, got -1"):
        tiny(data_root, novel_elites=-1)
