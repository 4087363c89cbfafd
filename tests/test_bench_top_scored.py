"""The top of a score cache: its best-scored and most accurate archs with their table ranks, SWAP's ceiling,
the archs near the best score; a pool fitness and a non-cache file are one error."""
import importlib.util
import json
from pathlib import Path

import pytest

from eznas.errors import EznasError
from eznas.spaces import get_space

SPEC = importlib.util.spec_from_file_location(
    "bench_top_scored", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_top_scored.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def settings(fitness: str, parts: list[str]) -> dict:
    return {"search_space": "NASBench201", "dataset": "cifar10", "batch_size": 16, "seed": 0, "probe": None,
            "width": None, "cells": None, "device": "cpu", "fitness": fitness, "parts": parts}


def write_cache(path: Path, head: dict, scores: dict[str, float]) -> Path:
    lines = [{"settings": head}] + [{"uid": u, "values": {head["parts"][0]: s}, "seconds": 1.0} for u, s in scores.items()]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_the_top_lists_scores_accuracies_and_table_ranks_and_counts_the_flat_top(tmp_path, data_root):
    space = get_space("NASBench201")
    archs = sorted(space.load(space.default_benchmark(data_root, "cifar10"), "cifar10"), key=lambda a: -a.accuracy)
    best, good, poor, worst = archs[0], archs[100], archs[8000], archs[-1]
    # the poor arch scores highest, the best arch lowest; the good one within 1% of the top
    scores = {poor.uid: 65000.0, good.uid: 64500.0, worst.uid: 50000.0, best.uid: 40000.0}
    cache = write_cache(tmp_path / "c.jsonl", settings("swap", ["swap"]), scores)
    top = bench.top_of(cache, data_root, top=2, near=0.01)
    assert top["ceiling"] == 2.0 ** 16 and top["n_archs"] == top["n_scorings"] == 4
    assert [r["uid"] for r in top["top_scored"]] == [poor.uid, good.uid]
    assert [r["uid"] for r in top["most_accurate"]] == [best.uid, good.uid]
    assert top["most_accurate"][0]["rank"] == 1 and top["most_accurate"][0]["score"] == 40000.0
    assert top["top_scored"][0]["rank"] == 1 + sum(a.accuracy > poor.accuracy for a in archs)
    assert top["n_near_best"] == 2
    assert top["near_best_accuracy"] == [poor.accuracy, pytest.approx((poor.accuracy + good.accuracy) / 2), good.accuracy]
    text = bench.markdown([top])
    assert "ceiling 2^16 = 65,536" in text and "| 65000 | 99.18 |" in text
    plain = bench.top_of(write_cache(tmp_path / "p.jsonl", settings("params", ["params"]), scores), data_root, 1, 0.0)
    assert plain["ceiling"] is None and plain["n_near_best"] == 1 and "% of ceiling" not in bench.markdown([plain])


def test_a_pool_fitness_or_a_file_that_is_no_cache_is_one_error_naming_it(tmp_path, data_root):
    pool = write_cache(tmp_path / "pool.jsonl", settings("az_nas", ["expressivity", "trainability"]), {})
    with pytest.raises(EznasError, match="pool.jsonl: its fitness has parts"):
        bench.top_of(pool, data_root, 10, 0.01)
    junk = tmp_path / "junk.jsonl"
    junk.write_text("uid,score\n")
    with pytest.raises(EznasError, match="junk.jsonl: line 1 is not JSON"):
        bench.top_of(junk, data_root, 10, 0.01)
