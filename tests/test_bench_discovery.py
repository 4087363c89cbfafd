"""The discovery benchmark's join of the proxies' verify runs from several folders (``--proxies-from A,B``)."""
import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

SPEC = importlib.util.spec_from_file_location(
    "bench_discovery", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_discovery.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_verify_runs_of_the_same_archs_join_arch_by_arch_keeping_the_first_folders_figures():
    first = pd.DataFrame({"uid": [1, 2, 3], "accuracy": [90.0, 91.0, 92.0], "meco": [0.1, 0.3, 0.2],
                          "seed program meco": [1.0, 2.0, 3.0]})
    second = pd.DataFrame({"uid": [3, 1, 2], "accuracy": [92.0, 90.0, 91.0], "swap": [30.0, 10.0, 20.0],
                           "seed program meco": [9.0, 9.0, 9.0]})
    summary, scores = bench.join_scored([
        (Path("a"), {"n_archs": 3, "proxies": {"meco": {"spearman": 0.5}, "seed program meco": {"spearman": 1.0}}},
         first),
        (Path("b"), {"n_archs": 3, "proxies": {"swap": {"spearman": 1.0}, "seed program meco": {"spearman": -1.0}}},
         second)])
    assert list(summary["proxies"]) == ["meco", "seed program meco", "swap"]
    assert summary["proxies"]["seed program meco"] == {"spearman": 1.0}  # the first folder's figures
    assert list(scores.columns) == ["uid", "accuracy", "meco", "seed program meco", "swap"]
    assert scores.set_index("uid")["swap"].to_dict() == {1: 10.0, 2: 20.0, 3: 30.0}  # joined by arch, not by row
    assert scores["seed program meco"].tolist() == [1.0, 2.0, 3.0]
    other = second.assign(uid=[3, 1, 4])
    with pytest.raises(SystemExit, match="error: --proxies-from: b scored other archs than a"):
        bench.join_scored([(Path("a"), {"proxies": {}}, first), (Path("b"), {"proxies": {}}, other)])


def test_a_finished_verify_run_is_reused_with_the_proxies_it_scored(tmp_path):
    assert bench.scored(tmp_path / "missing", ("meco", "swap")) == ("meco", "swap")
    (tmp_path / "summary.json").write_text(json.dumps({"config": {"proxies": ["az_nas", "meco"]}}))
    assert bench.scored(tmp_path, ("meco", "swap")) == ("az_nas", "meco")


def test_winners_a_finished_run_already_scored_are_taken_from_it_and_the_rest_share_a_new_run(tmp_path):
    def finished(name: str, programs: list[str]) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({"config": {"programs": programs}}))

    tag = "NASBench201-cifar10-b16"
    finished(f"{tag}-seeds0-1", ["w0", "w1"])
    finished(f"{tag}0-seeds2", ["w2"])  # another tag (batch 160): not this task's run
    (tmp_path / f"{tag}-seeds5").mkdir()  # unfinished: not reused
    winners = {0: "w0", 2: "w2", 3: "w3"}
    assert bench.winner_groups(tmp_path, tag, winners, apart=False) == {
        "seeds0-1": ({0: "w0"}, ("w0", "w1")), "seeds2-3": ({2: "w2", 3: "w3"}, None)}
    assert bench.winner_groups(tmp_path, tag, winners, apart=True) == {
        "seeds0-1": ({0: "w0"}, ("w0", "w1")), "seed2": ({2: "w2"}, None), "seed3": ({3: "w3"}, None)}
    finished(f"{tag}-seeds2", ["w2", "w3"])
    assert bench.winner_groups(tmp_path, tag, winners, apart=False) == {
        "seeds0-1": ({0: "w0"}, ("w0", "w1")), "seeds2": ({2: "w2", 3: "w3"}, ("w2", "w3"))}
    assert bench.winner_groups(tmp_path / "none", tag, {0: "w0"}, apart=False) == {"seeds0": ({0: "w0"}, None)}


def test_the_profile_part_runs_cold_then_warm_and_checks_the_targets(data_root, tmp_path, monkeypatch, capsys):
    """--part profile on the tiny run (run in this process instead of evolve.py's): both profiles in one table,
    the targets checked with their figures, and a second call reuses both runs."""
    import sys
    import time

    from eznas.gp.run import run_evolution
    from tests.conftest import tiny

    calls = []

    def fake_run_evolve(seed, run, cache, extra):
        calls.append((seed, extra))
        start = time.perf_counter()
        run_evolution(tiny(data_root, seed=seed), run, cache_dir=cache, test_networks=4)
        return {"wall_seconds": time.perf_counter() - start, "peak_rss_gb": 0.5, "resumed": False}

    monkeypatch.setattr(bench, "run_evolve", fake_run_evolve)
    out = tmp_path / "discovery.json"
    argv = ["bench_discovery.py", "--part", "profile", "--seeds", "3,4", "--runs", str(tmp_path / "runs"),
            "--out", str(out), "--evolve-args", "--quick --set 'fitness.selection=24'"]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    extra = ["--quick", "--set", "fitness.selection=24"]  # the shell's quoting undone
    assert calls == [(3, extra), (4, extra)]
    result = json.loads(out.read_text())["profile"]["3"]  # section profile, keyed by the cold run's GP seed
    cold, warm = result["runs"]["cold"], result["runs"]["warm"]
    assert cold["profile"]["networks"]["computed"] > 0 and cold["run"].endswith("cold-seed3")
    assert warm["profile"]["networks"]["looked_up"] > 0 and warm["run"].endswith("warm-seed4")
    assert [t["met"] for t in result["targets"]][:2] == [True, True]  # seconds, far below 15 and 4 minutes
    printed = capsys.readouterr().out
    assert "| waiting on workers |" in printed and "| statistics |" in printed and "GP bookkeeping" in printed
    assert out.with_suffix(".md").read_text() in printed
    bench.main()  # measured already: both runs reused
    assert len(calls) == 2 and json.loads(out.read_text())["profile"]["3"] == result
