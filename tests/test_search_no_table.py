"""search.py without a ground-truth table (issue 39): a user's own space with an ``encoding()`` and no table
file, searched with ``--no-table``; the top-k archs (top.csv) and the line that builds one; NAS-Bench-Macro's
encoding, with its table and without."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from eznas.cli import search_main
from eznas.errors import ArchError
from eznas.search.config import SearchConfig
from eznas.search.results import TOP_COLUMNS
from eznas.search.run import Search
from eznas.spaces import Encoding, SearchSpace, get_space, searchable_spaces, space_class, spaces_where
from eznas.spaces.base import SPACES
from eznas.spaces.nbmacro import normal_form, parse_arch
from tests.test_search import POOL, log_ranks

WIDTHS = (2, 4, 8)


class ToyConvs(SearchSpace):
    """Three conv layers, each of a width in WIDTHS (``"4-8-2"``); no benchmark table anywhere."""

    name = "ToyConvs"

    def default_benchmark(self, data_root, dataset):
        return data_root / "toy" / "toy_convs.csv"  # never there

    def load(self, path, dataset, accuracy_key=None):
        return pd.read_csv(path)  # a missing file: the error pandas raises

    def build(self, spec, num_classes):
        layers, c = [], 3
        for w in self.parse(spec):
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    @staticmethod
    def parse(spec):
        widths = tuple(int(t) for t in spec.split("-") if t.isdigit())
        if len(widths) != 3 or any(w not in WIDTHS for w in widths):
            raise ArchError(f"ToyConvs arch {spec!r}: expected 3 widths of {WIDTHS} joined by '-'")
        return widths

    def encoding(self):
        return Encoding((WIDTHS,) * 3, self.parse, lambda code: "-".join(map(str, code)))


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(SPACES.items, "ToyConvs", ToyConvs)  # registered for this test only
    return ToyConvs


def argv(data_root, out, *extra):
    return ["--search_space", "ToyConvs", "--no-table", "--proxy", "params", "--budget", "6", "--population", "3",
            "--sample_size", "2", "--device", "cpu", "--top_k", "4", "--data-root", str(data_root), "--out", str(out),
            "--quiet", *extra]


def test_a_plugged_space_without_a_table_is_searched_and_its_top_archs_built(toy, data_root, tmp_path, capsys):
    assert "ToyConvs" in searchable_spaces() and "NASBench101" not in searchable_spaces()
    assert search_main(argv(data_root, tmp_path / "run")) == 0
    printed = capsys.readouterr().out
    top = pd.read_csv(tmp_path / "run" / "top.csv")
    assert tuple(top.columns) == TOP_COLUMNS and len(top) == 4 and list(top["rank"]) == [1, 2, 3, 4]
    assert top.score.is_monotonic_decreasing and top.uid.is_unique and top.accuracy.isna().all()
    history = pd.read_csv(tmp_path / "run" / "trajectory.csv")
    assert list(top.score) == sorted(history.score, reverse=True)[:4]  # the 4 best of the 6 scored
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["table_archs"] is None and result["table_optimum"] is None and "accuracy" not in result["found"]
    assert [r["uid"] for r in result["top"]] == list(top.uid) and result["top"][0]["accuracy"] is None
    assert "searched without a benchmark table: no accuracy" in printed and "nan" not in printed.lower()
    assert (tmp_path / "run" / "search.png").stat().st_size > 0
    line = printed.splitlines()[printed.splitlines().index("build one (spec: a spec above):") + 1].strip()
    assert line.startswith(f"import {__name__}; from eznas.spaces import get_space") and "num_classes=10" in line
    scope = {"spec": top.spec[0]}
    exec(line, scope)  # noqa: S102 - the line the CLI printed
    assert scope["net"](torch.zeros(2, 3, 8, 8)).shape == (2, 10)
    assert [m.out_channels for m in scope["net"] if isinstance(m, nn.Conv2d)] == list(toy.parse(top.spec[0]))

    assert search_main(argv(data_root, tmp_path / "run", "--budget", "9", "--resume")) == 0  # it continues
    resumed = pd.read_csv(tmp_path / "run" / "trajectory.csv")
    assert len(resumed) == 9 and list(resumed.uid[:6]) == list(history.uid)
    whole = Search(SearchConfig(search_space="ToyConvs", table=False, proxy="params", budget=9, population=3,
                                sample_size=2, device="cpu", top_k=4, data_root=str(data_root),
                                out=str(tmp_path / "whole"))).run()  # the same search, uninterrupted
    assert whole["top"] == json.loads((tmp_path / "run" / "result.json").read_text())["top"]


def test_the_facts_about_spaces_are_on_their_classes():
    assert spaces_where(lambda c: "width" in c.sized) == ["DARTS", "NASBench101", "NASBench301", "NDS"]
    assert spaces_where(lambda c: "cells" in c.sized) == ["DARTS", "NASBench301", "NDS"]
    assert spaces_where(lambda c: c.has_probes()) == ["DARTS", "NASBench301"]
    assert spaces_where(lambda c: c.full_table) == ["NASBench201", "NATSBenchSSS"]
    assert space_class("NASBench201").optimum["cifar100"] == 73.51 and not space_class("DARTS").optimum
    assert searchable_spaces() == ["DARTS", "NASBench201", "NASBench301", "NASBenchMacro", "NATSBenchSSS"]


def test_a_space_without_its_table_file_says_no_table_searches_without_one(toy, data_root, tmp_path, capsys):
    assert search_main([a for a in argv(data_root, tmp_path / "x") if a != "--no-table"]) == 2  # a table expected
    err = capsys.readouterr().err.strip()
    assert f"benchmark file not found: {data_root / 'toy' / 'toy_convs.csv'}" in err and "--no-table searches" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "x").exists()


@pytest.mark.parametrize("extra, message", [
    (["--in_table"], "--in_table needs the benchmark table: not with --no-table"),
    (["--benchmark_path", "t.csv"], "--benchmark_path needs the benchmark table: not with --no-table"),
    (["--top_k", "0"], "--top_k must be >= 1, got 0"),
])
def test_bad_no_table_input_is_one_line_naming_the_flags(extra, message, toy, data_root, tmp_path, capsys):
    assert search_main(argv(data_root, tmp_path / "x", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_a_pool_fitness_without_a_table_ranks_each_arch_among_all_scored(toy, data_root, tmp_path):
    s = Search(SearchConfig(search_space="ToyConvs", table=False, proxy=None, program=POOL, budget=8, population=3,
                            sample_size=2, device="cpu", top_k=3, data_root=str(data_root), out=str(tmp_path / "p")))
    result = s.run()
    want = log_ranks(pd.DataFrame([h.parts for h in s.state.history]))
    assert [h.score for h in s.state.history] == pytest.approx(list(want))
    assert [r["score"] for r in result["top"]] == pytest.approx(sorted(want, reverse=True)[:3])
    assert result["found"]["uid"] == result["top"][0]["uid"] == s.state.history[int(np.argmax(want))].uid


def macro(data_root, tmp_path, name, **kw) -> Search:
    return Search(SearchConfig(**{"search_space": "NASBenchMacro", "proxy": "params", "strategy": "random",
                                  "budget": 12, "top_k": 12, "device": "cpu", "data_root": str(data_root),
                                  "out": str(tmp_path / name), **kw}))


def test_nas_bench_macro_is_searched_in_its_benchmark_form_table_archs_with_their_accuracy(data_root, tmp_path):
    enc = get_space("NASBenchMacro").encoding()
    assert enc.decode((0, 1, 0, 2, 1, 1, 0, 0)) == "01021100" and not enc.valid((0, 0, 1, 0, 2, 1, 0, 0))
    s = macro(data_root, tmp_path, "table", seed=0)  # 3 of its 12 draws are table archs
    s.run()
    table = {a.uid: a for a in s.table}
    top = pd.read_csv(tmp_path / "table" / "top.csv", dtype={"uid": str, "spec": str})
    generated, known = top[top.uid.str.startswith("g")], top[~top.uid.str.startswith("g")]
    assert len(known) == 3 and len(generated) == 9
    assert generated.accuracy.isna().all() and not set(generated.spec) & {a.spec for a in s.table}
    assert all(normal_form(parse_arch(spec)) == parse_arch(spec) for spec in top.spec)
    assert list(known.accuracy) == [table[u].accuracy for u in known.uid]


def test_nas_bench_macro_without_its_table_generates_every_arch(data_root, tmp_path):
    free = macro(data_root, tmp_path, "free", table=False).run()
    trajectory = pd.read_csv(tmp_path / "free" / "trajectory.csv")
    assert trajectory.uid.str.startswith("g").all() and trajectory.accuracy.isna().all()
    assert free["table_archs"] is None and "published_optimum" not in free and "accuracy" not in free["found"]
    assert free["config"]["in_table"] is False and all(math.isfinite(r["score"]) for r in free["top"])
