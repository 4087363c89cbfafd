"""profile.json: where a run's time went (issue 41), without changing anything else the run writes."""
import json
import shutil

import pytest

from eznas.gp import profile as profiling
from eznas.gp.profile import WAITING, Profile, summary_line
from eznas.gp.run import run_evolution
from tests.conftest import tiny


@pytest.fixture(scope="module")
def cold_and_warm(data_root, tmp_path_factory):
    """The tiny run from an empty value cache, then the same run again on the cache it filled."""
    root = tmp_path_factory.mktemp("profile")
    for name in ("cold", "warm"):
        run_evolution(tiny(data_root), root / name, cache_dir=root / "cache", test_networks=4)
    return root


def read(folder):
    return json.loads((folder / "profile.json").read_text())


def test_phases_are_exclusive_and_charged_to_their_stage(monkeypatch):
    ticks = iter(range(100))
    monkeypatch.setattr(profiling.time, "perf_counter", lambda: float(next(ticks)))
    p = Profile()  # t = 0
    with p.phase("evolution"):  # opens at 1
        with p.phase("objective"):  # 2
            with p.phase(WAITING):  # 3, closes at 4
                pass
        # objective closes at 5, evolution at 6
    report = p.report(workers=2, covers="the whole run")  # at 7
    assert p.seconds == {("evolution", "evolution"): 2.0, ("evolution", "objective"): 2.0,
                         ("evolution", WAITING): 1.0}
    assert report["stages"]["evolution"]["seconds"] == 5.0 and report["phases"]["other"]["seconds"] == 2.0
    assert sum(r["seconds"] for r in report["phases"].values()) == report["wall_seconds"]


def test_a_run_writes_its_profile_and_a_warm_rerun_computes_no_network(cold_and_warm):
    cold, warm = read(cold_and_warm / "cold"), read(cold_and_warm / "warm")
    for report in (cold, warm):
        assert report["covers"] == "the whole run" and report["resumed"] is False and report["workers"] == 1
        seconds = [row["seconds"] for row in report["phases"].values()]
        assert min(seconds) >= 0 and sum(seconds) <= report["wall_seconds"] + 1e-6
        assert set(report["stages"]) <= {"setup", "network features", "evolution", "validation", "test", "export"}
        assert report["groups"]["GP bookkeeping"]["share"] < 1 and "profile of the whole run" in summary_line(report)
    assert cold["networks"]["computed"] > 0 and warm["networks"]["computed"] == 0
    assert warm["networks"]["looked_up"] > 0 and not warm["worker_phases"]
    assert {"build", "statistics", "aggregates", "features"} <= set(cold["worker_phases"])
    busy = cold["idle"]["worker_busy_seconds"]
    assert 0 < busy <= cold["phases"][WAITING]["seconds"] + 1e-6  # serial: the tasks run inside the wait
    assert busy == pytest.approx(sum(r["seconds"] for r in cold["worker_phases"].values()), rel=0.05)


def test_profiling_changes_no_other_output_and_no_cached_value(cold_and_warm):
    for name in ("logbook.csv", "hall_of_fame.json", "references.json", "test_scores.csv", "best_proxy.py"):
        assert (cold_and_warm / "cold" / name).read_bytes() == (cold_and_warm / "warm" / name).read_bytes(), name
    keys = {k for f in (cold_and_warm / "cache").rglob("*.json") for k in json.loads(f.read_text())["values"]}
    phases = set(read(cold_and_warm / "cold")["worker_phases"]) | {profiling.BUSY}
    assert keys and not keys & phases  # timings travel beside the values, never into the value cache


def test_a_resumed_runs_profile_covers_the_part_it_did(cold_and_warm, data_root, tmp_path):
    copy = tmp_path / "more"
    shutil.copytree(cold_and_warm / "cold", copy)
    run_evolution(tiny(data_root, generations=3), copy, resume=True, cache_dir=cold_and_warm / "cache",
                  test_networks=4)
    report = read(copy)
    assert report["resumed"] is True and report["resumed_from_generation"] == 2
    assert report["covers"].startswith("the resumed part: generations 3 to 3")
    assert "network features" in report["stages"] and report["networks"]["looked_up"] > 0
