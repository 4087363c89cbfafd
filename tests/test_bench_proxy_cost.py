"""The proxy cost benchmark: every registered proxy's declared passes, the budget and ratio, and a tiny run."""
from __future__ import annotations

import json

import pytest

import bench_proxy_cost as bench
from eznas.proxies import list_proxies


def test_every_registered_proxy_declares_the_passes_its_protocol_needs():
    assert set(bench.PASSES) == set(bench.discovered.hand_made())
    assert all(n.forwards >= 0 and n.fwdbwd >= 0 and n.why for n in bench.PASSES.values())


def test_a_proxys_own_batch_counts_as_passes_of_the_batch():
    assert bench.counts(bench.PASSES["swap"], 16) == (32, 0)
    assert bench.counts(bench.PASSES["az_expressivity"], 16) == (0, 4)  # 64 noise images: 4 batches of 16
    assert bench.counts(bench.PASSES["az_nas"], 64) == (1, 1)


def test_the_budget_and_ratio_of_a_hand_made_example():
    passes = {"build": [0.01, 0.02, 0.01], "forward": [0.1, 0.2, 0.1], "fwdbwd": [0.3, 0.5, 0.3]}
    # budgets: 1 build + 2 forwards + 1 fwd+bwd = 0.51, 0.92, 0.51
    r = bench.judged([1.02, 0.92, 2.55], passes, builds=1, f=2, fb=1)
    assert r["budget"] == pytest.approx(0.51) and r["seconds"] == pytest.approx(1.02)
    assert r["ratio"] == pytest.approx(2.0) and r["target_met"]  # median of 2, 1 and 5
    assert not bench.judged([1.6], {k: v[:1] for k, v in passes.items()}, builds=1, f=2, fb=1)["target_met"]


def test_a_program_needs_its_collection_and_its_proxy_terminals_once():
    # N and P with gradients (P needs D), synflow's forward+backward, AZ-NAS's pass of 64 images once
    text = "net_add(net_rank(sum_units(mean(pre_grad_P))), net_rank(net_add(zc_synflow, " \
           "net_add(zc_az_expressivity, zc_az_progressivity))))"
    f, fb, why = bench.program_counts(text, 16)
    assert (f, fb) == (0, 2 + 1 + 4) and "zc_synflow" in why
    assert bench.program_counts("sum_units(mean(pre_N))", 16)[:2] == (1, 0)  # N read, D to find the units


def test_the_discovered_proxies_need_what_their_programs_read():
    assert set(bench.discovered.hand_made()) | {"discovered", "discovered_s0"} <= set(list_proxies())
    assert "discovered" not in bench.discovered.hand_made()
    text = bench.discovered.provenance("discovered")["program"]
    assert bench.needs_of("discovered", 16) == bench.program_counts(text, 16)[:2]


def test_a_tiny_run_writes_each_proxys_seconds_budget_and_ratio(tmp_path, data_root):
    out = tmp_path / "proxy_cost.json"
    argv = ["--spaces", "NASBench201", "--n_archs", "1", "--proxies", "params,flops,naswot", "--repeats", "1",
            "--data-root", str(data_root), "--out", str(out)]
    bench.main(argv)
    results = json.loads(out.read_text())
    space = results["spaces"]["NASBench201"]
    assert space["settings"]["n_archs"] == 1 and len(space["uids"]) == 1 and space["machine"]["torch_threads"] == 1
    assert all(space[k] > 0 for k in ("t_build", "t_forward", "t_fwdbwd"))
    assert set(space["proxies"]) == {"params", "flops", "naswot"}
    for row in space["proxies"].values():
        assert row["seconds"] > 0 and row["budget"] > 0 and row["builds"] == 1 and not row["errors"]
        assert row["ratio"] == pytest.approx(row["seconds"] / row["budget"])  # one arch
    assert space["proxies"]["flops"]["forwards"] == 1 and set(results["passes"]) == set(bench.discovered.hand_made())
    assert "| naswot | " in out.with_suffix(".md").read_text()
    before = out.read_text()
    bench.main(argv)  # the space is recorded with these settings: nothing measured again
    assert json.loads(out.read_text())["spaces"] == json.loads(before)["spaces"]
