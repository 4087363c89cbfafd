"""Learned rankers: NAR's encoding, tiers and rank loss, training, saving and loading, scoring in verify."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from eznas.errors import EznasError
from eznas.rankers import Ranker, check_k, fit_ridge, load_ranker
from eznas.rankers import nar

CELL = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"


def test_the_encoding_is_an_indicator_per_op_then_per_cell_flops_and_params():
    x = nar.encode(CELL)
    assert x.shape == (nar.CHANNELS, 4, 4) == (35, 4, 4)
    ops = {op: x[nar.OPS.index(op)].tolist() for op in nar.OPS}
    assert ops["nor_conv_3x3"] == [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert ops["none"] == [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert ops["avg_pool_3x3"][1][3] == ops["skip_connect"][0][2] == ops["nor_conv_1x1"][1][2] == 1
    assert x[:5].sum() == 6 and (x[:5].sum(axis=0) == np.triu(np.ones((4, 4)), 1)).all()  # one op per edge
    # stage 1 (C=16, 32x32): conv3x3 0->1 has 9*16^2 + 2*16 = 2336 params and 2336 * 1024 FLOPs
    assert np.expm1(x[6, 0, 1]) == pytest.approx(2336) and np.expm1(x[5, 0, 1]) == pytest.approx(2336 * 1024)
    assert np.expm1(x[6, 1, 2]) == pytest.approx(16 * 16 + 32)  # conv1x1 1->2
    assert x[5:, 0, 2].max() == 0 and x[5:, 1, 3].max() == 0  # skip and avg_pool cost nothing
    assert np.expm1(x[34, 0, 1]) == pytest.approx(9 * 64 ** 2 + 128)  # the last cell is at C=64
    assert np.array_equal(x[5], x[7]) and not np.array_equal(x[5], x[15])  # same stage alike, next stage not


def test_tiers_are_equal_count_best_first_and_the_rank_loss_rewards_the_right_order():
    acc = np.array([90.0, 50, 70, 60, 80, 85, 55, 65, 75, 95, 40])
    tiers = nar.tiers_of(acc)
    assert tiers[np.argmax(acc)] == 0 and tiers[np.argmin(acc)] == 4 and np.bincount(tiers).tolist() == [2, 2, 2, 2, 3]
    y = torch.tensor([1.0, 2.0, 3.0])
    assert nar.rank_loss(y * 5, y) < nar.rank_loss(-y * 5, y)


def test_nar_trains_saves_loads_and_scores_like_before(data_root, tmp_path, one_thread, monkeypatch):
    table = pd.read_csv(data_root / "nb201" / "nb201_acc_200ep.csv").sample(300, random_state=0)
    feats = np.stack([nar.encode(s) for s in table.arch_str])
    acc = table.cifar10_test.to_numpy(float)
    c = nar.NARConfig(d_model=16, layers=1, heads=2, epochs=4, batch_size=64)
    model, record = nar.train(feats[:200], acc[:200], feats[200:250], acc[200:250], c)
    assert len(record["history"]) == 4 and record["best_val_kendall"] == max(h["val_kendall"] for h in record["history"])
    score = nar.predict(model, feats[250:])
    assert stats.kendalltau(score, acc[250:]).statistic > 0.2  # even this tiny model learns the ordering
    Ranker("nar", "NASBench201", "cifar10", record=record, model=model).save(tmp_path / "r")
    back = load_ranker(tmp_path / "r", "NASBench201")
    np.testing.assert_allclose(back.score_specs(list(table.arch_str[250:])), score, rtol=1e-5)
    with pytest.raises(EznasError, match="trained on NASBench201, not DARTS"):
        load_ranker(tmp_path / "r", "DARTS")

    from eznas.cli import verify_main

    bench = tmp_path / "part.csv"
    table.iloc[250:].to_csv(bench, index=False)
    import eznas.scoring

    def no_build(*args, **kwargs):
        raise AssertionError("a NAR ranker reads the arch only: no network is built")

    monkeypatch.setattr(eznas.scoring, "build_network", no_build)
    assert verify_main(["--ranker", str(tmp_path / "r"), "--benchmark-path", str(bench), "--data-root", str(data_root),
                        "--quiet", "--bootstrap", "5", "--batch_size", "4", "--out", str(tmp_path / "v"),
                        "--results-csv", str(tmp_path / "all.csv")]) == 0
    scores = pd.read_csv(tmp_path / "v" / "scores.csv")
    np.testing.assert_allclose(scores["ranker:r"], score, rtol=1e-5)


def test_the_proxy_ridge_ranker_learns_a_weighted_sum_and_k_is_checked(tmp_path):
    rng = np.random.default_rng(0)
    values = pd.DataFrame({"a": rng.normal(size=200), "b": rng.lognormal(size=200) * 1e6})
    acc = 2 * values.a.to_numpy() + np.log(values.b.to_numpy()) + rng.normal(scale=0.1, size=200)
    mean, std, w = fit_ridge(values, acc)
    ranker = Ranker("proxy_ridge", "NASBench201", "cifar10", ("a", "b"), mean, std, w)
    assert stats.kendalltau(ranker.score_values(values.to_numpy()), acc).statistic > 0.8
    ranker.save(tmp_path / "ridge")
    again = load_ranker(tmp_path / "ridge")
    assert again.inputs == ("a", "b") and np.allclose(again.score_values(values.to_numpy()), ranker.score_values(values.to_numpy()))
    holes = values.copy()
    holes.loc[:9, "b"] = -np.inf  # NASWOT's -inf on a singular kernel: missing, as a NaN is
    mean2, std2, w2 = fit_ridge(holes, acc)
    assert np.isfinite(w2).all() and np.isfinite(mean2).all()
    scored = Ranker("proxy_ridge", "NASBench201", "cifar10", ("a", "b"), mean2, std2, w2).score_values(holes.to_numpy())
    assert np.isfinite(scored).all() and stats.kendalltau(scored, acc).statistic > 0.7
    with pytest.raises(EznasError, match=r"k = 2000 labelled archs is out of range: the labelled pool has 1000"):
        check_k(2000, 1000)


@pytest.mark.parametrize("change, field", [
    ({"weights": [1.0]}, "field weights must hold 2 numbers"),
    ({"mean": None}, "field mean must hold 2 numbers"),
    ({"inputs": []}, "field inputs is missing"),
    ({"space": None}, "field space is missing"),
    ({"kind": "forest"}, "field kind is 'forest'; valid: nar, proxy_ridge"),
    ({"extra": 1}, "field extra is not a ranker field"),
])
def test_a_ranker_file_missing_a_field_is_refused_naming_it(tmp_path, change, field):
    from eznas.errors import DataError

    Ranker("proxy_ridge", "NASBench201", "cifar10", ("params", "synflow"), [0.0, 0.0], [1.0, 1.0],
           [1.0, 0.5]).save(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "ranker.json").read_text())
    (tmp_path / "r" / "ranker.json").write_text(json.dumps({**meta, **change}))
    with pytest.raises(DataError, match=f"ranker.json: {field}"):
        load_ranker(tmp_path / "r")
