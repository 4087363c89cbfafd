"""One recipe scores an arch (issue 40): verify, search and the fitness's values all go through score_arch."""
from __future__ import annotations

import math

import pytest

import eznas.gp.values as values
import eznas.scoring as scoring
from eznas.data import BatchSource
from eznas.errors import ArchError
from eznas.gp.config import FitnessConfig, Task
from eznas.proxies import parse_proxy
from eznas.search import run as search_run
from eznas.search.config import SearchConfig
from eznas.search.run import Search
from eznas.spaces import Arch, get_space
from eznas.verify import VerifyConfig, run_verify


def test_verify_search_and_the_fitness_score_through_score_arch(data_root, tmp_path, monkeypatch, one_thread):
    real, users = scoring.score_arch, []

    def counted(user):
        return lambda *a, **k: users.append(user) or real(*a, **k)

    monkeypatch.setattr(scoring, "score_arch", counted("verify"))  # score_archs' per-arch call
    monkeypatch.setattr(search_run, "score_arch", counted("search"))
    monkeypatch.setattr(values, "score_arch", counted("fitness"))
    run_verify(VerifyConfig(n_samples=3, batch_size=4, bootstrap=5, proxies=("params", "synflow"),
                            data_root=str(data_root), out=str(tmp_path / "v"), results_csv=str(tmp_path / "t.csv")))
    Search(SearchConfig(proxy="synflow", budget=3, population=2, sample_size=1, batch_size=4, device="cpu",
                        data_root=str(data_root), out=str(tmp_path / "s"))).run()
    data = values.FitnessData(FitnessConfig(tasks=("NASBench201:cifar10",), selection=4, validation=2, screen=2,
                                            batch_size=4), None, data_root)
    data.compute(Task.parse("NASBench201:cifar10"), data.networks("NASBench201:cifar10")[0],
                 ["zc_synflow", "sum_units(fro(weight))"], True)
    assert users == ["verify"] * 3 + ["search"] * 3 + ["fitness"]


def test_score_arch_keeps_the_probe_for_a_caller_that_reads_on_and_then_raises_a_failed_build(data_root):
    space = get_space("NASBench201")
    arch = space.load(space.default_benchmark(data_root, "cifar10"), "cifar10")[0]
    batches, calls = BatchSource(data_root, "cifar10", 4, 0), [parse_proxy("synflow")]
    kept = scoring.score_arch(space, arch, calls, batches, keep=True)
    plain = scoring.score_arch(space, arch, calls, batches)
    assert kept.scores == plain.scores and plain.probe is None and kept.probe.net is not None
    assert kept.probe.batch.x.shape[0] == 4 and {"build", "shared pass", "synflow"} <= set(kept.steps)
    bad = Arch("bad", "|nope~0|", 1.0)
    failed = scoring.score_arch(space, bad, calls, batches)
    assert math.isnan(failed.scores["synflow"]) and failed.errors["synflow"].startswith("building the network: ")
    with pytest.raises(ArchError):
        scoring.score_arch(space, bad, calls, batches, keep=True)
