"""search.py: encodings, random search and regularised evolution, the run folder, resume and bad input."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from eznas.cli import search_main
from eznas.errors import EznasError
from eznas.search import run as search_run
from eznas.search.config import SearchConfig
from eznas.search.run import Search
from eznas.search.strategies import RegularizedEvolution, SearchState, Scored
from eznas.spaces import get_space


def search(data_root, tmp_path, name="run", **kw) -> Search:
    cfg = SearchConfig(**{"proxy": "params", "budget": 12, "population": 4, "sample_size": 2,
                          "data_root": str(data_root), "out": str(tmp_path / name), **kw})
    return Search(cfg)


@pytest.mark.parametrize("space", ["NASBench201", "DARTS", "NASBench301", "NASBenchMacro"])
def test_encodings_round_trip_the_tables_and_mutate_one_position(space, data_root):
    sp = get_space(space)
    enc = sp.encoding()
    rng = np.random.default_rng(0)
    for arch in sp.load(sp.default_benchmark(data_root, "cifar10"), "cifar10")[:20]:
        code = enc.encode(arch.spec)
        assert enc.encode(enc.decode(code)) == code
        child = enc.mutate(code, rng)
        assert sum(a != b for a, b in zip(code, child)) == 1 and enc.valid(child)
        sp.build(enc.decode(enc.random(rng)), 10)  # a random draw is a buildable arch
    if space == "NASBench301":  # two different inputs per node, as NB-301's genotypes
        assert all(len(set(enc.random(rng)[1::2][i:i + 2])) == 2 for i in range(0, 16, 2))


def test_rea_ages_out_the_oldest_and_breeds_from_the_tournament_winner():
    enc = get_space("NASBench201").encoding()
    rea, state, rng = RegularizedEvolution(population=3, sample_size=3), SearchState(), np.random.default_rng(1)
    for i in range(5):
        code = rea.propose(state, enc, None, rng)
        assert code not in state.seen()
        state.history.append(Scored(code, str(i), enc.decode(code), float(i == 1), math.nan, 0.0))
        rea.observe(state, i)
    assert state.population == [2, 3, 4]  # 0 and 1 aged out
    winner = state.history[4]
    state.history[4] = Scored(winner.code, "4", winner.spec, 9.0, math.nan, 0.0)
    child = rea.propose(state, enc, None, rng)  # the whole population is the tournament: 4 wins
    assert sum(a != b for a, b in zip(child, winner.code)) == 1


@pytest.mark.parametrize("strategy", ["random", "rea"])
def test_a_search_writes_its_folder_and_reports_the_found_archs_rank(strategy, data_root, tmp_path):
    s = search(data_root, tmp_path, strategy=strategy)
    result = s.run()
    out = tmp_path / "run"
    assert {p.name for p in out.iterdir()} >= {"config.json", "state.json", "trajectory.csv", "result.json", "search.png"}
    traj = pd.read_csv(out / "trajectory.csv")
    assert len(traj) == 12 and traj.uid.is_unique and traj.best_score.is_monotonic_increasing
    best = traj.loc[traj.score.idxmax()]
    found = result["found"]
    assert found["uid"] == str(best.uid) and found["accuracy"] == best.accuracy
    table = get_space("NASBench201").load(get_space("NASBench201").default_benchmark(data_root, "cifar10"), "cifar10")
    assert found["rank"] == 1 + sum(a.accuracy > found["accuracy"] for a in table) and result["table_archs"] == 15625
    assert round(result["table_optimum"], 2) == result["published_optimum"] == 94.37 and result["oracle_of_scored"] == traj.accuracy.max()
    assert json.loads((out / "result.json").read_text())["found"]["uid"] == found["uid"]
    again = search(data_root, tmp_path, "again", strategy=strategy).run()
    assert again["found"] == found  # the same seed, the same search


def test_darts_searches_any_genotype_or_keeps_to_the_table(data_root, tmp_path):
    free = search(data_root, tmp_path, "free", search_space="DARTS").run()
    assert free["config"]["in_table"] is False and free["config"]["probe"] == "swap"
    traj = pd.read_csv(tmp_path / "free" / "trajectory.csv")
    assert traj.uid.str.startswith("g").mean() > 0.9 and traj.accuracy.isna().mean() > 0.9
    kept = search(data_root, tmp_path, "kept", search_space="DARTS", in_table=True).run()
    assert pd.read_csv(tmp_path / "kept" / "trajectory.csv").accuracy.notna().all()
    assert kept["found"]["rank"] >= 1 and kept["table_archs"] == 500


def test_a_killed_search_resumes_to_the_same_end(data_root, tmp_path, monkeypatch):
    whole = search(data_root, tmp_path, "whole").run()
    monkeypatch.setattr(search_run, "CHECKPOINT_SECONDS", 0.0)
    real, calls = Search.score, []

    def dying(self, arch):
        if len(calls) == 7:
            raise KeyboardInterrupt
        calls.append(arch.uid)
        return real(self, arch)

    monkeypatch.setattr(Search, "score", dying)
    with pytest.raises(KeyboardInterrupt):
        search(data_root, tmp_path, "part").run()
    monkeypatch.setattr(Search, "score", real)
    assert len(json.loads((tmp_path / "part" / "state.json").read_text())["history"]) == 7
    cfg = SearchConfig(proxy="params", budget=12, population=4, sample_size=2, data_root=str(data_root),
                       out=str(tmp_path / "part"))
    with pytest.raises(EznasError, match=r"already holds a run \(config\.json\): continue it with --resume"):
        Search(cfg)
    with pytest.raises(EznasError, match=r"--proxy would change the run's proxy \('params' there, 'flops' now\); a "
                       r"resumed run keeps its settings \(only --budget, --time_budget"):
        Search(SearchConfig(**{**cfg.__dict__, "proxy": "flops"}), resume=True)
    saved = json.loads((tmp_path / "part" / "config.json").read_text())
    for newer in ("table", "top_k"):  # a search saved before these settings existed resumes as it ran
        saved.pop(newer)
    (tmp_path / "part" / "config.json").write_text(json.dumps(saved))
    resumed = Search(cfg, resume=True).run()
    assert resumed["found"] == whole["found"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "part" / "trajectory.csv").drop(columns="seconds"),
                                  pd.read_csv(tmp_path / "whole" / "trajectory.csv").drop(columns="seconds"))
    longer = Search(SearchConfig(**{**cfg.__dict__, "budget": 15}), resume=True).run()  # a budget may grow
    assert longer["archs_scored"] == 15


def test_the_cli_searches_with_a_hall_of_fame_program(data_root, tmp_path, capsys):
    hall = tmp_path / "hall_of_fame.json"
    hall.write_text(json.dumps([{"exported": "net_log(params)"}, {"exported": "flops"}]))
    code = search_main(["--program-file", str(hall), "--budget", "6", "--population", "3", "--sample_size", "2",
                        "--data-root", str(data_root), "--out", str(tmp_path / "cli"), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0 and "fitness=net_log(params) archs_scored=6" in printed and "top " in printed
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["program"] == "net_log(params)"


@pytest.mark.parametrize("argv, message", [
    (["--strategy", "bayes"], "unknown search strategy 'bayes'; valid: random, rea"),
    (["--proxy", "nope"], "unknown proxy 'nope'"),
    (["--budget", "0"], "--budget must be >= 1, got 0"),
    (["--budget", "10", "--population", "20"], "--population 20 is larger than --budget 10"),
    (["--sample_size", "30"], "sample_size <= population"),
    (["--proxy", "params", "--program", "flops"], "give one fitness: --proxy or --program"),
    (["--dataset", "ImageNet16-120"], "missing column 'imagenet16_120_test'"),
    (["--search_space", "NASBench101"], "invalid choice: 'NASBench101' (choose from 'DARTS', 'NASBench201'"),
    (["--resume"], "--resume needs --out DIR"),
])
def test_bad_input_is_one_line_naming_it(argv, message, data_root, tmp_path, capsys):
    code = search_main([*argv, "--data-root", str(data_root), "--quiet", *(["--out", str(tmp_path / "x")]
                                                                            if "--resume" not in argv else [])])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_a_search_stops_when_every_table_arch_is_scored(data_root, tmp_path, caplog):
    path = tmp_path / "nats_sss.csv"
    specs = ["8:8:8:8:8", "16:16:16:16:16", "8:16:24:32:40", "64:8:8:8:8", "8:64:64:8:8"]
    pd.DataFrame({"index": range(5), "arch_str": specs, "cifar10_test": [80.0, 84.0, 88.0, 82.0, 86.0]}).to_csv(
        path, index=False)
    result = search(data_root, tmp_path, search_space="NATSBenchSSS", benchmark_path=str(path), budget=8).run()
    assert result["archs_scored"] == 5 and "every arch the search may propose is scored (5)" in caplog.text
    assert result["found"]["spec"] == "8:64:64:8:8"  # the most parameters


def test_scores_of_a_verify_run_are_looked_up_not_computed(data_root, tmp_path, monkeypatch):
    from eznas.cli import verify_main

    table = tmp_path / "nb201_part.csv"
    full = pd.read_csv(data_root / "nb201" / "nb201_acc_200ep.csv")
    full.head(40).to_csv(table, index=False)
    assert verify_main(["--benchmark-path", str(table), "--data-root", str(data_root), "--proxy", "params",
                        "--quiet", "--bootstrap", "5", "--out", str(tmp_path / "v"),
                        "--results-csv", str(tmp_path / "all.csv")]) == 0
    live = search(data_root, tmp_path, "live", benchmark_path=str(table), budget=10).run()
    monkeypatch.setattr(search_run, "score_arch", None)  # every score must come from the verify run
    looked = search(data_root, tmp_path, "looked", benchmark_path=str(table), budget=10, scores=str(tmp_path / "v")).run()
    assert looked["found"] == live["found"] and looked["looked_up"] == 10
    with pytest.raises(EznasError, match=r"--scores .*: its seed is 0, the search's 1"):
        search(data_root, tmp_path, "other", benchmark_path=str(table), seed=1, scores=str(tmp_path / "v"))
    other = search(data_root, tmp_path, "draws", benchmark_path=str(table), budget=10, seed=1, score_seed=0,
                   scores=str(tmp_path / "v")).run()  # other draws, the same scores
    assert other["looked_up"] == 10 and other["config"]["score_seed"] == 0
    with pytest.raises(EznasError, match=r"no scores of 'flops' there \(it scored params\)"):
        search(data_root, tmp_path, "flops", benchmark_path=str(table), proxy="flops", scores=str(tmp_path / "v"))


POOL = "net_add(net_rank(params), net_scale(net_rank(sum_units(mean(weight))), 0.5))"


def log_ranks(parts: pd.DataFrame) -> np.ndarray:
    """POOL by hand: its parts' log ranks among the rows given."""
    n = len(parts)
    return (np.log(sps.rankdata(parts["part:params"]) / n)
            + 0.5 * np.log(sps.rankdata(parts["sum_units(mean(weight))"]) / n))


def test_a_pool_fitness_ranks_each_arch_among_the_archs_scored_so_far(data_root, tmp_path, monkeypatch):
    """A pool program (or az_nas) guides a search: each arch's score is its rank combination among every arch
    scored so far, the best-so-far at step i the best of the first i ranked among themselves; a killed pool
    search resumes to the same end, and looked-up parts give the same search as computed ones."""
    from eznas.cli import verify_main

    table = tmp_path / "nb201_part.csv"
    pd.read_csv(data_root / "nb201" / "nb201_acc_200ep.csv").head(40).to_csv(table, index=False)
    whole = search(data_root, tmp_path, "whole", proxy=None, program=POOL, benchmark_path=str(table))
    result = whole.run()
    history = whole.state.history
    parts = pd.DataFrame([s.parts for s in history])
    want = log_ranks(parts)
    assert [s.score for s in history] == pytest.approx(list(want))
    assert result["found"]["uid"] == history[int(np.argmax(want))].uid
    trajectory = pd.read_csv(tmp_path / "whole" / "trajectory.csv", dtype={"best_uid": str})
    for i in (1, 5, len(history)):
        assert trajectory.best_uid[i - 1] == history[int(np.argmax(log_ranks(parts.head(i))))].uid
    monkeypatch.setattr(search_run, "CHECKPOINT_SECONDS", 0.0)
    real = Search.score
    monkeypatch.setattr(Search, "score", lambda self, arch: (_ for _ in ()).throw(KeyboardInterrupt)
                        if len(self.state.history) == 7 else real(self, arch))
    with pytest.raises(KeyboardInterrupt):
        search(data_root, tmp_path, "part", proxy=None, program=POOL, benchmark_path=str(table)).run()
    monkeypatch.setattr(Search, "score", real)
    cfg = dataclasses.replace(whole.cfg, out=str(tmp_path / "part"))
    assert Search(cfg, resume=True).run()["found"] == result["found"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "part" / "trajectory.csv").drop(columns="seconds"),
                                  pd.read_csv(tmp_path / "whole" / "trajectory.csv").drop(columns="seconds"))
    assert verify_main(["--benchmark-path", str(table), "--data-root", str(data_root), "--program", POOL,
                        "--quiet", "--bootstrap", "5", "--out", str(tmp_path / "v"),
                        "--results-csv", str(tmp_path / "all.csv")]) == 0
    monkeypatch.setattr(search_run, "score_arch", None)  # every part from the verify run
    looked = search(data_root, tmp_path, "looked", proxy=None, program=POOL, benchmark_path=str(table),
                    scores=str(tmp_path / "v")).run()
    assert looked["found"] == result["found"] and looked["looked_up"] == len(history)


def test_az_nas_guides_a_search(data_root, tmp_path, capsys):
    assert search_main(["--proxy", "az_nas", "--strategy", "random", "--budget", "3", "--quiet",
                        "--data-root", str(data_root), "--out", str(tmp_path / "x")]) == 0
    result = json.loads((tmp_path / "x" / "result.json").read_text())
    assert result["fitness"] == "az_nas" and result["found"]["accuracy"] > 0 and result["not_finite"] == 0


def test_searches_sharing_a_score_cache_score_each_arch_once(data_root, tmp_path, monkeypatch):
    """The first search appends each arch it scores; a later one reads those and scores only the others; a
    search with all its archs cached computes nothing and finds what it found scoring them, with the seconds
    they took; a cache of other settings or a damaged line is one error naming it."""
    table = tmp_path / "nb201_part.csv"
    pd.read_csv(data_root / "nb201" / "nb201_acc_200ep.csv").head(40).to_csv(table, index=False)
    cache = tmp_path / "params.jsonl"
    live = search(data_root, tmp_path, "live", benchmark_path=str(table), budget=10, score_cache=str(cache)).run()
    lines = cache.read_text().splitlines()
    assert json.loads(lines[0])["settings"]["fitness"] == "params" and len(lines) == 11
    computed = []
    real = search_run.score_arch
    monkeypatch.setattr(search_run, "score_arch", lambda *a, **k: computed.append(1) or real(*a, **k))
    whole = search(data_root, tmp_path, "whole", benchmark_path=str(table), strategy="random", budget=40, seed=1,
                   score_seed=0, score_cache=str(cache)).run()  # every arch of the table: 30 new, 10 read
    assert len(computed) == 30 and whole["archs_scored"] == 40 and len(cache.read_text().splitlines()) == 41
    monkeypatch.setattr(search_run, "score_arch", None)  # all cached now: nothing may be computed
    again = search(data_root, tmp_path, "again", benchmark_path=str(table), budget=10, score_cache=str(cache)).run()
    assert again["found"] == live["found"] and again["seconds"] == pytest.approx(live["seconds"])
    assert again["config"]["score_cache"] == str(cache)
    with pytest.raises(EznasError, match=r"--score_cache .*params.jsonl: its fitness is 'params', the search's 'flops'"):
        search(data_root, tmp_path, "flops", benchmark_path=str(table), proxy="flops", score_cache=str(cache))
    with pytest.raises(EznasError, match=r"--score_cache .*: its seed is 0, the search's 3"):
        search(data_root, tmp_path, "seed3", benchmark_path=str(table), seed=3, score_cache=str(cache))
    cache.write_text(cache.read_text() + '{"uid": "7", "values": \n')
    with pytest.raises(EznasError, match=r"--score_cache .*params.jsonl: line 42 is not JSON"):
        search(data_root, tmp_path, "broken", benchmark_path=str(table), score_cache=str(cache))
    assert not (tmp_path / "broken").exists()  # the cache is read before the run folder is made
    with pytest.raises(OSError, match=rf"--score_cache {tmp_path}: is a folder, not a file"):
        search(data_root, tmp_path, "folder", benchmark_path=str(table), score_cache=str(tmp_path))


def test_a_score_cache_reads_what_searches_beside_it_appended_whole_lines_only(tmp_path):
    from eznas.search.cache import ScoreCache

    settings = {"dataset": "cifar10", "fitness": "params"}
    mine, theirs = ScoreCache(tmp_path / "c.jsonl", settings), ScoreCache(tmp_path / "c.jsonl", settings)
    theirs.add("1", {"params": 3.0}, 0.5)
    assert "1" not in mine
    with open(tmp_path / "c.jsonl", "a") as f:
        f.write('{"uid": "2", "values": {"params": 4.0}, "seco')  # a line still being written
    mine.refresh()
    assert mine.get("1") == ({"params": 3.0}, 0.5) and "2" not in mine
    with open(tmp_path / "c.jsonl", "a") as f:
        f.write('nds": 0.25}\n{"uid": 3}\n')
    with pytest.raises(EznasError, match=r"c.jsonl: line 4 is not an arch's scores"):
        mine.refresh()
