"""The transfer benchmark's bookkeeping: held-out archs outside every split, the ensemble chosen only on the
other spaces, a winner judged against the best baseline."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bench_transfer as bench
from eznas.gp.config import FitnessConfig
from eznas.gp.values import FitnessData
from eznas.proxies import get_proxy, list_proxies

PER_NETWORK = [n for n in list_proxies() if get_proxy(n).pool is None and not get_proxy(n).arch_only]


def space_entry(accuracy: np.ndarray, good: tuple[str, ...], rng: np.random.Generator) -> dict:
    """Scores where the ``good`` proxies each follow the accuracy with noise and the rest are noise."""
    n = len(accuracy)
    scores = {p: (accuracy + rng.normal(0, 3, n) if p in good else rng.normal(0, 1, n)).tolist() for p in PER_NETWORK}
    uids = [str(i) for i in range(n)]
    return {"task": "X:cifar10", "uid": uids, "accuracy": accuracy.tolist(), "held_out": uids[: n // 2] + uids[n // 2:],
            "scores": scores, "seconds_per_arch": {p: 0.1 for p in PER_NETWORK}, "n_archs": n}


def test_the_ensemble_is_chosen_on_the_other_spaces_only():
    rng = np.random.default_rng(0)
    acc = lambda: rng.uniform(80, 95, 120)  # noqa: E731
    results = {"proxies": {"A": space_entry(acc(), ("meco", "synflow"), rng),
                           "B": space_entry(acc(), ("meco", "synflow"), rng),
                           "C": space_entry(acc(), ("zico", "jacov"), rng)}}
    members, rho = bench.chosen_elsewhere(results, "C", PER_NETWORK)
    assert set(members) >= {"meco", "synflow"} and rho > 0.5  # what A and B reward, not C's own pair
    members_a, _ = bench.chosen_elsewhere(results, "A", PER_NETWORK)
    assert {"meco", "synflow"} & set(members_a) and {"zico", "jacov"} & set(members_a)  # B and C together
    assert bench.chosen_elsewhere({"proxies": {"A": results["proxies"]["A"]}}, "A", PER_NETWORK) is None


def test_a_winner_is_judged_against_the_best_baseline_with_a_paired_interval():
    rng = np.random.default_rng(1)
    results = {"proxies": {s: space_entry(rng.uniform(80, 95, 150), ("meco",), rng) for s in ("NASBenchMacro", "DARTS")}}
    entry = results["proxies"]["NASBenchMacro"]
    perfect = list(entry["accuracy"])  # a winner that ranks the held-out archs exactly
    results["tests"] = {"NASBenchMacro:seed0": {"space": "NASBenchMacro", "seed": 0, "winner": "w", "uid": entry["uid"],
                                                "scores": {"w": perfect}, "seconds_per_arch": {"w": 1.0}}}
    figures = bench.report(results)
    judged = figures["NASBenchMacro"]["winners"]["NASBenchMacro:seed0"]
    assert judged["spearman"] == pytest.approx(1.0) and judged["at_least_as_good"] and judged["ci_above"]
    assert judged["target_met"] and judged["best_baseline"] in ("meco", *bench.UNTUNED,
                                                                "best ensemble chosen on the other spaces")
    assert figures["NASBenchMacro"]["rows"]["best ensemble chosen on the other spaces"]["chosen_on"] == ["DARTS"]
    text = bench.markdown(results, figures)
    assert "| NASBenchMacro | 0 | default | 1.000" in text and "target" in text


def test_each_variant_is_its_own_run_and_row_of_the_variants_table():
    rng = np.random.default_rng(3)
    results = {"proxies": {s: space_entry(rng.uniform(80, 95, 150), ("meco",), rng) for s in ("NASBenchMacro", "DARTS")}}
    assert bench.run_key("DARTS", 0) == "DARTS:seed0" and bench.run_name("DARTS", 0) == "DARTS-seed0"
    assert bench.run_key("DARTS", 0, "mean") == "DARTS:seed0:mean" and bench.run_name("DARTS", 0, "mean") == "DARTS-seed0-mean"
    tests = {}
    for space in ("NASBenchMacro", "DARTS"):
        entry = results["proxies"][space]
        acc = np.array(entry["accuracy"])
        for variant, noise in (("default", 6.0), ("mean", 1.0)):
            tests[bench.run_key(space, 0, variant)] = {
                "space": space, "seed": 0, "variant": variant, "winner": "w", "uid": entry["uid"],
                "scores": {"w": (acc + rng.normal(0, noise, len(acc))).tolist()}, "seconds_per_arch": {"w": 1.0}}
    del tests["DARTS:seed0"]  # the default variant not yet run on DARTS
    results["tests"] = tests
    figures = bench.report(results)
    table = bench.variant_table(figures)
    assert list(table) == ["default", "mean"] and set(table["mean"]) == {"NASBenchMacro", "DARTS"}
    assert set(table["default"]) == {"NASBenchMacro"} and table["mean"]["DARTS"] > table["default"]["NASBenchMacro"]
    text = bench.markdown(results, figures)
    assert "| mean (`--set fitness.combine=mean`) |" in text
    mean_row = next(line for line in text.splitlines() if line.startswith("| mean (`"))
    mean = np.mean(list(table["mean"].values()))  # over the variant's spaces: the default lacks DARTS
    assert mean_row.endswith(f"| {mean:.3f} (—; 2) |")
    default_row = next(line for line in text.splitlines() if line.startswith("| default (`"))
    assert default_row.endswith(f"| {table['default']['NASBenchMacro']:.3f} ({table['default']['NASBenchMacro']:.3f}; 1) |")
    # against the default run's winner on the same archs where it has one (paired), nothing where not
    d = figures["NASBenchMacro"]["winners"]["NASBenchMacro:seed0:mean"]["vs_default"]
    assert d["diff"] > 0 and f"| {table['mean']['NASBenchMacro']:.3f} ({d['diff']:+.3f} [" in mean_row
    assert f"| {table['mean']['DARTS']:.3f} |" in mean_row and "vs_default" not in figures["DARTS"]["winners"]["DARTS:seed0:mean"]


def test_the_validation_space_variant_chooses_its_winner_on_the_next_space_which_selection_never_reads():
    tasks, flags = bench.run_tasks("NASBench101", "validation-space")
    assert flags == ["--validation_tasks", "NASBench301:cifar10@width=8@cells=3"]
    assert "NASBench301:cifar10@width=8@cells=3" not in tasks and not any(t.startswith("NASBench101") for t in tasks)
    assert set(tasks) | {flags[1]} == set(bench.without("NASBench101"))
    tasks, flags = bench.run_tasks("NASBenchMacro", "validation-space")  # cyclic: Macro is last, NB-201 next
    assert flags[1] == "NASBench201:cifar10,NASBench201:cifar100" and set(tasks) == set(bench.without("NASBenchMacro")) - {
        "NASBench201:cifar10", "NASBench201:cifar100"}
    assert bench.run_tasks("DARTS", "margin") == (bench.without("DARTS"), ["--set", "fitness.combine=margin"])


def test_held_out_archs_are_outside_the_selection_and_validation_splits(data_root):
    _, task, archs, held = bench.held_out(data_root, "NASBenchMacro")
    assert len(archs) == 600 and len(held) == 600 - 300  # every row scored; the test split held out
    data = FitnessData(FitnessConfig(tasks=("NASBenchMacro:cifar10",)), None, data_root)
    used = {a.uid for split in ("selection", "validation") for a in data.networks(str(task), split)}
    assert not used & set(held)
    assert bench.without("NASBenchMacro") == tuple(t for t in bench.ALL_TASKS if not t.startswith("NASBenchMacro"))


def test_labels_equivalent_counts_the_labels_a_ridge_ranker_needs_on_the_same_archs():
    rng = np.random.default_rng(2)
    entry = space_entry(rng.uniform(80, 95, 200), ("meco", "synflow", "zico"), rng)
    table = bench.frame(entry)
    perfect, noise = table["accuracy"], pd.Series(rng.normal(0, 1, len(table)), index=table.index)
    lab = bench.labels_equivalent("DARTS", entry, {"perfect": perfect, "noise": noise, "meco": table["meco"]}, draws=5)
    assert lab["ks"] == [16, 32, 64, 128] and lab["labelled_from"] == "held-out archs"  # 200 - 64 leaves no 256
    assert lab["equivalent"]["noise"] == 16 and lab["equivalent"]["perfect"] is None
    assert lab["equivalent"]["meco"] is not None  # three informative proxies together beat one of them
    assert lab["curve"]["128"]["ridge"] > lab["curve"]["128"]["meco"] > lab["curve"]["128"]["noise"]
    entry["held_out"] = entry["uid"][100:]  # scored on every row: labelled archs come from the other rows
    lab = bench.labels_equivalent("NASBenchMacro", entry, {"noise": noise.loc[bench.frame(entry).index]}, draws=3)
    assert lab["ks"] == [16, 32, 64] and lab["labelled_from"] == "other rows"



def test_a_learner_is_compared_with_each_column_on_the_archs_it_did_not_train_on():
    rng = np.random.default_rng(4)
    entry = space_entry(rng.uniform(80, 95, 120), ("meco",), rng)
    held = bench.frame(entry)
    noisy = held["accuracy"] + pd.Series(rng.normal(0, 4, len(held)), index=held.index)
    train16, train32 = held["uid"].iloc[:16].tolist(), held["uid"].iloc[60:92].tolist()
    on_rest = {k: stats.spearmanr(noisy[~held["uid"].isin(t)], held["accuracy"][~held["uid"].isin(t)]).statistic
               for k, t in ((16, train16), (32, train32))}
    draws = {16: [(train16, on_rest[16] - 0.05)], 32: [(train32, on_rest[32] + 0.01)]}  # reaches it at k = 32 only
    lab = bench.on_same_archs(held, "nar", draws, {"perfect": held["accuracy"], "noisy": noisy})
    assert lab["ks"] == [16, 32] and lab["draws"] == 1 and lab["equivalent"] == {"perfect": None, "noisy": 32}
    assert lab["curve"]["16"]["noisy"] == pytest.approx(on_rest[16]) and lab["curve"]["32"]["noisy"] == pytest.approx(on_rest[32])
    assert lab["curve"]["32"]["perfect"] == pytest.approx(1.0)


def test_nar_trains_on_k_held_out_nb201_archs_and_is_judged_on_the_rest(data_root, monkeypatch):
    monkeypatch.setattr(bench, "LABELS", (16, 32))
    monkeypatch.setattr(bench, "NAR_CONFIG", bench.nar.NARConfig(d_model=16, layers=1, epochs=3))
    _, _, archs, held = bench.held_out(data_root, "NASBench201")
    entry = {"uid": [a.uid for a in archs], "accuracy": [a.accuracy for a in archs], "held_out": held, "scores": {}}
    out = bench.nar_draws(data_root, "NASBench201", entry, draws=2)
    assert out["config"]["epochs"] == 3 and set(out["draws"]) == {"16", "32"}
    for k, runs in out["draws"].items():
        assert len(runs) == 2 and all(len(set(r["train"])) == int(k) and set(r["train"]) <= set(held) for r in runs)
        assert all(-1 <= r["spearman"] <= 1 for r in runs)
    assert out["draws"]["16"][0]["train"] != out["draws"]["16"][1]["train"]

def partial_folder(folder, uids, seconds):
    folder.mkdir(parents=True)
    names = ["meco", "swap"]
    pd.DataFrame({"uid": uids, "arch": "x", "accuracy": [90.0 + int(u) for u in uids],
                  **{n: [float(u) for u in uids] for n in names}}).to_csv(folder / "partial_scores.csv", index=False)
    (folder / "partial_state.json").write_text(json.dumps({"config": {"proxies": names, "programs": []},
                                                           "seconds": {n: seconds for n in names}, "n": len(uids)}))


def test_an_unfinished_proxies_part_is_saved_and_only_the_rest_scored_later(tmp_path, data_root, monkeypatch):
    runs = tmp_path / "runs"
    partial_folder(runs / "proxies" / "NASBenchMacro" / "verify", ["1", "2"], 4.0)
    saved = bench.save_partial(runs, "NASBenchMacro", None)
    assert saved["uid"] == ["1", "2"] and saved["folders"] == {"proxies/NASBenchMacro/verify": {"meco": 4.0, "swap": 4.0}}
    partial_folder(runs / "proxies" / "NASBenchMacro" / "rest2", ["3"], 1.0)  # a later session's folder
    again = bench.save_partial(runs, "NASBenchMacro", saved)  # the first folder again: replaced, not added
    assert again["uid"] == ["1", "2", "3"] and len(again["folders"]) == 2 and again["scores"]["meco"] == [1.0, 2.0, 3.0]
    _, _, archs, _ = bench.held_out(data_root, "NASBenchMacro")
    asked = {}

    def fake_scored(cfg):
        table = pd.read_csv(cfg.benchmark_path, dtype=str)
        asked["n"], asked["out"] = len(table), cfg.out
        pool = {n: [1.0, 2.0] for n in ("az_expressivity", "az_progressivity", "az_trainability", "flops")}
        return {"n_archs": 2, "uid": ["8", "9"], "accuracy": [98.0, 99.0],
                "scores": {"meco": [8.0, 9.0], "swap": [8.0, 9.0], **pool, "az_nas": [-1.0, 0.0]},
                "seconds_per_arch": {"meco": 2.0, "swap": 2.0}}

    monkeypatch.setattr(bench, "scored", fake_scored)
    entry = bench.score_space(data_root, runs, "NASBenchMacro", again)
    assert asked["n"] == len(archs) - 3 and asked["out"].endswith("rest3/verify")  # only the archs not saved
    assert entry["uid"] == ["1", "2", "3", "8", "9"] and entry["scores"]["meco"] == [1.0, 2.0, 3.0, 8.0, 9.0]
    assert entry["seconds_per_arch"]["meco"] == pytest.approx((4.0 + 1.0 + 2 * 2.0) / 5)
    assert entry["scores"]["az_expressivity"] == [None, None, None, 1.0, 2.0]  # not in the saved rows
    assert entry["scores"]["az_nas"][3] < entry["scores"]["az_nas"][4]  # ranked again over the merged archs


def test_winner_choice_rules_read_only_the_runs_own_figures():
    rng = np.random.default_rng(2)
    acc = rng.uniform(80, 95, 80)
    uids = [str(i) for i in range(80)]
    hall = [{"exported": "novel", "fitness": 0.40, "validation_fitness": 0.30, "size": 30, "novel": True},
            {"exported": "big", "fitness": 0.45, "validation_fitness": 0.36, "size": 50, "novel": False},
            {"exported": "small", "fitness": 0.42, "validation_fitness": 0.355, "size": 9, "novel": False},
            *({"exported": f"p{i}", "fitness": 0.3, "validation_fitness": 0.2 - i / 100, "size": 20, "novel": False}
              for i in range(4))]
    scores = {h["exported"]: (acc + rng.normal(0, 2, 80)).tolist() for h in hall}
    scores["small"] = acc.tolist()  # the one that ranks the held-out archs exactly
    test = {"uid": uids, "hall": hall, "scores": scores}
    table = pd.DataFrame({"uid": uids, "accuracy": acc})
    rules = bench.rules_on(test, table)
    assert rules["novel, best validation (default)"]["programs"] == ["novel"]
    assert rules["best validation"]["programs"] == ["big"]
    assert rules["best selection fitness"]["programs"] == ["big"]
    assert rules["smallest within .01 of the best validation"]["programs"] == ["small"]
    assert rules["smallest within .01 of the best validation"]["spearman"] == pytest.approx(1.0)
    assert rules["rank ensemble of the 5 best by validation"]["programs"] == ["big", "small", "novel", "p0", "p1"]
    assert 0.5 < rules["rank ensemble of the 5 best by validation"]["spearman"] < 1.0


def test_the_choice_rules_are_tabled_for_every_variant_with_a_hall():
    rng = np.random.default_rng(4)
    results = {"proxies": {s: space_entry(rng.uniform(80, 95, 150), ("meco",), rng) for s in ("NASBenchMacro", "DARTS")}}
    tests = {}
    for space, variant in (("NASBenchMacro", "default"), ("DARTS", "default"), ("DARTS", "mean")):
        entry = results["proxies"][space]
        acc = np.array(entry["accuracy"])
        hall = [{"exported": n, "fitness": f, "validation_fitness": v, "size": 10, "novel": n == "a"}
                for n, f, v in (("a", 0.4, 0.3), ("b", 0.5, 0.35))]
        scores = {"a": (acc + rng.normal(0, 5, len(acc))).tolist(), "b": acc.tolist()}  # b ranks them exactly
        tests[bench.run_key(space, 0, variant)] = {"space": space, "seed": 0, "variant": variant, "winner": "a",
                                                   "hall": hall, "uid": entry["uid"], "scores": scores,
                                                   "seconds_per_arch": {"a": 1.0, "b": 1.0}}
    results["tests"] = tests
    figures = bench.report(results)
    table = bench.rules_table(figures)
    assert list(table) == ["default", "mean"] and set(table["mean"]["best validation"]) == {"DARTS"}
    assert table["default"]["best validation"] == {"NASBenchMacro": pytest.approx(1.0), "DARTS": pytest.approx(1.0)}
    assert table["default"]["novel, best validation (default)"]["DARTS"] < 1.0
    text = bench.markdown(results, figures)
    assert "| mean | best validation | 1.000 | — | 1.000 (1) |" in text  # columns: DARTS, NASBenchMacro


def test_the_hall_of_fame_lists_each_exported_program_once_winner_first(tmp_path):
    entry = {"fitness": 0.4, "validation_fitness": 0.3, "size": 10, "novel": True, "program": "x", "stage": "full"}
    (tmp_path / "hall_of_fame.json").write_text(json.dumps(
        [{**entry, "exported": "w"}, {**entry, "exported": "v", "novel": False}, {**entry, "exported": "w"}]))
    assert [h["exported"] for h in bench.hall_of_fame(tmp_path)] == ["w", "v"]


@pytest.mark.parametrize("variant", [v for v in bench.VARIANTS if v != "default"])
def test_every_variant_is_a_valid_run_of_the_other_spaces_tasks(variant):
    from eznas.cli.evolve import evolve_parser, new_run_config
    from eznas.features import FEATURES

    tasks, flags = bench.run_tasks("NASBench101", variant)
    cfg = new_run_config(evolve_parser().parse_args(["--tasks", ",".join(tasks), *flags]))
    assert cfg.fitness.tasks == tasks and not any(t.startswith("NASBench101") for t in cfg.fitness.tasks)
    if variant.endswith("no-size"):  # no size term in the language, nor a seed reading one
        assert not set(cfg.features) & set(FEATURES) and "params" not in cfg.seed_programs
        assert set(cfg.seed_programs) == {"eznas", "swap", "sweetimator", "meco"}
    assert (cfg.fitness.combine == "margin") == ("margin" in variant)
