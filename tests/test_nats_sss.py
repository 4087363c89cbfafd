"""NATSBenchSSS: channel strings, the size network, and the official table formats (fixtures in NATS-Bench's
own layout, written here: the real ground truth is not in the mirror)."""
from __future__ import annotations

import bz2
import pickle
from pathlib import Path

import pandas as pd
import pytest
import torch

from eznas.errors import ArchError, DataError
from eznas.spaces import get_space
from eznas.spaces.nats_sss import SIMPLE, SINGLE, official_table, parse_channels

ARCHS = ("8:8:8:8:8", "64:64:64:64:64", "8:16:24:32:40")


def record(index: int, arch: str, acc: float) -> dict:
    """One arch's record as NATS-Bench stores it: per hp, per (set, seed), accuracies per evaluation@epoch."""
    def result(subset: str, evals: dict[str, float], epochs: int) -> dict:
        return {"name": subset, "epochs": epochs, "eval_acc1es": {f"{e}@{ep}": a - (epochs - 1 - ep)
                                                                  for e, a in evals.items() for ep in range(epochs)}}

    def hp(epochs: int) -> dict:
        return {"arch_index": index, "arch_str": arch, "all_results": {
            ("cifar10-valid", 777): result("cifar10-valid", {"x-valid": acc - 5, "ori-test": acc - 4}, epochs),
            ("cifar10", 777): result("cifar10", {"ori-test": acc}, epochs),
            ("cifar10", 888): result("cifar10", {"ori-test": acc + 1}, epochs),
            ("cifar100", 777): result("cifar100", {"x-valid": acc - 30, "x-test": acc - 31}, epochs)}}
    return {"01": hp(1), "12": hp(12), "90": hp(90)}


def write_pbz2(path: Path, obj: object) -> None:
    with bz2.open(path, "wb") as f:
        pickle.dump(obj, f)


@pytest.fixture
def simple(tmp_path: Path) -> Path:
    folder = tmp_path / "nats_sss" / SIMPLE
    folder.mkdir(parents=True)
    write_pbz2(folder / "meta.pickle.pbz2", {"meta_archs": list(ARCHS), "total_archs": 3, "arch2infos": None,
                                             "evaluated_indexes": set()})
    for i, arch in enumerate(ARCHS):
        write_pbz2(folder / f"{i:06d}.pickle.pbz2", record(i, arch, 80.0 + 5 * i))
    return folder


def test_channel_strings_are_checked_token_by_token():
    assert parse_channels("8:16:24:32:40") == (8, 16, 24, 32, 40)
    for spec, message in [("8:16:24:32", "expected 5 channel counts"), ("8:16:24:32:12", "bad token '12'"),
                          ("8:16:x:32:40", "bad token 'x'"), (None, "must be a string")]:
        with pytest.raises(ArchError, match=message):
            parse_channels(spec)


def test_the_network_is_nats_benchs_size_net():
    space = get_space("NATSBenchSSS")
    # NATS-Bench's own records (archs 0, 11 and 284 in its repository's fake_torch_dir): params in millions
    for spec, classes, params in [("8:8:8:8:8", 10, 0.011714), ("8:8:8:16:32", 10, 0.049202),
                                  ("8:8:40:32:40", 10, 0.144834), ("8:8:40:32:40", 100, 0.148524),
                                  ("8:8:8:16:32", 120, 0.052832)]:
        assert sum(p.numel() for p in space.build(spec, classes).parameters()) == round(params * 1e6), spec
    net = space.build("8:16:24:32:40", 100)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert net.stem[0].out_channels == 8 and net.classifier.in_features == 40 and net.classifier.out_features == 100
    assert len(convs) == 1 + 3 * 5 + 2 * 3 + 2  # stem, 3 cells of 5 convs, 2 blocks of 3, 2 width-changing skips
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_the_official_simple_folder_and_single_file_read_alike(simple, tmp_path):
    space = get_space("NATSBenchSSS")
    assert space.default_benchmark(simple.parents[1], "cifar10") == simple
    archs = space.load(simple, "cifar10")
    # hp 90, last epoch, mean over the two CIFAR-10 seeds
    assert [(a.uid, a.spec, a.accuracy) for a in archs] == [("0", ARCHS[0], 80.5), ("1", ARCHS[1], 85.5),
                                                            ("2", ARCHS[2], 90.5)]
    assert [a.accuracy for a in space.load(simple, "cifar100")] == [49.0, 54.0, 59.0]
    assert [a.accuracy for a in space.load(simple, "cifar10", "cifar10-valid:x-valid")] == [75.0, 80.0, 85.0]
    single = tmp_path / SINGLE
    write_pbz2(single, {"meta_archs": list(ARCHS), "total_archs": 3, "evaluated_indexes": set(range(3)),
                        "arch2infos": {i: record(i, a, 80.0 + 5 * i) for i, a in enumerate(ARCHS)}})
    assert space.load(single, "cifar10") == archs
    table = official_table(simple, ["cifar10:ori-test", "cifar100:x-test"])
    assert list(table.columns) == ["index", "arch_str", "cifar10:ori-test", "cifar100:x-test"]


def test_a_csv_table_reads_like_nb201s(tmp_path):
    path = tmp_path / "nats_sss.csv"
    pd.DataFrame({"index": [0, 1], "arch_str": ARCHS[:2], "cifar10_test": [80.0, None]}).to_csv(path, index=False)
    assert [(a.uid, a.accuracy) for a in get_space("NATSBenchSSS").load(path, "cifar10")] == [("0", 80.0)]
    pd.DataFrame({"index": [0, 1], "arch_str": ["8:8:8:8:8", "8:8:9:8:8"], "cifar10_test": [1, 2]}).to_csv(path, index=False)
    with pytest.raises(ArchError, match=r"nats_sss.csv: row 1 \(file line 3\): .*bad token '9'"):
        get_space("NATSBenchSSS").load(path, "cifar10")


def test_missing_ground_truth_says_what_to_download_and_where(tmp_path, simple):
    space = get_space("NATSBenchSSS")
    with pytest.raises(DataError, match=r"NATS-sss-v1_0-50262-simple.tar .* extract it into .*nats_sss/"):
        space.load(space.default_benchmark(tmp_path / "empty", "cifar10"), "cifar10")
    with pytest.raises(DataError, match=r"no 'x-test' accuracy for 'cifar10' \(evaluations present: ori-test\)"):
        space.load(simple, "cifar10", "cifar10:x-test")
    (simple / "000001.pickle.pbz2").write_bytes(b"not bz2")
    with pytest.raises(DataError, match="000001.pickle.pbz2: not a readable NATS-Bench .pickle.pbz2 file"):
        space.load(simple, "cifar10")


def test_verify_scores_a_nats_sss_table(data_root, tmp_path, capsys):
    from eznas.cli import verify_main

    path = tmp_path / "nats_sss.csv"
    specs = ["8:8:8:8:8", "16:16:16:16:16", "8:16:24:32:40", "64:8:8:8:8", "8:64:64:8:8"]
    pd.DataFrame({"index": range(5), "arch_str": specs, "cifar10_test": [80.0, 84.0, 88.0, 82.0, 86.0]}).to_csv(
        path, index=False)
    out = tmp_path / "run"
    assert verify_main(["--search_space", "NATSBenchSSS", "--benchmark-path", str(path), "--data-root",
                        str(data_root), "--proxy", "params,meco", "--program", "sum_units(corr_min_eig(pre_N))",
                        "--batch_size", "4", "--quiet", "--bootstrap", "5", "--out", str(out),
                        "--results-csv", str(tmp_path / "all.csv")]) == 0
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 5 and scores["params"].notna().all() and scores["sum_units(corr_min_eig(pre_N))"].notna().all()
    assert pd.read_csv(tmp_path / "all.csv")["search_space"].eq("NATSBenchSSS").all()
