"""One current results file per benchmark script: each setting a script measures is a part of that file, and a
run writes its own part while keeping the others (baselines' --part, search's whole_table / lazy, rankers' rows
per setting, the probe's proxies, discovery's evolve and profile sections). Small synthetic figures; nothing is
scored."""
from __future__ import annotations

import json

import pytest

import bench_baselines
import bench_discovery
import bench_probe
import bench_rankers
import bench_search
from _common import record_part


def metrics(rho: float, seconds: float = 0.1) -> dict:
    return {"spearman": rho, "kendall": rho / 2, "ci95": {"spearman": [rho - 0.05, rho + 0.05]},
            "seconds_per_arch": seconds}


def test_a_part_is_written_and_the_other_parts_are_kept_with_the_md_made_from_all_of_them(tmp_path):
    out = tmp_path / "bench"
    record_part(out, "one", {"x": 1}, lambda part: f"x = {part['x']}\n")
    record_part(out, "two", {"x": 2}, lambda part: f"x = {part['x']}\n")
    results = record_part(out, "one", {"x": 3}, lambda part: f"x = {part['x']}\n")  # measured again: replaced
    assert json.loads((tmp_path / "bench.json").read_text()) == results == {"parts": {"one": {"x": 3}, "two": {"x": 2}}}
    assert (tmp_path / "bench.md").read_text() == "## one\n\nx = 3\n\n## two\n\nx = 2\n"


def baseline_part(task: str, proxies: dict[str, float]) -> dict:
    return {"seed": 0, "batch_size": 16, "nbsz": {}, "paper_batch": {},
            "tasks": {task: {"n_archs": 20, "wall_seconds": 5.0,
                             "proxies": {n: metrics(r) for n, r in proxies.items()}}}}


def test_a_baselines_part_keeps_the_others_and_each_part_is_a_table_of_the_proxies_it_measured(tmp_path):
    out = tmp_path / "baselines"
    record_part(out, "nb101", baseline_part("nb101-cifar10", {"params": 0.7, "flops": 0.6}), bench_baselines.markdown)
    results = record_part(out, "classic", baseline_part("darts-cifar10", {"synflow": 0.72}), bench_baselines.markdown)
    assert list(results["parts"]) == ["nb101", "classic"]
    assert results["parts"]["nb101"]["tasks"]["nb101-cifar10"]["proxies"]["flops"]["spearman"] == 0.6
    assert bench_baselines.measured_proxies(results["parts"]["nb101"]) == ("params", "flops")
    md = (tmp_path / "baselines.md").read_text()
    assert md.index("## nb101") < md.index("| params | 0.700 / 0.350 |") < md.index("## classic")
    assert md.index("## classic") < md.index("| synflow |")
    assert "| synflow |" not in md[:md.index("## classic")]  # a part's table holds only its own proxies


def test_the_probe_tables_standard_column_is_read_from_the_baseline_parts_the_later_part_winning(tmp_path):
    out = tmp_path / "baselines"
    record_part(out, "classic", baseline_part("darts-cifar10", {"fisher": 0.36, "params": 0.81}), bench_baselines.markdown)
    record_part(out, "fisher", baseline_part("darts-cifar10", {"fisher": 0.21}), bench_baselines.markdown)
    record_part(out, "nb101", baseline_part("nb101-cifar10", {"params": 0.1}), bench_baselines.markdown)  # not DARTS
    standard = bench_probe.standard_figures(tmp_path / "baselines.json")
    assert {n: (m["spearman"], m["source"]) for n, m in standard.items()} == {
        "fisher": (0.21, "baselines.json, part fisher"), "params": (0.81, "baselines.json, part classic")}


def probe_run(proxies: dict[str, float], n: int = 500) -> dict:
    return {"seed": 0, "batch_size": 16, "proxies": list(proxies),
            "variants": {v: {"n_archs": n, "wall_seconds": 1.0, "proxies": {p: metrics(r) for p, r in proxies.items()}}
                         for v in bench_probe.VARIANTS}}


def test_proxies_measured_again_on_the_probe_replace_their_figures_and_the_others_are_kept():
    standard = {"swap": metrics(0.68), "synflow": metrics(0.72), "jacov": metrics(-0.13)}
    before = bench_probe.merged({}, probe_run({"swap": 0.91, "synflow": 0.90, "jacov": 0.05}), standard)
    after = bench_probe.merged(before, probe_run({"synflow": 0.911, "az_nas": 0.58}), standard)
    probe = after["variants"]["probe-first16"]["proxies"]
    assert {n: m["spearman"] for n, m in probe.items()} == {"swap": 0.91, "synflow": 0.911, "jacov": 0.05, "az_nas": 0.58}
    assert after["proxies"] == ["swap", "synflow", "jacov", "az_nas"]
    assert after["compared"] == ["swap", "synflow", "jacov"]  # az_nas has no standard-network figure
    assert after["probe_better"] == ["swap", "synflow", "jacov"]
    md = bench_probe.markdown(after)
    assert "| az_nas | — | 0.580 / 0.290" in md and "for 3 of 3 proxies: swap, synflow, jacov." in md
    with pytest.raises(SystemExit, match="scored 500 archs, this run 100"):
        bench_probe.merged(after, probe_run({"synflow": 0.9}, n=100), standard)


def search_row(fitness: str, accuracy: float) -> dict:
    return {"dataset": "cifar10", "strategy": "rea", "fitness": fitness, "rho": None, "accuracy": (accuracy, 0.0),
            "rank": (100.0, 0.0), "top_percent": (1.0, 0.0), "seconds": (5.0, 0.0), "oracle": (94.0, 0.0)}


def search_part(*rows: dict) -> dict:
    return {"budget": 50, "seeds": 2, "table_archs": -1, "rows": list(rows),
            "optimum": {"cifar10": {"table": 94.37, "archs": 15625}}}


def test_a_lazy_search_run_writes_the_lazy_part_and_keeps_the_whole_table_part(tmp_path):
    out = tmp_path / "search.json"
    record_part(out, "whole_table", search_part(search_row("params", 93.7)), bench_search.markdown)
    record_part(out, "lazy", search_part(search_row("params", 93.6), search_row("zico", 93.5)), bench_search.markdown)
    # a lazy run measuring zico again: its row replaced, params' kept; the whole-table part untouched
    part = bench_search.merged(bench_search.part_of(out, "lazy"), search_part(search_row("zico", 93.9)))
    results = record_part(out, "lazy", part, bench_search.markdown)
    lazy = results["parts"]["lazy"]["rows"]
    assert [(r["fitness"], r["accuracy"][0]) for r in lazy] == [("params", 93.6), ("zico", 93.9)]
    assert results["parts"]["whole_table"]["rows"][0]["accuracy"] == [93.7, 0.0]
    md = (tmp_path / "search.md").read_text()
    assert md.startswith("## whole_table\n") and "\n## lazy\n" in md and "93.90 ± 0.00" in md


def ranker_row(ranker: str, tau: float, n_test: int = 1000, nar: dict | None = None) -> dict:
    row = {"dataset": "cifar10", "ranker": ranker, "k": 1000 if nar else 0, "n_test": n_test,
           "test": {"kendall": tau, "spearman": tau + 0.1, "ci95": {"spearman": [tau, tau + 0.2]}}}
    return {**row, "nar": nar} if nar else row


def test_rankers_rows_of_another_setting_are_their_own_and_a_setting_measured_again_replaces_its_row():
    small, large = {"d_model": 64, "layers": 2, "epochs": 100}, {"d_model": 128, "layers": 6, "epochs": 55}
    from eznas.report import merge_rows
    before = [ranker_row("nar", 0.81, nar=small), ranker_row("meco", 0.73), ranker_row("meco", 0.35, n_test=200)]
    now = [ranker_row("nar", 0.76, nar=large), ranker_row("meco", 0.74)]
    rows = merge_rows(before, now, key=bench_rankers.setting)
    assert [(r["ranker"], r["n_test"], r["test"]["kendall"]) for r in rows] == [
        ("nar", 1000, 0.81), ("meco", 1000, 0.74), ("meco", 200, 0.35), ("nar", 1000, 0.76)]
    md = bench_rankers.markdown({"n_test": 1000, "rows": rows})
    assert "nar (d_model 128, 6 layers, 55 epochs)" in md and "nar (d_model 64, 2 layers, 100 epochs)" in md


def discovery_run(wall: float) -> dict:
    return {"wall_seconds": wall, "peak_rss_gb": 3.0, "cache_bytes": 2e6, "resumed": False, "winner": "params"}


def test_discovery_keeps_other_evolve_runs_as_sections_and_tabulates_their_costs(tmp_path, monkeypatch):
    out = tmp_path / "discovery.json"
    test = {"task": "NASBench201:cifar10", "batch_size": 16, "n_archs": 100, "agreement": {"0": {}},
            "proxies": {"params": metrics(0.77), "synflow": metrics(0.79)}}
    out.write_text(json.dumps({"seeds": {"0": discovery_run(1782.0)}, "test": {"NB201-b16": test},
                               "cold": {"0": discovery_run(1588.0)}}))
    md = bench_discovery.markdown(json.loads(out.read_text()))
    assert "| 0 | 1782 s |" in md and "| 0 (cold) | 1588 s |" in md
    assert md.index("| 0 | 1782 s |") < md.index("| 0 (cold) | 1588 s |")
    # --costs-from a section of the same file: each seed's measured cost from it, the copied run's description
    monkeypatch.setattr(bench_discovery, "describe_run", lambda run: {"run": str(run), "winner": "flops", "phases": {}})
    results = bench_discovery.costs_from("cold", tmp_path / "runs", out, [0], json.loads(out.read_text()))
    assert json.loads(out.read_text()) == results
    assert results["seeds"]["0"] == {"wall_seconds": 1588.0, "peak_rss_gb": 3.0, "resumed": False, "cache_bytes": 2e6,
                                     "costs_from": "cold", "run": str(tmp_path / "runs" / "seed0"), "winner": "flops"}
    assert results["cold"] == {"0": discovery_run(1588.0)} and "test" in results  # the other sections kept


def run_profile(wall: float, computed: int, looked_up: int) -> dict:
    """A run's profile.json as eznas/gp/profile.py writes it, with made-up seconds."""
    def row(seconds: float) -> dict:
        return {"seconds": seconds, "share": seconds / wall}
    return {"wall_seconds": wall, "workers": 2, "networks": {"computed": computed, "looked_up": looked_up},
            "phases": {"waiting on workers": row(0.6 * wall), "selection": row(0.05 * wall)},
            "groups": {"GP bookkeeping": row(0.05 * wall)},
            "worker_phases": {"statistics": {"seconds": 0.5 * wall, "share_of_busy": 0.5, "per_network": 0.01}},
            "terminals": {}, "idle": {"idle_share": 0.2}}


def test_the_profile_part_is_a_section_of_discovery_keyed_by_the_cold_seed_and_keeps_the_others(
        tmp_path, monkeypatch, capsys):
    out = tmp_path / "discovery.json"
    test = {"task": "NASBench201:cifar10", "batch_size": 16, "n_archs": 100, "agreement": {"0": {}},
            "proxies": {"params": metrics(0.77), "synflow": metrics(0.79)}}
    before = {"seeds": {"0": discovery_run(1782.0)}, "test": {"NB201-b16": test}, "cold": {"0": discovery_run(1588.0)}}
    out.write_text(json.dumps(before))
    calls = []

    def fake_run_evolve(seed, run, cache, extra):  # writes the run's profile.json instead of running evolve.py
        calls.append(seed)
        run.mkdir(parents=True)
        wall, computed = (600.0, 900) if seed == 0 else (120.0, 0)
        (run / "profile.json").write_text(json.dumps(run_profile(wall, computed, 1000 - computed)))
        return {"wall_seconds": wall + 5, "peak_rss_gb": 3.5, "resumed": False}

    monkeypatch.setattr(bench_discovery, "run_evolve", fake_run_evolve)
    argv = ["bench_discovery.py", "--part", "profile", "--seeds", "0,1", "--runs", str(tmp_path / "runs"),
            "--out", str(out)]
    monkeypatch.setattr("sys.argv", argv)
    bench_discovery.main()
    assert calls == [0, 1]
    results = json.loads(out.read_text())
    assert {k: results[k] for k in before} == before  # the other sections kept as they were
    assert list(results["profile"]) == ["0"]
    entry = results["profile"]["0"]
    assert entry["command"] == "evolve.py"
    assert entry["runs"]["cold"]["seed"] == 0 and entry["runs"]["cold"]["run"].endswith("cold-seed0")
    assert entry["runs"]["warm"]["seed"] == 1 and entry["runs"]["warm"]["profile"]["networks"]["looked_up"] == 1000
    assert [t["met"] for t in entry["targets"]] == [True, True, True, True]  # 10.1 min, 2.1 min, 5%, 5%
    md = (tmp_path / "discovery.md").read_text()
    assert md == bench_discovery.markdown(results) and md in capsys.readouterr().out
    # the test tables first, as without a profile, then the profile's under its heading
    assert md.startswith(bench_discovery.held_out_tables(results))
    assert "| 0 (cold) | 1588 s |" in md and "(profile)" not in md  # the profile is no evolve section of costs
    profile = md[md.index("## profile: cold seed 0, warm seed 1\n"):]
    assert "| wall (the process) | 605.0 s | 125.0 s |" in profile
    assert "| networks computed / looked up | 900 / 100 | 0 / 1000 |" in profile
    assert "| waiting on workers | 360.0 s (60.0%) | 72.0 s (60.0%) |" in profile
    assert "| cold default run (wall, the process) | 10.1 min | 15 min | met |" in profile
    bench_discovery.main()  # measured already: both runs reused, nothing changed
    assert calls == [0, 1] and json.loads(out.read_text()) == results
    monkeypatch.setattr("sys.argv", [*argv, "--section", "profile", "--part", "evolve"])
    with pytest.raises(SystemExit, match="--section profile: the profile part's section"):
        bench_discovery.main()
